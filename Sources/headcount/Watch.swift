import ArgumentParser
import Daemon
import GPIO
import Synchronization
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `headcount watch`: every input of the van, live, for a technician checking the wiring.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every input of the van live, for checking the wiring.",
        discussion: """
            Opens the config's GPIO lines and Modbus devices and shows each input's value, how many \
            times it changed and when, redrawn on every change; changed rows are highlighted for a \
            second. The outputs (buzzer, horn, hazard, status LED) are held off while watching and \
            never driven: `headcount diagnose --actuate` sounds them. When standard output is not a \
            terminal, or with --plain, prints one line per change instead: `+12.345 seat.3 = true`. \
            Stop the headcount service first (systemctl stop headcount): it holds the GPIO lines. \
            Ctrl-C quits (exit status 0).
            """
    )

    @OptionGroup var files: VanConfigOptions

    @Flag(help: "One line per change, even on a terminal.")
    var plain = false

    @OptionGroup var simulation: SimulationOptions

    func run() throws {
        let full = !plain && isatty(STDOUT_FILENO) == 1
        let view = WatchView()
        // On the full screen the last log line is shown in the table, not written over it.
        var log: @Sendable (LogLevel, String) -> Void = Log.write
        if full { log = { _, message in view.lastMessage.withLock { $0 = message } } }
        let session = try LiveSession(
            files: files, simulation: simulation, consumer: "headcount-watch", log: log)
        let van = session.van
        var board = WatchBoard(
            title: "headcount watch — vehicle \(van.vehicleId), board \(van.profile.board) "
                + "(GPIO chip \"\(van.profile.chipLabel)\"), \(session.inputs.signals.count) inputs",
            signals: session.inputs.signals, outputs: session.inputs.outputs)
        do throws(GPIOError) {
            board.initial(try session.inputs.gpioLevels())
        } catch {
            log(.error, "cannot read the GPIO lines: \(error.description)")
        }
        view.board.withLock { $0 = board }
        if let end = session.simulationEnd { session.stop(atSecondsAfterOrigin: end + 1) }
        if full {
            watchOnScreen(session, view: view)
        } else {
            watchAsLines(session, view: view)
        }
        session.close()
    }

    /// One line per change on standard output, the levels at the start first (at +0.000).
    private func watchAsLines(_ session: LiveSession, view: WatchView) {
        let van = session.van
        Log.write(
            .notice,
            "watching \(session.inputs.signals.count) inputs of \(van.vehicleId); outputs held off; Ctrl-C to quit")
        let start = view.board.withLock { $0.startLines() }
        writeAll(start.map { $0 + "\n" }.joined(), to: STDOUT_FILENO)
        session.inputs.start { change in
            let t = session.seconds(at: change.atNanoseconds)
            // Under the lock: lines come out in the order the board took the changes.
            view.board.withLock { board in
                if let line = board.apply(change, t: t, seenAt: GPIOClock.monotonicNanoseconds()) {
                    writeAll(line + "\n", to: STDOUT_FILENO)
                }
            }
        }
        while !session.wait(timeout: 3600) {}
    }

    /// The full-screen table on the alternate screen, redrawn on each change and every quarter of
    /// a second (ages, highlights); the terminal is given back as it was on the way out.
    private func watchOnScreen(_ session: LiveSession, view: WatchView) {
        // Alternate screen, cursor hidden.
        writeAll("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J", to: STDOUT_FILENO)
        defer { writeAll("\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l", to: STDOUT_FILENO) }
        session.inputs.start { change in
            let t = session.seconds(at: change.atNanoseconds)
            if view.board.withLock({ $0.apply(change, t: t, seenAt: GPIOClock.monotonicNanoseconds()) }) != nil {
                session.wake()
            }
        }
        repeat {
            var size = winsize()
            let (columns, lines) =
                ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0
                ? (Int(size.ws_col), Int(size.ws_row)) : (100, 40)
            let now = GPIOClock.monotonicNanoseconds()
            let message = view.lastMessage.withLock { $0 }
            let screen = view.board.withLock { $0.screen(now: now, columns: columns, lines: lines, message: message) }
            // Home, each line cleared to its end, the rest of the screen cleared.
            writeAll(
                "\u{1B}[H" + screen.joined(separator: "\u{1B}[K\r\n") + "\u{1B}[K\u{1B}[J", to: STDOUT_FILENO)
        } while !session.wait(timeout: 0.25)
    }
}

/// What the input threads and the drawing share: the board, and the last message logged.
final class WatchView: Sendable {
    let board = Mutex(WatchBoard(title: "", signals: [], outputs: []))
    let lastMessage = Mutex<String?>(nil)
}

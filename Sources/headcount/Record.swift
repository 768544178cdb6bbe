import ArgumentParser
import Daemon
import Detection
import GPIO
import Synchronization
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `headcount record`: the van's live inputs written as a trace that `headcount replay` reads.
struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record the van's live inputs as a trace for `headcount replay`.",
        discussion: """
            Opens the config's GPIO lines and Modbus devices (the outputs are held off, never \
            driven) and writes them in the trace format `headcount replay` reads: the header with \
            the config's sensors and policy, the levels that are not false at t = 0, one line per \
            change, and the end line when --duration has passed or on Ctrl-C / SIGTERM (exit \
            status 0). Each line is written as it happens, so a recorder that is killed leaves a \
            readable trace up to that line. Stop the headcount service first: it holds the GPIO lines.
            """
    )

    @OptionGroup var files: VanConfigOptions

    @Option(help: "Stop after this many seconds (default: until Ctrl-C or SIGTERM).")
    var duration: Double?

    @Option(name: .shortAndLong, help: "Write the trace here instead of standard output.")
    var output: String?

    @OptionGroup var simulation: SimulationOptions

    func validate() throws {
        if let duration, !(duration > 0 && duration <= 7 * 86400) {
            throw ValidationError("--duration must be more than 0 and at most a week (604800 s)")
        }
    }

    func run() throws {
        // The output first: a path that cannot be written is found before any line is opened.
        let descriptor: Int32
        if let output, output != "-" {
            descriptor = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                let reason = String(cString: strerror(errno))
                Standard.error("headcount: \(output): cannot write: \(reason)\n")
                throw ExitCode(2)
            }
        } else {
            descriptor = STDOUT_FILENO
        }
        defer { if descriptor != STDOUT_FILENO { Glibc.close(descriptor) } }
        let session = try LiveSession(
            files: files, simulation: simulation, consumer: "headcount-record", log: Log.write)
        let speed = session.speed
        let writeFailed = Atomic<Int32>(0)
        let recorder = TraceRecorder(
            signals: session.inputs.signals.map(\.id), originNanoseconds: session.origin, speed: speed
        ) { line in
            let error = writeAll(line, to: descriptor)
            if error != 0, writeFailed.compareExchange(expected: 0, desired: error, ordering: .relaxed).exchanged {
                session.stop()
            }
        }
        recorder.begin(sensors: session.van.sensors.map(\.spec), policy: session.van.policy)
        do throws(GPIOError) {
            recorder.initial(try session.inputs.gpioLevels())
        } catch {
            Log.write(.error, "cannot read the GPIO lines: \(error.description)")
        }
        session.inputs.start { change in recorder.record(change) }

        // The planned end, in trace seconds: --duration, or the simulated trip's end.
        let planned = duration ?? session.simulationEnd.map { $0 * speed }
        if let planned { session.stop(atSecondsAfterOrigin: planned / speed) }
        let target = output.map { $0 == "-" ? "standard output" : $0 } ?? "standard output"
        Log.write(
            .notice,
            "recording \(session.inputs.signals.count) inputs of \(session.van.vehicleId) to \(target)"
                + (duration.map { " for \(formatNumber($0)) s" } ?? "; Ctrl-C ends the trace"))
        while !session.wait(timeout: 3600) {}
        // A planned end is written as planned (the timer fires a little late, more so at the
        // simulator's speed); Ctrl-C or SIGTERM ends the trace when it came.
        let stoppedAt = GPIOClock.monotonicNanoseconds()
        var endAt = stoppedAt
        if let planned, session.seconds(at: stoppedAt) >= planned {
            endAt = session.origin + UInt64(planned / speed * 1e9)
        }
        session.close()
        let length = recorder.end(atNanoseconds: endAt)
        let failure = writeFailed.load(ordering: .relaxed)
        if failure != 0 {
            Standard.error("headcount: \(target): cannot write: \(String(cString: strerror(failure)))\n")
            throw ExitCode(1)
        }
        Log.write(.notice, "recorded \(recorder.lineCount) lines over \(formatNumber(length)) s to \(target)")
    }
}

/// Writes all of `text` to `descriptor` (retrying short writes and EINTR); 0, or the errno of
/// the write that failed.
@discardableResult
func writeAll(_ text: String, to descriptor: Int32) -> Int32 {
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let written = bytes.withUnsafeBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return Glibc.write(descriptor, base + done, buffer.count - done)
        }
        if written < 0 {
            let error = errno
            if error == EINTR { continue }
            return error == 0 ? EIO : error
        }
        if written == 0 { return EIO }
        done += written
    }
    return 0
}

import Daemon
import Detection
import GPIO
import Testing

@Suite("What headcount watch shows")
struct WatchBoardTests {
    static let signals: [LiveInputs.Signal] = [
        LiveInputs.Signal(
            id: "ignition", kind: .ignition,
            source: .gpio(GPIOInputSpec(role: "ignition", line: "GPIO17", activeLow: true))),
        LiveInputs.Signal(
            id: "seat.3", kind: .seat, source: .gpio(GPIOInputSpec(role: "seat.3", line: "GPIO22", activeLow: true))),
        LiveInputs.Signal(
            id: "cabin", kind: .temperature, source: .modbus(bus: "rs485", device: "climate", point: "temperature")),
    ]
    static let outputs = [
        GPIOOutputSpec(role: "buzzer", line: "GPIO23"), GPIOOutputSpec(role: "horn", line: "GPIO24", activeLow: true),
    ]
    static let second: UInt64 = 1_000_000_000

    func board() -> WatchBoard {
        var board = WatchBoard(title: "headcount watch — van-07", signals: Self.signals, outputs: Self.outputs)
        board.initial([(0, true), (1, false)])
        return board
    }

    /// The screen without its ANSI attributes.
    func text(_ lines: [String]) -> [String] {
        lines.map { line in
            var out = ""
            var escape = false
            for character in line {
                if character == "\u{1B}" {
                    escape = true
                } else if escape {
                    if character.isLetter { escape = false }
                } else {
                    out.append(character)
                }
            }
            return out
        }
    }

    @Test("the plain view: the levels at the start, then one line per real change, faults and recoveries")
    func plainLines() {
        var board = board()
        #expect(board.startLines() == ["+0.000 ignition = true", "+0.000 seat.3 = false"])
        #expect(
            board.apply(
                .reading(signal: 1, .flag(true), atNanoseconds: 12 * Self.second), t: 12.345, seenAt: 12 * Self.second)
                == "+12.345 seat.3 = true")
        #expect(
            board.apply(
                .reading(signal: 1, .flag(true), atNanoseconds: 13 * Self.second), t: 13, seenAt: 13 * Self.second)
                == nil)
        #expect(
            board.apply(
                .reading(signal: 2, .number(27.5), atNanoseconds: 13 * Self.second), t: 13.0004,
                seenAt: 13 * Self.second)
                == "+13.000 cabin = 27.5")
        #expect(
            board.apply(
                .fault(signal: 2, reason: "timeout", atNanoseconds: 14 * Self.second), t: 14.05,
                seenAt: 14 * Self.second)
                == "+14.050 cabin fault: timeout")
        #expect(
            board.apply(
                .fault(signal: 2, reason: nil, atNanoseconds: 15 * Self.second), t: 15, seenAt: 15 * Self.second)
                == "+15.000 cabin recovered")
        #expect(
            board.apply(
                .reading(signal: 1, .flag(false), atNanoseconds: 16 * Self.second), t: 1234.5, seenAt: 16 * Self.second)
                == "+1234.500 seat.3 = false")
        #expect(board.rows.map(\.changes) == [0, 2, 1])
    }

    @Test("the table: every input with its source, value, changes and age; a changed row highlighted for a second")
    func table() {
        var board = board()
        _ = board.apply(
            .reading(signal: 1, .flag(true), atNanoseconds: 10 * Self.second), t: 10, seenAt: 10 * Self.second)
        let now = 10 * Self.second + Self.second / 2
        let screen = board.screen(now: now, columns: 120, lines: 40)
        let lines = text(screen)
        #expect(lines[0] == "headcount watch — van-07")
        #expect(lines[2].hasPrefix("SIGNAL    KIND         SOURCE"))
        #expect(lines[3] == "ignition  ignition     GPIO GPIO17, active low           true         0  —")
        #expect(lines[4] == "seat.3    seat         GPIO GPIO22, active low           true         1  0.5 s ago")
        #expect(lines[5] == "cabin     temperature  Modbus rs485.climate.temperature  —            0  —")
        #expect(lines.contains("  buzzer GPIO23: off   horn GPIO24 (active low): off"))
        #expect(lines.contains { $0.hasPrefix("Outputs: held off (inactive) while watching") })
        #expect(lines.last == "Ctrl-C to quit")
        // Reverse video on the changed row only, for a second.
        #expect(screen[4].hasPrefix("\u{1B}[7m"))
        #expect(!screen[3].hasPrefix("\u{1B}[7m"))
        let later = board.screen(now: 11 * Self.second + 1, columns: 120, lines: 40)
        #expect(!later[4].hasPrefix("\u{1B}[7m"))
        #expect(text(later)[4].hasSuffix("1.0 s ago"))
        // A change that reached the board late is highlighted for a second from then; its age
        // still counts from the edge.
        _ = board.apply(
            .reading(signal: 1, .flag(false), atNanoseconds: 30 * Self.second), t: 30,
            seenAt: 31 * Self.second + Self.second / 2)
        let late = board.screen(now: 32 * Self.second, columns: 120, lines: 40)
        #expect(late[4].hasPrefix("\u{1B}[7m"))
        #expect(text(late)[4].hasSuffix("2.0 s ago"))
        // A faulty input in red, with its reason.
        _ = board.apply(
            .fault(signal: 2, reason: "no device", atNanoseconds: 20 * Self.second), t: 20, seenAt: 20 * Self.second)
        let faulty = board.screen(
            now: 25 * Self.second, columns: 120, lines: 40, message: "Modbus device climate: fault")
        #expect(faulty[5].contains("\u{1B}[31m"))
        #expect(text(faulty)[5].contains("FAULT: no device"))
        #expect(text(faulty).contains("Last message: Modbus device climate: fault"))
        #expect(text(board.screen(now: 200 * Self.second, columns: 120, lines: 40))[4].hasSuffix("2 min 50 s ago"))
    }

    @Test("a small window: lines cut to its width, rows left out with a note, the footer kept")
    func smallWindow() {
        let lines = text(board().screen(now: 0, columns: 30, lines: 9))
        #expect(lines.count == 9)
        #expect(lines.allSatisfy { $0.count <= 30 })
        #expect(lines.contains("… and 2 more inputs: make the…"))
        #expect(lines.last == "Ctrl-C to quit")
    }
}

import Detection
import GPIO

/// What `headcount watch` shows a technician pressing seat mats one by one: every input of the van
/// with its value, how many times it changed and how long ago, and the outputs, held off. Drawn as
/// a full-screen table (`screen`) or written as one line per change (`apply`'s result).
///
/// Only real changes count: a level read again as it was (an edge that the start-up snapshot
/// already showed) changes nothing.
public struct WatchBoard: Sendable {
    /// One input's line of the table.
    public struct Row: Sendable, Equatable {
        public var signal: LiveInputs.Signal
        /// The current reading; nil until a Modbus point first answers.
        public var value: Reading?
        /// Why the input is faulty, while it is.
        public var fault: String?
        /// Changes of value seen (a fault and its recovery are shown, not counted).
        public var changes = 0
        /// When it last changed, CLOCK_MONOTONIC nanoseconds.
        public var changedAt: UInt64?
        /// When the board took that change: the row is highlighted for a second from then, so a
        /// change that reached the screen late is still seen.
        public var seenAt: UInt64?
    }

    /// How long a changed row stays highlighted.
    public static let highlightNanoseconds: UInt64 = 1_000_000_000

    public private(set) var rows: [Row]
    public let outputs: [GPIOOutputSpec]
    public let title: String

    public init(title: String, signals: [LiveInputs.Signal], outputs: [GPIOOutputSpec]) {
        self.title = title
        self.outputs = outputs
        rows = signals.map { Row(signal: $0) }
    }

    /// The levels found at the start: the rows' first values (not changes).
    public mutating func initial(_ levels: [(signal: Int, value: Bool)]) {
        for (signal, value) in levels where rows.indices.contains(signal) { rows[signal].value = .flag(value) }
    }

    /// Applies one change that happened `t` trace seconds after the start and reached the board
    /// at `seenAt` (CLOCK_MONOTONIC nanoseconds); returns its line for the plain view
    /// (`+12.345 seat.3 = true`), or nil when it changed nothing.
    public mutating func apply(_ change: LiveInputs.Change, t: Double, seenAt: UInt64) -> String? {
        let time = WatchBoard.stamp(t)
        switch change {
        case .reading(let signal, let reading, let at):
            guard rows.indices.contains(signal), rows[signal].value != reading else { return nil }
            rows[signal].value = reading
            rows[signal].changes += 1
            rows[signal].changedAt = at
            rows[signal].seenAt = seenAt
            return "\(time) \(rows[signal].signal.id) = \(WatchBoard.text(reading))"
        case .fault(let signal, let reason, let at):
            guard rows.indices.contains(signal), rows[signal].fault != reason else { return nil }
            rows[signal].fault = reason
            rows[signal].changedAt = at
            rows[signal].seenAt = seenAt
            if let reason { return "\(time) \(rows[signal].signal.id) fault: \(reason)" }
            return "\(time) \(rows[signal].signal.id) recovered"
        }
    }

    /// The plain view's first lines: every value known at the start, at +0.000.
    public func startLines() -> [String] {
        rows.compactMap { row in row.value.map { "+0.000 \(row.signal.id) = \(WatchBoard.text($0))" } }
    }

    /// The whole screen at `now` (CLOCK_MONOTONIC nanoseconds), fitted to `columns` × `lines`
    /// (each line cut to the width, rows left out with a note when the window is too short),
    /// with ANSI attributes: changed rows in reverse video for a second, faulty ones in red.
    /// `message` is the last thing logged (a Modbus fault, a GPIO error), if any.
    public func screen(now: UInt64, columns: Int, lines: Int, message: String? = nil) -> [String] {
        let width = max(20, columns)
        let header = ["SIGNAL", "KIND", "SOURCE", "VALUE", "CHANGES", "LAST CHANGE"]
        let cells = rows.map { row in
            [
                row.signal.id, row.signal.kind.rawValue, WatchBoard.source(row.signal.source),
                row.fault.map { "FAULT: \($0)" } ?? row.value.map { WatchBoard.display($0, kind: row.signal.kind) }
                    ?? "—",
                String(row.changes), row.changedAt.map { WatchBoard.age(now > $0 ? now - $0 : 0) } ?? "—",
            ]
        }
        var widths = header.map(\.count)
        for row in cells { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        func format(_ cells: [String]) -> String {
            var text = ""
            for (index, cell) in cells.enumerated() {
                // Counts right-aligned, the rest left-aligned.
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                text += index == 4 ? pad + cell : cell + (index == cells.count - 1 ? "" : pad)
                if index < cells.count - 1 { text += "  " }
            }
            return text
        }
        func cut(_ text: String) -> String { text.count > width ? String(text.prefix(width - 1)) + "…" : text }
        let bold = "\u{1B}[1m"
        let reverse = "\u{1B}[7m"
        let red = "\u{1B}[31m"
        let plain = "\u{1B}[0m"

        var top = [bold + cut(title) + plain, "", bold + cut(format(header)) + plain]
        var bottom = [
            "",
            cut("Outputs: held off (inactive) while watching; watch never drives them (diagnose --actuate does)"),
            cut(
                "  "
                    + outputs.map { "\($0.role) \($0.line)\($0.activeLow ? " (active low)" : ""): off" }
                    .joined(separator: "   ")),
        ]
        if let message { bottom.append(cut("Last message: \(message)")) }
        bottom.append(bold + "Ctrl-C to quit" + plain)
        let room = max(1, lines - top.count - bottom.count)
        var shown = Array(rows.indices)
        var note: String?
        if shown.count > room {
            shown = Array(shown.prefix(room - 1))
            note = cut("… and \(rows.count - shown.count) more inputs: make the window taller")
        }
        for index in shown {
            let row = rows[index]
            var line = cut(format(cells[index]))
            if row.fault != nil { line = red + line + plain }
            if let seen = row.seenAt, now < seen + WatchBoard.highlightNanoseconds {
                line = reverse + line + plain
            }
            top.append(line)
        }
        if let note { top.append(note) }
        return top + bottom
    }

    /// "+12.345": trace seconds to the millisecond.
    static func stamp(_ t: Double) -> String {
        let milliseconds = Int((max(0, t) * 1000).rounded())
        let fraction = String(milliseconds % 1000)
        return "+\(milliseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// A reading as a trace writes it: true, false or the number.
    static func text(_ reading: Reading) -> String {
        switch reading {
        case .flag(let on): String(on)
        case .number(let value): formatNumber((value * 10_000).rounded() / 10_000)
        }
    }

    /// A reading for the table: numbers with their unit.
    static func display(_ reading: Reading, kind: SensorKind) -> String {
        switch (reading, kind) {
        case (.flag(let on), _): String(on)
        case (.number(let value), .temperature): formatNumber((value * 10).rounded() / 10) + " °C"
        case (.number(let value), .co2): formatNumber(value.rounded()) + " ppm"
        case (.number(let value), .seat): formatNumber((value * 10).rounded() / 10) + " kg"
        case (.number(let value), _): formatNumber((value * 100).rounded() / 100)
        }
    }

    /// Where an input is read, as a technician checks the wiring.
    static func source(_ source: LiveInputs.Source) -> String {
        switch source {
        case .gpio(let spec): "GPIO \(spec.line)\(spec.activeLow ? ", active low" : "")"
        case .modbus(let bus, let device, let point): "Modbus \(bus).\(device).\(point)"
        }
    }

    /// "0.4 s ago", "3 min 05 s ago", "2 h 10 min ago".
    static func age(_ nanoseconds: UInt64) -> String {
        let tenths = Int(nanoseconds / 100_000_000)
        let seconds = tenths / 10
        if seconds < 60 { return "\(seconds).\(tenths % 10) s ago" }
        if seconds < 3600 { return "\(seconds / 60) min \(seconds % 60 < 10 ? "0" : "")\(seconds % 60) s ago" }
        return "\(seconds / 3600) h \(seconds / 60 % 60) min ago"
    }
}

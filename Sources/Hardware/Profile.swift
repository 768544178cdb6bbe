import Detection

/// How a GPIO input line is pulled.
public enum LineBias: String, Sendable, CaseIterable {
    case asIs = "as-is"
    case disabled
    case pullUp = "pull-up"
    case pullDown = "pull-down"
}

/// One GPIO input of a board: the role it plays and how it is wired.
public struct InputLine: Equatable, Sendable {
    /// "ignition", "door", "button", or a sensor line such as "seat.1", "radar.1", "pir.1".
    public var role: String
    /// The line's name on the chip ("GPIO17"): never a number, which boards renumber.
    public var line: String
    public var activeLow: Bool
    public var bias: LineBias
    public var debounceMs: Int

    public init(role: String, line: String, activeLow: Bool, bias: LineBias, debounceMs: Int) {
        self.role = role
        self.line = line
        self.activeLow = activeLow
        self.bias = bias
        self.debounceMs = debounceMs
    }
}

/// One GPIO output of a board.
public struct OutputLine: Equatable, Sendable {
    /// "buzzer", "horn", "hazard" or "status_led".
    public var role: String
    public var line: String
    public var activeLow: Bool
}

/// A board: which GPIO chip (by label) and which line plays each role, from
/// `HardwareProfiles/NAME.toml`.
public struct HardwareProfile: Equatable, Sendable {
    public var board: String
    public var description: String
    public var chipLabel: String
    public var inputs: [InputLine]
    public var outputs: [OutputLine]

    public static let builtInInputRoles = ["ignition", "door", "button"]
    public static let outputRoles = ["buzzer", "horn", "hazard", "status_led"]

    public func input(_ role: String) -> InputLine? { inputs.first { $0.role == role } }
    public func output(_ role: String) -> OutputLine? { outputs.first { $0.role == role } }

    /// Reads a profile file. Every error names the file, the line and the field.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> HardwareProfile {
        let root = try TableReader.parse(text, file: file)
        try root.rejectUnknownKeys(["board", "description", "gpio", "inputs", "outputs"])
        guard let gpio = try root.table("gpio") else { throw root.error("gpio", "missing: [gpio] with chip_label") }
        try gpio.rejectUnknownKeys(["chip_label", "debounce_ms"])
        let defaultDebounce = try gpio.integer("debounce_ms", in: 0...1000, default: 10)
        var profile = HardwareProfile(
            board: try root.string("board"), description: try root.string("description", default: "") ?? "",
            chipLabel: try gpio.string("chip_label"), inputs: [], outputs: [])
        var usedLines: [String: String] = [:]
        func claim(_ line: String, for role: String, in reader: TableReader) throws(ConfigError) {
            if let other = usedLines[line] {
                throw reader.error("line", "line \(line) is already used by \(other)")
            }
            usedLines[line] = role
        }
        guard let inputs = try root.table("inputs") else {
            throw root.error("inputs", "missing: [inputs.ignition], [inputs.door] and [inputs.button] at least")
        }
        for (role, _) in inputs.table.entries {
            guard let entry = try inputs.table(role) else { continue }
            try entry.rejectUnknownKeys(["line", "active_low", "bias", "debounce_ms"])
            let line = try entry.string("line")
            try claim(line, for: role, in: entry)
            profile.inputs.append(
                InputLine(
                    role: role, line: line, activeLow: try entry.bool("active_low", default: false),
                    bias: LineBias(
                        rawValue: try entry.choice("bias", LineBias.allCases.map(\.rawValue), default: "as-is"))
                        ?? .asIs,
                    debounceMs: try entry.integer("debounce_ms", in: 0...1000, default: defaultDebounce)))
        }
        for role in builtInInputRoles where profile.input(role) == nil {
            throw inputs.error(
                nil, "missing [inputs.\(role)]: every van has an ignition sense, a door and the rear button")
        }
        if let outputs = try root.table("outputs") {
            for (role, _) in outputs.table.entries {
                guard let entry = try outputs.table(role) else { continue }
                guard outputRoles.contains(role) else {
                    throw outputs.error(role, "unknown output (known: \(outputRoles.joined(separator: ", ")))")
                }
                try entry.rejectUnknownKeys(["line", "active_low"])
                let line = try entry.string("line")
                try claim(line, for: role, in: entry)
                profile.outputs.append(
                    OutputLine(role: role, line: line, activeLow: try entry.bool("active_low", default: false)))
            }
        }
        for role in ["buzzer", "horn"] where profile.output(role) == nil {
            throw root.error("outputs", "missing [outputs.\(role)]: an alarm must be heard")
        }
        return profile
    }
}

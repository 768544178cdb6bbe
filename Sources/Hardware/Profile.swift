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
        var problems = ConfigProblems()
        let profile = parse(text, file: file, problems: &problems)
        return try problems.value(profile, file: file)
    }

    /// Reads a profile file, recording every error in `problems` rather than stopping at the first.
    /// Returns the profile as far as it could be read (nil when the file is not TOML); after an
    /// error it is fit only for checking which roles a van's config names.
    public static func parse(_ text: String, file: String, problems: inout ConfigProblems) -> HardwareProfile? {
        guard let root = problems.check(try TableReader.parse(text, file: file)) else { return nil }
        problems.add(root.unknownKeys(["board", "description", "gpio", "inputs", "outputs"]))
        let gpio = problems.check(try root.table("gpio")) ?? nil
        if !root.has("gpio") { problems.add(root.error("gpio", "missing: [gpio] with chip_label")) }
        var defaultDebounce = 10
        var chipLabel = ""
        if let gpio {
            problems.add(gpio.unknownKeys(["chip_label", "debounce_ms"]))
            defaultDebounce = problems.check(try gpio.integer("debounce_ms", in: 0...1000, default: 10)) ?? 10
            chipLabel = problems.check(try gpio.string("chip_label")) ?? ""
        }
        var profile = HardwareProfile(
            board: problems.check(try root.string("board")) ?? "",
            description: (problems.check(try root.string("description", default: "")) ?? nil) ?? "",
            chipLabel: chipLabel, inputs: [], outputs: [])

        var usedLines: [String: String] = [:]
        /// The line's name; each line serves one role (a line opened twice fails in the van).
        func claimLine(of entry: TableReader, for role: String, problems: inout ConfigProblems) -> String {
            if let node = entry.table["line"], node.integerValue != nil {
                problems.add(entry.error("line", "expected the line's name (such as \"GPIO17\"), never its number"))
                return ""
            }
            guard let line = problems.check(try entry.string("line")) else { return "" }
            if let other = usedLines[line] {
                problems.add(entry.error("line", "line \(line) is already used by \(other)"))
            } else {
                usedLines[line] = role
            }
            return line
        }

        let inputs = problems.check(try root.table("inputs")) ?? nil
        if !root.has("inputs") {
            problems.add(
                root.error("inputs", "missing: [inputs.ignition], [inputs.door] and [inputs.button] at least"))
        }
        if let inputs {
            for (role, _) in inputs.table.entries {
                guard let entry = problems.check(try inputs.table(role)) ?? nil else { continue }
                problems.add(entry.unknownKeys(["line", "active_low", "bias", "debounce_ms"]))
                let line = claimLine(of: entry, for: role, problems: &problems)
                let activeLow = problems.check(try entry.bool("active_low", default: false)) ?? false
                let bias = problems.check(try entry.choice("bias", LineBias.allCases.map(\.rawValue), default: "as-is"))
                let debounce = problems.check(try entry.integer("debounce_ms", in: 0...1000, default: defaultDebounce))
                profile.inputs.append(
                    InputLine(
                        role: role, line: line, activeLow: activeLow,
                        bias: bias.flatMap(LineBias.init(rawValue:)) ?? .asIs, debounceMs: debounce ?? defaultDebounce))
            }
            for role in builtInInputRoles where inputs.table[role] == nil {
                problems.add(
                    inputs.error(
                        nil, "missing [inputs.\(role)]: every van has an ignition sense, a door and the rear button"))
            }
        }

        let outputs = problems.check(try root.table("outputs")) ?? nil
        if let outputs {
            for (role, _) in outputs.table.entries {
                guard let entry = problems.check(try outputs.table(role)) ?? nil else { continue }
                guard outputRoles.contains(role) else {
                    problems.add(
                        outputs.error(
                            role,
                            "unknown output \(ConfigError.allowed("known", outputRoles, instead: role))"))
                    continue
                }
                problems.add(entry.unknownKeys(["line", "active_low"]))
                let line = claimLine(of: entry, for: role, problems: &problems)
                let activeLow = problems.check(try entry.bool("active_low", default: false)) ?? false
                profile.outputs.append(OutputLine(role: role, line: line, activeLow: activeLow))
            }
        }
        if outputs != nil || !root.has("outputs") {
            for role in ["buzzer", "horn"] where outputs?.table[role] == nil {
                problems.add(root.error("outputs", "missing [outputs.\(role)]: an alarm must be heard"))
            }
        }
        return profile
    }
}

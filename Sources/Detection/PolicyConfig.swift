import Formats

/// A config file that cannot be used, with where and why.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    /// The dotted TOML key at fault, when there is one.
    public var field: String?
    public var message: String

    public init(file: String, line: Int, field: String?, message: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }

    public var description: String {
        if let field { return "\(file):\(line): \(field): \(message)" }
        return "\(file):\(line): \(message)"
    }
}

extension Policy {
    /// Applies the `[policy]` table of a van's config, if it has one; every value is checked
    /// against its bounds and an error names the file, the line and the key.
    public mutating func apply(policyTableOf config: TOMLTable, file: String) throws(ConfigError) {
        var problems = ConfigProblems()
        apply(policyTableOf: config, file: file, problems: &problems)
        if let first = problems.errors.first { throw first }
    }

    /// Like `apply(policyTableOf:file:)`, recording every bad value (each keeps its default) instead
    /// of stopping at the first.
    public mutating func apply(policyTableOf config: TOMLTable, file: String, problems: inout ConfigProblems) {
        guard let node = config["policy"] else { return }
        guard case .table(let table) = node.value else {
            problems.add(
                ConfigError(file: file, line: node.line, field: "policy", message: "expected a table [policy]"))
            return
        }
        let known = Policy.settings.map(\.name)
        for (name, entry) in table.entries {
            let field = "policy.\(name)"
            guard known.contains(name) else {
                problems.add(
                    ConfigError(
                        file: file, line: entry.line, field: field,
                        message:
                            "unknown policy setting \"\(name)\" \(ConfigError.allowed("known", known, instead: name))"))
                continue
            }
            let number: Double
            switch entry.value {
            case .integer(let value): number = Double(value)
            case .float(let value): number = value
            default:
                problems.add(
                    ConfigError(
                        file: file, line: entry.line, field: field,
                        message: "expected a number, found \(entry.typeName)\(Policy.boundsHint(name))"))
                continue
            }
            do {
                try set(name, to: number)
            } catch {
                problems.add(ConfigError(file: file, line: entry.line, field: field, message: error.description))
            }
        }
    }

    /// " (allowed: 30–120)" for a known setting, so that a wrong type also says what is allowed.
    static func boundsHint(_ name: String) -> String {
        Policy.setting(named: name).map { " (allowed: \($0.integral ? "whole numbers " : "")\($0.boundsText))" } ?? ""
    }
}

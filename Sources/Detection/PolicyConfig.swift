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
        guard let node = config["policy"] else { return }
        guard case .table(let table) = node.value else {
            throw ConfigError(file: file, line: node.line, field: "policy", message: "expected a table [policy]")
        }
        for (name, entry) in table.entries {
            let field = "policy.\(name)"
            let number: Double
            switch entry.value {
            case .integer(let value): number = Double(value)
            case .float(let value): number = value
            default:
                throw ConfigError(
                    file: file, line: entry.line, field: field, message: "expected a number, found \(entry.typeName)")
            }
            do {
                try set(name, to: number)
            } catch {
                throw ConfigError(file: file, line: entry.line, field: field, message: error.description)
            }
        }
    }
}

import Detection
import Formats

/// Reads typed values out of one TOML table of one file, so that every error names the file, the
/// line and the dotted field: "headcount.toml:14: modbus[0].device[1].unit: 300 is out of bounds 1–247".
public struct TableReader: Sendable {
    public let file: String
    public let table: TOMLTable
    /// The dotted path of this table ("" for the root).
    public let path: String

    public init(file: String, table: TOMLTable, path: String = "") {
        self.file = file
        self.table = table
        self.path = path
    }

    /// Parses a whole file's text.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> TableReader {
        do {
            return TableReader(file: file, table: try TOML.parse(text))
        } catch {
            throw ConfigError(file: file, line: error.line, field: nil, message: error.message)
        }
    }

    public func field(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    public func error(_ key: String?, _ message: String, line: Int? = nil) -> ConfigError {
        let at = line ?? key.flatMap { table[$0]?.line } ?? table.line
        return ConfigError(file: file, line: at, field: key.map(field) ?? (path.isEmpty ? nil : path), message: message)
    }

    /// Refuses keys this table does not know: a typo must never silently fall back to a default.
    public func rejectUnknownKeys(_ known: [String]) throws(ConfigError) {
        if let first = unknownKeys(known).first { throw first }
    }

    /// An error for every key this table does not know, with the known key it is likely a typo of.
    public func unknownKeys(_ known: [String]) -> [ConfigError] {
        table.entries.filter { !known.contains($0.key) }.map { key, node in
            ConfigError(
                file: file, line: node.line, field: field(key),
                message: "unknown key \(ConfigError.allowed("known here", known, instead: key))")
        }
    }

    public func has(_ key: String) -> Bool { table[key] != nil }

    public func line(of key: String) -> Int { table[key]?.line ?? table.line }

    public func string(_ key: String) throws(ConfigError) -> String {
        guard let node = table[key] else { throw error(key, "missing (a string)") }
        guard let value = node.stringValue else { throw error(key, "expected a string, found \(node.typeName)") }
        guard !value.isEmpty else { throw error(key, "must not be empty") }
        return value
    }

    public func string(_ key: String, default value: String?) throws(ConfigError) -> String? {
        guard has(key) else { return value }
        return try string(key)
    }

    /// A string from a fixed set of choices.
    public func choice(_ key: String, _ choices: [String], default value: String? = nil) throws(ConfigError) -> String {
        if !has(key), let value { return value }
        let allowed = choices.joined(separator: ", ")
        guard let node = table[key] else { throw error(key, "missing (one of: \(allowed))") }
        guard let text = node.stringValue else {
            throw error(key, "expected a string, found \(node.typeName) (one of: \(allowed))")
        }
        guard choices.contains(text) else {
            throw error(
                key,
                "\"\(text)\" is not one of: \(allowed)" + ConfigError.didYouMean(text, among: choices))
        }
        return text
    }

    public func integer(_ key: String, in bounds: ClosedRange<Int>, default value: Int? = nil) throws(ConfigError)
        -> Int
    {
        guard let node = table[key] else {
            if let value { return value }
            throw error(key, "missing (a whole number from \(bounds.lowerBound) to \(bounds.upperBound))")
        }
        guard let number = node.integerValue else {
            throw error(
                key,
                "expected a whole number, found \(node.typeName) (allowed: \(bounds.lowerBound)–\(bounds.upperBound))")
        }
        guard number >= Int64(bounds.lowerBound), number <= Int64(bounds.upperBound) else {
            throw error(key, "\(number) is out of bounds \(bounds.lowerBound)–\(bounds.upperBound)")
        }
        return Int(number)
    }

    /// An integer from a fixed set (baud rates).
    public func integer(_ key: String, oneOf choices: [Int], default value: Int) throws(ConfigError) -> Int {
        guard let node = table[key] else { return value }
        let allowed = choices.map(String.init).joined(separator: ", ")
        guard let number = node.integerValue else {
            throw error(key, "expected a whole number, found \(node.typeName) (allowed: \(allowed))")
        }
        guard let match = choices.first(where: { Int64($0) == number }) else {
            throw error(key, "\(number) is not one of: \(allowed)")
        }
        return match
    }

    public func number(_ key: String, default value: Double? = nil) throws(ConfigError) -> Double {
        guard let node = table[key] else {
            if let value { return value }
            throw error(key, "missing (a number)")
        }
        guard let number = node.doubleValue else { throw error(key, "expected a number, found \(node.typeName)") }
        guard number.isFinite else { throw error(key, "must be a finite number, not \(number)") }
        return number
    }

    public func bool(_ key: String, default value: Bool) throws(ConfigError) -> Bool {
        guard let node = table[key] else { return value }
        guard let flag = node.boolValue else { throw error(key, "expected true or false, found \(node.typeName)") }
        return flag
    }

    public func table(_ key: String) throws(ConfigError) -> TableReader? {
        guard let node = table[key] else { return nil }
        guard let sub = node.tableValue else { throw error(key, "expected a table, found \(node.typeName)") }
        return TableReader(file: file, table: sub, path: field(key))
    }

    /// The tables of `[[key]]` (or an inline array of tables), each with its index in the path.
    public func tables(_ key: String) throws(ConfigError) -> [TableReader] {
        guard let node = table[key] else { return [] }
        guard let items = node.arrayValue else {
            throw error(key, "expected [[\(field(key))]] tables, found \(node.typeName)")
        }
        var readers: [TableReader] = []
        for (index, item) in items.enumerated() {
            guard let sub = item.tableValue else {
                throw ConfigError(
                    file: file, line: item.line, field: "\(field(key))[\(index)]",
                    message: "expected a table, found \(item.typeName)")
            }
            readers.append(TableReader(file: file, table: sub, path: "\(field(key))[\(index)]"))
        }
        return readers
    }

    /// Two numbers `[low, high]`.
    public func range(_ key: String) throws(ConfigError) -> ClosedRange<Double>? {
        guard let node = table[key] else { return nil }
        guard let items = node.arrayValue, items.count == 2, let low = items[0].doubleValue,
            let high = items[1].doubleValue, low <= high
        else {
            throw error(key, "expected [low, high] with low <= high")
        }
        return low...high
    }
}

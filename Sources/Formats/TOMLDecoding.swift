// Conveniences for config decoders built on `TOML.parse`: type names and typed accessors for error messages such
// as "headcount.toml:12: policy.check_window_s: 200 is out of bounds 30–120".

extension TOMLValue {
    /// "string", "integer", "float", "boolean", "datetime", "array" or "table".
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .bool: return "boolean"
        case .datetime: return "datetime"
        case .array: return "array"
        case .table: return "table"
        }
    }
}

extension TOMLNode {
    /// "string", "integer", "float", "boolean", "datetime", "array" or "table".
    public var typeName: String { value.typeName }

    public var stringValue: String? {
        if case .string(let s) = value { return s }
        return nil
    }

    public var integerValue: Int64? {
        if case .integer(let i) = value { return i }
        return nil
    }

    /// A float, or an integer converted to `Double` (config values such as `timeout = 5` are often meant as
    /// floats). Integers beyond 2^53 are rounded.
    public var doubleValue: Double? {
        switch value {
        case .float(let d): return d
        case .integer(let i): return Double(i)
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = value { return b }
        return nil
    }

    /// The raw text of a date-time, date or time.
    public var datetimeText: String? {
        if case .datetime(let s) = value { return s }
        return nil
    }

    public var arrayValue: [TOMLNode]? {
        if case .array(let a) = value { return a }
        return nil
    }

    public var tableValue: TOMLTable? {
        if case .table(let t) = value { return t }
        return nil
    }

    /// An error located at this node, for decoders: `throw node.error("200 is out of bounds 30–120")`.
    public func error(_ message: String) -> TOMLError {
        TOMLError(line: line, column: column, message: message)
    }
}

// A strict RFC 8259 JSON reader that works directly on UTF-8 bytes, plus a small compact writer.
//
// The reader never traps on any input: every byte sequence either yields a `JSONValue` or throws a
// `JSONSyntaxError` carrying the 1-based line and byte column of the problem. Nesting deeper than
// `JSON.maximumNestingDepth` (64) arrays/objects is reported as an error, so recursion is bounded.

/// A parsed JSON value.
///
/// Numbers are kept as `Double` (RFC 8259 leaves precision to the implementation); integers up to 2^53 are exact.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// An object that keeps its keys in document order.
///
/// Equality is order-sensitive: two objects are equal when they have the same key/value pairs in the same order.
public struct JSONObject: Equatable, Sendable {
    public var entries: [(key: String, value: JSONValue)]

    public init(_ entries: [(key: String, value: JSONValue)] = []) {
        self.entries = entries
    }

    /// The value of the first entry with this key. Setting replaces the first match (or appends a new entry);
    /// setting `nil` removes every entry with this key.
    public subscript(key: String) -> JSONValue? {
        get {
            for entry in entries where entry.key == key { return entry.value }
            return nil
        }
        set {
            if let newValue {
                if let index = entries.firstIndex(where: { $0.key == key }) {
                    entries[index].value = newValue
                } else {
                    entries.append((key: key, value: newValue))
                }
            } else {
                entries.removeAll { $0.key == key }
            }
        }
    }

    /// The keys in document order.
    public var keys: [String] { entries.map(\.key) }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for (l, r) in zip(lhs.entries, rhs.entries) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }
}

extension JSONValue {
    /// "null", "boolean", "number", "string", "array" or "object".
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }

    /// The number as an `Int` when it is integral and representable exactly, otherwise nil.
    public var intValue: Int? {
        if case .number(let d) = self { return Int(exactly: d) }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// Member lookup on an object value; nil for a missing key or when this is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
}

/// A syntax error with the position of the problem.
///
/// `line` is 1-based and only exceeds 1 when the input spans several lines; `column` is the 1-based byte column
/// within that line (for a single JSON Lines record: the byte offset in the record plus one).
public struct JSONSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public init(line: Int = 1, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// "column 12: message", or "line 3, column 12: message" for multi-line input.
    public var description: String {
        line == 1 ? "column \(column): \(message)" : "line \(line), column \(column): \(message)"
    }
}

public enum JSON {
    /// Arrays and objects may nest this deep; one more level is a syntax error.
    public static let maximumNestingDepth = Formats.maximumNestingDepth

    /// Parses exactly one JSON value (surrounded by optional whitespace).
    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
        let fast = text.utf8.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONSyntaxError) -> JSONValue in try parse(bytes: buffer) }
        }
        if let fast { return try fast.get() }
        let copy = Array(text.utf8)
        return try copy.withUnsafeBufferPointer { buffer in
            Result { () throws(JSONSyntaxError) -> JSONValue in try parse(bytes: buffer) }
        }.get()
    }

    /// Parses exactly one JSON value from a substring (for example one line of a JSON Lines file).
    public static func parse(_ text: Substring) throws(JSONSyntaxError) -> JSONValue {
        let fast = text.utf8.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONSyntaxError) -> JSONValue in try parse(bytes: buffer) }
        }
        if let fast { return try fast.get() }
        return try parse(String(text))
    }

    /// Parses exactly one JSON value from UTF-8 bytes (which are validated; invalid UTF-8 is an error).
    public static func parse(bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(buf: bytes)
        return try parser.parseDocument()
    }

    /// Compact JSON text for a value (keys in their stored order, numbers formatted like `JSONWriter`).
    ///
    /// Recursion follows the value's nesting; values produced by `parse` are at most 64 levels deep.
    public static func serialize(_ value: JSONValue) -> String {
        var writer = JSONWriter()
        writer.element(value)
        return writer.text
    }
}

// MARK: - Parser

struct JSONParser {
    let buf: UnsafeBufferPointer<UInt8>
    var pos = 0
    /// Reused buffer for strings that contain escapes.
    var scratch: [UInt8] = []

    init(buf: UnsafeBufferPointer<UInt8>) {
        self.buf = buf
    }

    mutating func parseDocument() throws(JSONSyntaxError) -> JSONValue {
        skipWhitespace()
        guard pos < buf.count else {
            throw error("expected a JSON value, found end of input", at: pos)
        }
        let value = try parseValue(depth: 0)
        skipWhitespace()
        if pos < buf.count {
            throw error("trailing characters after JSON value", at: pos)
        }
        return value
    }

    /// Builds an error for a byte offset, working out line and column (only done on the error path).
    func error(_ message: String, at offset: Int) -> JSONSyntaxError {
        var line = 1
        var lineStart = 0
        let end = min(max(offset, 0), buf.count)
        var i = 0
        while i < end {
            if buf[i] == ASCII.newline {
                line += 1
                lineStart = i + 1
            }
            i += 1
        }
        return JSONSyntaxError(line: line, column: end - lineStart + 1, message: message)
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < buf.count {
            switch buf[pos] {
            case ASCII.space, ASCII.newline, ASCII.carriageReturn, ASCII.tab: pos += 1
            default: return
            }
        }
    }

    /// Parses the value starting at `pos` (which must be in bounds). `depth` is the number of enclosing containers.
    mutating func parseValue(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        let b = buf[pos]
        switch b {
        case ASCII.quote:
            return .string(try parseString())
        case ASCII.leftBrace:
            return try parseObject(depth: depth + 1)
        case ASCII.leftBracket:
            return try parseArray(depth: depth + 1)
        case ASCII.minus, ASCII.plus, ASCII.dot, ASCII.zero...ASCII.nine:
            return .number(try parseNumber())
        default:
            if ASCII.isLetter(b) { return try parseLiteral() }
            throw error("unexpected \(UTF8Scan.describe(byte: b)), expected a JSON value", at: pos)
        }
    }

    mutating func parseArray(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        let open = pos
        guard depth <= maximumNestingDepth else {
            throw error("nesting depth exceeds the limit of \(maximumNestingDepth)", at: open)
        }
        pos += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if pos < buf.count && buf[pos] == ASCII.rightBracket {
            pos += 1
            return .array(elements)
        }
        while true {
            guard pos < buf.count else { throw error("unterminated array", at: open) }
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard pos < buf.count else { throw error("unterminated array", at: open) }
            switch buf[pos] {
            case ASCII.comma:
                pos += 1
                skipWhitespace()
                if pos < buf.count && buf[pos] == ASCII.rightBracket {
                    throw error("trailing comma in array", at: pos)
                }
            case ASCII.rightBracket:
                pos += 1
                return .array(elements)
            default:
                throw error("expected ',' or ']' after array element", at: pos)
            }
        }
    }

    mutating func parseObject(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        let open = pos
        guard depth <= maximumNestingDepth else {
            throw error("nesting depth exceeds the limit of \(maximumNestingDepth)", at: open)
        }
        pos += 1
        var entries: [(key: String, value: JSONValue)] = []
        var seen: Set<String>? = nil
        skipWhitespace()
        if pos < buf.count && buf[pos] == ASCII.rightBrace {
            pos += 1
            return .object(JSONObject(entries))
        }
        while true {
            guard pos < buf.count else { throw error("unterminated object", at: open) }
            guard buf[pos] == ASCII.quote else {
                throw error("expected '\"' to begin an object key", at: pos)
            }
            let keyStart = pos
            let key = try parseString()
            // Objects are usually small: compare linearly, switch to a set for large ones.
            let duplicate: Bool
            if entries.count < 12 {
                duplicate = entries.contains { $0.key == key }
            } else {
                if seen == nil { seen = Set(entries.map(\.key)) }
                duplicate = !(seen?.insert(key).inserted ?? true)
            }
            if duplicate {
                throw error("duplicate key \(JSONWriter.quoted(key))", at: keyStart)
            }
            skipWhitespace()
            guard pos < buf.count else { throw error("unterminated object", at: open) }
            guard buf[pos] == ASCII.colon else {
                throw error("expected ':' after object key", at: pos)
            }
            pos += 1
            skipWhitespace()
            guard pos < buf.count else { throw error("unterminated object", at: open) }
            let value = try parseValue(depth: depth)
            entries.append((key: key, value: value))
            skipWhitespace()
            guard pos < buf.count else { throw error("unterminated object", at: open) }
            switch buf[pos] {
            case ASCII.comma:
                pos += 1
                skipWhitespace()
                if pos < buf.count && buf[pos] == ASCII.rightBrace {
                    throw error("trailing comma in object", at: pos)
                }
            case ASCII.rightBrace:
                pos += 1
                return .object(JSONObject(entries))
            default:
                throw error("expected ',' or '}' after object member", at: pos)
            }
        }
    }

    /// Parses a string starting at the opening quote at `pos`.
    mutating func parseString() throws(JSONSyntaxError) -> String {
        let open = pos
        let count = buf.count
        var i = pos + 1
        while i < count {
            let b = buf[i]
            if b == ASCII.quote {
                pos = i + 1
                return UTF8Scan.string(buf, open + 1..<i)
            }
            if b == ASCII.backslash {
                return try parseStringWithEscapes(open: open, from: i)
            }
            if b < 0x20 {
                throw error("unescaped \(UTF8Scan.describe(byte: b)) in string", at: i)
            }
            if b < 0x80 {
                i += 1
            } else {
                guard let n = UTF8Scan.sequenceLength(buf, at: i) else {
                    throw error("invalid UTF-8 in string", at: i)
                }
                i += n
            }
        }
        throw error("unterminated string", at: open)
    }

    /// Slow path: the string at `open` has an escape at `from`; the bytes before it are already validated.
    mutating func parseStringWithEscapes(open: Int, from: Int) throws(JSONSyntaxError) -> String {
        let count = buf.count
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: buf[(open + 1)..<from]))
        var i = from
        while i < count {
            let b = buf[i]
            if b == ASCII.quote {
                pos = i + 1
                return String(decoding: scratch, as: UTF8.self)
            }
            if b == ASCII.backslash {
                guard i + 1 < count else { break }
                let e = buf[i + 1]
                switch e {
                case ASCII.quote, ASCII.backslash, ASCII.slash: scratch.append(e)
                case ASCII.lowerB: scratch.append(0x08)
                case ASCII.lowerF: scratch.append(0x0C)
                case ASCII.lowerN: scratch.append(0x0A)
                case ASCII.lowerR: scratch.append(0x0D)
                case ASCII.lowerT: scratch.append(0x09)
                case ASCII.lowerU:
                    i = try appendUnicodeEscape(at: i)
                    continue
                default:
                    throw error("invalid escape '\\\(UTF8Scan.snippet(buf, (i + 1)..<(i + 2)))' in string", at: i)
                }
                i += 2
                continue
            }
            if b < 0x20 {
                throw error("unescaped \(UTF8Scan.describe(byte: b)) in string", at: i)
            }
            if b < 0x80 {
                scratch.append(b)
                i += 1
            } else {
                guard let n = UTF8Scan.sequenceLength(buf, at: i) else {
                    throw error("invalid UTF-8 in string", at: i)
                }
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: buf[i..<(i + n)]))
                i += n
            }
        }
        throw error("unterminated string", at: open)
    }

    /// Four hex digits at `at`, or nil.
    func hex4(at: Int) -> UInt32? {
        guard at >= 0, at + 4 <= buf.count else { return nil }
        var v: UInt32 = 0
        for j in at..<(at + 4) {
            guard let h = ASCII.hexValue(buf[j]) else { return nil }
            v = v << 4 | h
        }
        return v
    }

    /// Handles `\uXXXX` (and a following low surrogate) at `i`; returns the index after the escape(s).
    mutating func appendUnicodeEscape(at i: Int) throws(JSONSyntaxError) -> Int {
        guard let unit = hex4(at: i + 2) else {
            throw error("invalid \\u escape: expected 4 hex digits", at: i)
        }
        switch unit {
        case 0xD800...0xDBFF:
            if i + 7 < buf.count, buf[i + 6] == ASCII.backslash, buf[i + 7] == ASCII.lowerU,
                let low = hex4(at: i + 8), (0xDC00...0xDFFF).contains(low)
            {
                let scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                UTF8Scan.append(scalar: scalar, to: &scratch)
                return i + 12
            }
            throw error("lone surrogate \\u\(UTF8Scan.snippet(buf, (i + 2)..<(i + 6))) in string", at: i)
        case 0xDC00...0xDFFF:
            throw error("lone surrogate \\u\(UTF8Scan.snippet(buf, (i + 2)..<(i + 6))) in string", at: i)
        default:
            UTF8Scan.append(scalar: unit, to: &scratch)
            return i + 6
        }
    }

    @inline(__always)
    static func isNumberTokenByte(_ b: UInt8) -> Bool {
        ASCII.isDigit(b) || ASCII.isLetter(b) || b == ASCII.dot || b == ASCII.minus || b == ASCII.plus
            || b == ASCII.underscore
    }

    /// Parses a number token per the RFC 8259 grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    mutating func parseNumber() throws(JSONSyntaxError) -> Double {
        let start = pos
        let count = buf.count
        var end = pos
        while end < count && Self.isNumberTokenByte(buf[end]) { end += 1 }

        var i = start
        var negative = false
        if buf[i] == ASCII.minus {
            negative = true
            i += 1
        }
        let intStart = i
        var valid = i < end && ASCII.isDigit(buf[i])
        if valid {
            if buf[i] == ASCII.zero {
                i += 1
            } else {
                while i < end && ASCII.isDigit(buf[i]) { i += 1 }
            }
        }
        let intEnd = i
        var integral = true
        if valid && i < end && buf[i] == ASCII.dot {
            integral = false
            i += 1
            let digitsStart = i
            while i < end && ASCII.isDigit(buf[i]) { i += 1 }
            valid = i > digitsStart
        }
        if valid && i < end && (buf[i] == ASCII.lowerE || buf[i] == ASCII.upperE) {
            integral = false
            i += 1
            if i < end && (buf[i] == ASCII.plus || buf[i] == ASCII.minus) { i += 1 }
            let digitsStart = i
            while i < end && ASCII.isDigit(buf[i]) { i += 1 }
            valid = i > digitsStart
        }
        guard valid && i == end else {
            throw error("invalid number '\(UTF8Scan.snippet(buf, start..<end))'", at: start)
        }
        pos = end
        if integral && intEnd - intStart <= 15 {
            // Exact: every integer below 10^15 is representable.
            var v: Int64 = 0
            for j in intStart..<intEnd { v = v &* 10 &+ Int64(buf[j] &- ASCII.zero) }
            let d = Double(v)
            return negative ? -d : d
        }
        guard let d = Double(UTF8Scan.string(buf, start..<end)), d.isFinite else {
            throw error("number out of range", at: start)
        }
        return d
    }

    mutating func parseLiteral() throws(JSONSyntaxError) -> JSONValue {
        let start = pos
        var end = pos
        while end < buf.count && (ASCII.isLetter(buf[end]) || ASCII.isDigit(buf[end]) || buf[end] == ASCII.underscore) {
            end += 1
        }
        let word = UnsafeBufferPointer(rebasing: buf[start..<end])
        if word.elementsEqual("true".utf8) {
            pos = end
            return .bool(true)
        }
        if word.elementsEqual("false".utf8) {
            pos = end
            return .bool(false)
        }
        if word.elementsEqual("null".utf8) {
            pos = end
            return .null
        }
        throw error("invalid literal '\(UTF8Scan.snippet(buf, start..<end))'", at: start)
    }
}

// MARK: - Writer

/// Appends compact JSON (no spaces), for building one-line objects in a fixed key order.
///
/// Commas are inserted automatically. Inside an object, write members with `field`, `fieldNull`, or
/// `beginObject(key:)` / `beginArray(key:)`; inside an array (or at the top level) use `element`,
/// `elementNull`, `beginObject()` / `beginArray()`. `key(_:)` followed by any value-writing call also works.
/// Non-finite doubles (NaN, ±infinity) cannot be represented in JSON and are written as `null`.
/// The writer does not check that calls are balanced; `isComplete` tells whether every container was closed.
public struct JSONWriter: Sendable {
    public private(set) var text: String = ""
    /// Number of values written so far in each open container (innermost last).
    private var counts: [Int] = []
    /// A key was just written, so the next value needs no comma.
    private var afterKey = false

    public init() {}

    /// True when every opened object/array was closed and no key is waiting for its value.
    public var isComplete: Bool { counts.isEmpty && !afterKey }

    /// Clears the text so the writer can build the next line.
    public mutating func reset() {
        text = ""
        counts.removeAll(keepingCapacity: true)
        afterKey = false
    }

    /// Writes the comma (if needed) before a value or a key.
    private mutating func separate() {
        if afterKey {
            afterKey = false
            return
        }
        if let last = counts.last {
            if last > 0 { text.append(",") }
            counts[counts.count - 1] = last + 1
        }
    }

    public mutating func beginObject(key: String? = nil) {
        if let key { self.key(key) }
        separate()
        text.append("{")
        counts.append(0)
    }

    public mutating func endObject() {
        text.append("}")
        if !counts.isEmpty { counts.removeLast() }
        afterKey = false
    }

    public mutating func beginArray(key: String? = nil) {
        if let key { self.key(key) }
        separate()
        text.append("[")
        counts.append(0)
    }

    public mutating func endArray() {
        text.append("]")
        if !counts.isEmpty { counts.removeLast() }
        afterKey = false
    }

    /// Writes `"k":`; the next value-writing call supplies the value.
    public mutating func key(_ k: String) {
        separate()
        text.append(Self.quoted(k))
        text.append(":")
        afterKey = true
    }

    public mutating func field(_ key: String, _ value: String) {
        self.key(key)
        element(value)
    }

    public mutating func field(_ key: String, _ value: Double) {
        self.key(key)
        element(value)
    }

    public mutating func field(_ key: String, _ value: Int) {
        self.key(key)
        element(value)
    }

    public mutating func field(_ key: String, _ value: Bool) {
        self.key(key)
        element(value)
    }

    public mutating func field(_ key: String, _ value: JSONValue) {
        self.key(key)
        element(value)
    }

    public mutating func fieldNull(_ key: String) {
        self.key(key)
        elementNull()
    }

    public mutating func element(_ value: String) {
        separate()
        text.append(Self.quoted(value))
    }

    public mutating func element(_ value: Double) {
        separate()
        text.append(Self.number(value))
    }

    public mutating func element(_ value: Int) {
        separate()
        text.append(String(value))
    }

    public mutating func element(_ value: Bool) {
        separate()
        text.append(value ? "true" : "false")
    }

    public mutating func elementNull() {
        separate()
        text.append("null")
    }

    /// Writes any value (recursively for arrays and objects).
    public mutating func element(_ value: JSONValue) {
        switch value {
        case .null: elementNull()
        case .bool(let b): element(b)
        case .number(let d): element(d)
        case .string(let s): element(s)
        case .array(let items):
            beginArray()
            for item in items { element(item) }
            endArray()
        case .object(let object):
            beginObject()
            for entry in object.entries { field(entry.key, entry.value) }
            endObject()
        }
    }

    /// JSON text for a number: Swift's shortest round-trip `description` ("640.3", "0.1", "1e-07", "1e+16")
    /// without the ".0" it gives integral values ("640", "-0"); non-finite values as "null".
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        let text = value.description
        if text.hasSuffix(".0") { return String(text.dropLast(2)) }
        return text
    }

    /// The string as a JSON string literal: `"` and `\` escaped, control characters as `\n`, `\t`, `\r`, `\b`,
    /// `\f` or `\u00XX` (DEL as `\u007F`); everything else (including non-ASCII) is written as is.
    public static func quoted(_ s: String) -> String {
        var needsEscaping = false
        for b in s.utf8 where b < 0x20 || b == ASCII.quote || b == ASCII.backslash || b == ASCII.delete {
            needsEscaping = true
            break
        }
        if !needsEscaping { return "\"" + s + "\"" }
        var out: [UInt8] = [ASCII.quote]
        out.reserveCapacity(s.utf8.count + 8)
        for b in s.utf8 {
            switch b {
            case ASCII.quote: out.append(contentsOf: [ASCII.backslash, ASCII.quote])
            case ASCII.backslash: out.append(contentsOf: [ASCII.backslash, ASCII.backslash])
            case ASCII.newline: out.append(contentsOf: [ASCII.backslash, ASCII.lowerN])
            case ASCII.tab: out.append(contentsOf: [ASCII.backslash, ASCII.lowerT])
            case ASCII.carriageReturn: out.append(contentsOf: [ASCII.backslash, ASCII.lowerR])
            case 0x08: out.append(contentsOf: [ASCII.backslash, ASCII.lowerB])
            case 0x0C: out.append(contentsOf: [ASCII.backslash, ASCII.lowerF])
            case 0..<0x20, ASCII.delete:
                out.append(contentsOf: [ASCII.backslash, ASCII.lowerU])
                out.append(contentsOf: ("00" + UTF8Scan.hex2(b)).utf8)
            default: out.append(b)
            }
        }
        out.append(ASCII.quote)
        return String(decoding: out, as: UTF8.self)
    }
}

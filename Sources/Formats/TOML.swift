// A TOML v1.0 reader (the subset config files need) where every value remembers where it was defined.
//
// The reader never traps: every byte sequence yields a `TOMLTable` or throws a `TOMLError` with the 1-based line
// and byte column of the problem. Tables and arrays nested deeper than `TOML.maximumNestingDepth` (64) levels
// are reported as errors, so recursion is bounded.

/// A TOML syntax or structure error. `column` is the 1-based byte column in `line`.
public struct TOMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// "12:5: message" — prefix it with a file name to get the usual "file.toml:12:5: message".
    public var description: String { "\(line):\(column): \(message)" }
}

/// A TOML value. Date-times (offset and local date-times, local dates and local times) are validated and kept as
/// their raw text. Floats may be `nan`, which (as usual for `Double`) is not equal to itself.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    case datetime(String)
    case array([TOMLNode])
    case table(TOMLTable)
}

/// A value with the position where it was defined: for a plain value, the line and column where the value text
/// starts; for a table, where it was opened (its `[header]`, its first dotted key, or the `{` of an inline table);
/// for an array of tables, its first `[[header]]`.
public struct TOMLNode: Equatable, Sendable {
    public var value: TOMLValue
    public var line: Int
    public var column: Int

    public init(value: TOMLValue, line: Int, column: Int) {
        self.value = value
        self.line = line
        self.column = column
    }
}

/// A table keeping keys in document order; `line` is where it was opened ([header] line, or the first dotted key /
/// inline table; 1 for the root table). Equality compares entries in order, including their positions.
public struct TOMLTable: Equatable, Sendable {
    public var entries: [(key: String, node: TOMLNode)]
    public var line: Int

    public init(entries: [(key: String, node: TOMLNode)] = [], line: Int = 1) {
        self.entries = entries
        self.line = line
    }

    /// The node stored under `key` (keys are unique in parsed tables).
    public subscript(key: String) -> TOMLNode? {
        for entry in entries where entry.key == key { return entry.node }
        return nil
    }

    /// The keys in document order.
    public var keys: [String] { entries.map(\.key) }

    /// Follows a path of keys through nested tables: `node(at: ["policy", "check_window_s"])`.
    public func node(at path: [String]) -> TOMLNode? {
        var table = self
        for (index, key) in path.enumerated() {
            guard let node = table[key] else { return nil }
            if index == path.count - 1 { return node }
            guard case .table(let inner) = node.value else { return nil }
            table = inner
        }
        return nil
    }

    public static func == (lhs: TOMLTable, rhs: TOMLTable) -> Bool {
        guard lhs.line == rhs.line, lhs.entries.count == rhs.entries.count else { return false }
        for (l, r) in zip(lhs.entries, rhs.entries) where l.key != r.key || l.node != r.node {
            return false
        }
        return true
    }
}

public enum TOML {
    /// Tables, arrays and inline tables may nest this deep; one more level is an error.
    public static let maximumNestingDepth = Formats.maximumNestingDepth

    /// Parses a TOML document into its root table.
    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        let fast = text.utf8.withContiguousStorageIfAvailable { buffer in
            Result { () throws(TOMLError) -> TOMLTable in try parse(bytes: buffer) }
        }
        if let fast { return try fast.get() }
        let copy = Array(text.utf8)
        return try copy.withUnsafeBufferPointer { buffer in
            Result { () throws(TOMLError) -> TOMLTable in try parse(bytes: buffer) }
        }.get()
    }

    /// Parses a TOML document from UTF-8 bytes (which are validated; invalid UTF-8 is an error).
    public static func parse(bytes: UnsafeBufferPointer<UInt8>) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(buf: bytes)
        return try parser.parseDocument()
    }
}

// MARK: - Building tables

/// Mutable table used while parsing; converted to `TOMLTable` at the end.
final class TOMLTableBuilder {
    enum Origin {
        case root
        /// Created as a parent by a header such as `[a.b]` (for `a`); may later get its own header.
        case implicit
        /// Defined by a `[header]` or as an element of an array of tables.
        case header
        /// Created by a dotted key `a.b = 1` (for `a`); may be extended by dotted keys in the same table.
        case dotted
        case inline
    }

    enum Slot {
        case value(TOMLNode)
        case table(TOMLTableBuilder)
        case tableArray(TOMLTableArrayBuilder)

        var line: Int {
            switch self {
            case .value(let node): return node.line
            case .table(let table): return table.line
            case .tableArray(let array): return array.line
            }
        }
    }

    var origin: Origin
    var line: Int
    var column: Int
    let depth: Int
    var entries: [(key: String, slot: Slot)] = []
    var index: [String: Int] = [:]

    init(origin: Origin, line: Int, column: Int, depth: Int) {
        self.origin = origin
        self.line = line
        self.column = column
        self.depth = depth
    }

    func slot(_ key: String) -> Slot? {
        guard let i = index[key] else { return nil }
        return entries[i].slot
    }

    func insert(_ key: String, _ slot: Slot) {
        index[key] = entries.count
        entries.append((key: key, slot: slot))
    }

    /// Recursion is bounded by the nesting-depth limit enforced while parsing.
    func build() -> TOMLTable {
        var out: [(key: String, node: TOMLNode)] = []
        out.reserveCapacity(entries.count)
        for (key, slot) in entries {
            switch slot {
            case .value(let node):
                out.append((key: key, node: node))
            case .table(let table):
                out.append(
                    (key: key, node: TOMLNode(value: .table(table.build()), line: table.line, column: table.column)))
            case .tableArray(let array):
                let nodes = array.tables.map {
                    TOMLNode(value: .table($0.build()), line: $0.line, column: $0.column)
                }
                out.append((key: key, node: TOMLNode(value: .array(nodes), line: array.line, column: array.column)))
            }
        }
        return TOMLTable(entries: out, line: line)
    }
}

final class TOMLTableArrayBuilder {
    var tables: [TOMLTableBuilder]
    let line: Int
    let column: Int

    init(first: TOMLTableBuilder) {
        tables = [first]
        line = first.line
        column = first.column
    }
}

// MARK: - Parser

struct TOMLParser {
    struct KeyPart {
        var name: String
        var offset: Int
    }

    let buf: UnsafeBufferPointer<UInt8>
    var pos = 0
    /// Current line (1-based) and the offset where it starts; kept up to date as newlines are consumed.
    var line = 1
    var lineStart = 0
    /// Length of a skipped byte-order mark (columns on line 1 are counted after it).
    var bomLength = 0
    var scratch: [UInt8] = []

    init(buf: UnsafeBufferPointer<UInt8>) {
        self.buf = buf
    }

    var count: Int { buf.count }
    var column: Int { pos - lineStart + 1 }

    // MARK: Errors and positions

    /// Builds an error for a byte offset; line and column are recomputed from the start (error path only).
    func error(_ message: String, at offset: Int) -> TOMLError {
        var line = 1
        var lineStart = bomLength
        let end = min(max(offset, 0), count)
        var i = bomLength
        while i < end {
            if buf[i] == ASCII.newline {
                line += 1
                lineStart = i + 1
            }
            i += 1
        }
        return TOMLError(line: line, column: end - lineStart + 1, message: message)
    }

    /// What is at `offset`, for "expected X, found Y" messages.
    func found(at offset: Int) -> String {
        guard offset < count else { return "end of input" }
        let b = buf[offset]
        if b == ASCII.newline || b == ASCII.carriageReturn { return "end of line" }
        if b == ASCII.hash { return "a comment" }
        return UTF8Scan.describe(byte: b)
    }

    func displayKey(_ parts: some Collection<KeyPart>) -> String {
        parts.map { Self.displayKeyPart($0.name) }.joined(separator: ".")
    }

    static func displayKeyPart(_ name: String) -> String {
        let bare = !name.isEmpty && name.utf8.allSatisfy(isBareKeyByte)
        return bare ? name : JSONWriter.quoted(name)
    }

    static func describe(_ slot: TOMLTableBuilder.Slot) -> String {
        switch slot {
        case .value(let node):
            if case .table = node.value { return "an inline table" }
            return withArticle(node.typeName)
        case .table: return "a table"
        case .tableArray: return "an array of tables"
        }
    }

    static func withArticle(_ typeName: String) -> String {
        switch typeName.utf8.first {
        case UInt8(ascii: "a"), UInt8(ascii: "e"), UInt8(ascii: "i"), UInt8(ascii: "o"), UInt8(ascii: "u"):
            return "an " + typeName
        default:
            return "a " + typeName
        }
    }

    func checkDepth(_ depth: Int, at offset: Int) throws(TOMLError) {
        if depth > maximumNestingDepth {
            throw error("nesting depth exceeds the limit of \(maximumNestingDepth)", at: offset)
        }
    }

    // MARK: Lexical helpers

    static func isBareKeyByte(_ b: UInt8) -> Bool {
        ASCII.isLetter(b) || ASCII.isDigit(b) || b == ASCII.underscore || b == ASCII.minus
    }

    /// Bytes that can make up a number, boolean or date-time token.
    static func isTokenByte(_ b: UInt8) -> Bool {
        ASCII.isLetter(b) || ASCII.isDigit(b) || b == ASCII.underscore || b == ASCII.minus || b == ASCII.plus
            || b == ASCII.dot || b == ASCII.colon
    }

    /// Rejects invalid UTF-8, control characters other than tab/LF, and carriage returns not followed by LF.
    /// TOML allows none of them anywhere (escaped forms in strings are text, not raw bytes).
    mutating func prescan() throws(TOMLError) {
        var i = 0
        if count >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF {
            bomLength = 3
            i = 3
        }
        while i < count {
            let b = buf[i]
            if b >= 0x20 && b < 0x7F || b == ASCII.newline || b == ASCII.tab {
                i += 1
            } else if b >= 0x80 {
                guard let n = UTF8Scan.sequenceLength(buf, at: i) else {
                    throw error("invalid UTF-8", at: i)
                }
                i += n
            } else if b == ASCII.carriageReturn {
                guard i + 1 < count && buf[i + 1] == ASCII.newline else {
                    throw error("carriage return must be followed by a line feed", at: i)
                }
                i += 2
            } else {
                throw error("control character U+00\(UTF8Scan.hex2(b)) is not allowed", at: i)
            }
        }
        pos = bomLength
        lineStart = bomLength
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while pos < count && (buf[pos] == ASCII.space || buf[pos] == ASCII.tab) { pos += 1 }
    }

    mutating func skipComment() {
        while pos < count && buf[pos] != ASCII.newline && buf[pos] != ASCII.carriageReturn { pos += 1 }
    }

    /// Consumes a newline (LF or CRLF) at `pos` if there is one.
    @discardableResult
    mutating func consumeNewline() -> Bool {
        guard pos < count else { return false }
        if buf[pos] == ASCII.newline {
            pos += 1
        } else if buf[pos] == ASCII.carriageReturn && pos + 1 < count && buf[pos + 1] == ASCII.newline {
            pos += 2
        } else {
            return false
        }
        line += 1
        lineStart = pos
        return true
    }

    /// Marks that a newline ended just before `offset` (used inside multi-line strings).
    mutating func markNewline(endingAt offset: Int) {
        line += 1
        lineStart = offset
    }

    /// After a value or header: optional whitespace and comment, then a newline or the end of input.
    mutating func expectEndOfLine(_ message: String) throws(TOMLError) {
        skipWhitespace()
        if pos < count && buf[pos] == ASCII.hash { skipComment() }
        if pos >= count || consumeNewline() { return }
        throw error(message, at: pos)
    }

    // MARK: Document structure

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        try prescan()
        let root = TOMLTableBuilder(origin: .root, line: 1, column: 1, depth: 0)
        var current = root
        while true {
            skipWhitespace()
            guard pos < count else { break }
            switch buf[pos] {
            case ASCII.hash, ASCII.newline, ASCII.carriageReturn:
                try expectEndOfLine("expected end of line")
            case ASCII.leftBracket:
                current = try parseHeader(root: root)
                try expectEndOfLine("expected end of line after table header")
            default:
                try parseKeyValue(into: current)
                try expectEndOfLine("expected end of line after value")
            }
        }
        return root.build()
    }

    /// Parses `[a.b]` or `[[a.b]]` at `pos` and returns the table that following key/values go into.
    mutating func parseHeader(root: TOMLTableBuilder) throws(TOMLError) -> TOMLTableBuilder {
        let headerLine = line
        let headerColumn = column
        let isArray = pos + 1 < count && buf[pos + 1] == ASCII.leftBracket
        pos += isArray ? 2 : 1
        skipWhitespace()
        let parts = try parseKey()
        skipWhitespace()
        if isArray {
            guard pos + 1 < count && buf[pos] == ASCII.rightBracket && buf[pos + 1] == ASCII.rightBracket else {
                throw error("expected ']]' to close array-of-tables header, found \(found(at: pos))", at: pos)
            }
            pos += 2
        } else {
            guard pos < count && buf[pos] == ASCII.rightBracket else {
                throw error("expected ']' to close table header, found \(found(at: pos))", at: pos)
            }
            pos += 1
        }
        let header = isArray ? "[[\(displayKey(parts))]]" : "[\(displayKey(parts))]"

        var table = root
        for (i, part) in parts.dropLast().enumerated() {
            if let slot = table.slot(part.name) {
                switch slot {
                case .table(let inner):
                    table = inner
                case .tableArray(let array):
                    guard let last = array.tables.last else {
                        throw error("internal error: empty array of tables", at: part.offset)
                    }
                    table = last
                case .value:
                    let what = Self.describe(slot)
                    throw error(
                        "cannot define table \(header): key '\(displayKey(parts[...i]))' is already \(what) "
                            + "(line \(slot.line))",
                        at: part.offset)
                }
            } else {
                let inner = TOMLTableBuilder(
                    origin: .implicit, line: headerLine, column: headerColumn, depth: table.depth + 1)
                try checkDepth(inner.depth, at: part.offset)
                table.insert(part.name, .table(inner))
                table = inner
            }
        }

        guard let last = parts.last else { throw error("expected a key", at: pos) }
        let path = displayKey(parts)
        let existing = table.slot(last.name)
        if isArray {
            switch existing {
            case nil:
                let element = TOMLTableBuilder(
                    origin: .header, line: headerLine, column: headerColumn, depth: table.depth + 1)
                try checkDepth(element.depth, at: last.offset)
                table.insert(last.name, .tableArray(TOMLTableArrayBuilder(first: element)))
                return element
            case .tableArray(let array)?:
                let element = TOMLTableBuilder(
                    origin: .header, line: headerLine, column: headerColumn, depth: table.depth + 1)
                array.tables.append(element)
                return element
            case .value(let node)?:
                if case .array = node.value {
                    throw error(
                        "cannot append to static array '\(path)' (defined on line \(node.line)) with \(header)",
                        at: last.offset)
                }
                throw error(
                    "key '\(path)' is already \(Self.describe(.value(node))) (line \(node.line)); "
                        + "cannot redefine it as an array of tables",
                    at: last.offset)
            case .table(let inner)?:
                throw error(
                    "table '\(path)' is already defined (line \(inner.line)); cannot redefine it as an array of tables",
                    at: last.offset)
            }
        }
        switch existing {
        case nil:
            let inner = TOMLTableBuilder(
                origin: .header, line: headerLine, column: headerColumn, depth: table.depth + 1)
            try checkDepth(inner.depth, at: last.offset)
            table.insert(last.name, .table(inner))
            return inner
        case .table(let inner)?:
            switch inner.origin {
            case .implicit:
                inner.origin = .header
                inner.line = headerLine
                inner.column = headerColumn
                return inner
            case .dotted:
                throw error(
                    "cannot define table \(header): it was already created by dotted keys on line \(inner.line)",
                    at: last.offset)
            default:
                throw error("table \(header) is already defined on line \(inner.line)", at: last.offset)
            }
        case .tableArray(let array)?:
            throw error(
                "key '\(path)' is already an array of tables (line \(array.line)); cannot redefine it as a table",
                at: last.offset)
        case .value(let node)?:
            throw error(
                "key '\(path)' is already \(Self.describe(.value(node))) (line \(node.line)); "
                    + "cannot redefine it as a table",
                at: last.offset)
        }
    }

    /// Parses `key = value` at `pos` into `table` (a section table or an inline table being built).
    mutating func parseKeyValue(into target: TOMLTableBuilder) throws(TOMLError) {
        let parts = try parseKey()
        skipWhitespace()
        guard pos < count && buf[pos] == ASCII.equals else {
            throw error("expected '=' after key '\(displayKey(parts))', found \(found(at: pos))", at: pos)
        }
        pos += 1
        skipWhitespace()

        var table = target
        for (i, part) in parts.dropLast().enumerated() {
            if let slot = table.slot(part.name) {
                if case .table(let inner) = slot, inner.origin == .dotted {
                    table = inner
                    continue
                }
                let prefix = displayKey(parts[...i])
                let reason: String
                switch slot {
                case .table(let inner):
                    reason = "table '\(prefix)' was already defined on line \(inner.line)"
                case .tableArray(let array):
                    reason = "'\(prefix)' is an array of tables (line \(array.line))"
                case .value(let node):
                    if case .table = node.value {
                        reason = "'\(prefix)' is an inline table (line \(node.line)), which cannot be extended"
                    } else {
                        reason = "'\(prefix)' is already \(Self.describe(slot)) (line \(node.line))"
                    }
                }
                throw error("cannot define key '\(displayKey(parts))': \(reason)", at: part.offset)
            } else {
                let inner = TOMLTableBuilder(
                    origin: .dotted, line: line, column: part.offset - lineStart + 1, depth: table.depth + 1)
                try checkDepth(inner.depth, at: part.offset)
                table.insert(part.name, .table(inner))
                table = inner
            }
        }
        guard let last = parts.last else { throw error("expected a key", at: pos) }
        if let existing = table.slot(last.name) {
            let detail: String
            if case .value = existing {
                detail = "first defined on line \(existing.line)"
            } else {
                detail = "already defined as \(Self.describe(existing)) on line \(existing.line)"
            }
            throw error("duplicate key '\(displayKey(parts))' (\(detail))", at: last.offset)
        }
        let node = try parseValue(depth: table.depth + 1)
        table.insert(last.name, .value(node))
    }

    /// Parses a dotted key (`a . "b c" . 'd'`), leaving `pos` after the last part (and any whitespace after it).
    mutating func parseKey() throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            parts.append(try parseSimpleKey())
            skipWhitespace()
            guard pos < count && buf[pos] == ASCII.dot else { return parts }
            pos += 1
            skipWhitespace()
        }
    }

    mutating func parseSimpleKey() throws(TOMLError) -> KeyPart {
        let start = pos
        guard pos < count else { throw error("expected a key, found end of input", at: pos) }
        let b = buf[pos]
        if Self.isBareKeyByte(b) {
            var end = pos
            while end < count && Self.isBareKeyByte(buf[end]) { end += 1 }
            pos = end
            return KeyPart(name: UTF8Scan.string(buf, start..<end), offset: start)
        }
        if b == ASCII.quote || b == ASCII.apostrophe {
            if pos + 2 < count && buf[pos + 1] == b && buf[pos + 2] == b {
                throw error("a multi-line string cannot be used as a key", at: pos)
            }
            let name = b == ASCII.quote ? try parseBasicString() : try parseLiteralString()
            return KeyPart(name: name, offset: start)
        }
        throw error("expected a key, found \(found(at: pos))", at: pos)
    }

    // MARK: Values

    /// Parses the value at `pos`. `depth` is the nesting depth an array or inline table here would have.
    mutating func parseValue(depth: Int) throws(TOMLError) -> TOMLNode {
        let valueLine = line
        let valueColumn = column
        guard pos < count else { throw error("expected a value, found end of input", at: pos) }
        let value: TOMLValue
        switch buf[pos] {
        case ASCII.quote:
            if pos + 2 < count && buf[pos + 1] == ASCII.quote && buf[pos + 2] == ASCII.quote {
                value = .string(try parseMultilineBasicString())
            } else {
                value = .string(try parseBasicString())
            }
        case ASCII.apostrophe:
            if pos + 2 < count && buf[pos + 1] == ASCII.apostrophe && buf[pos + 2] == ASCII.apostrophe {
                value = .string(try parseMultilineLiteralString())
            } else {
                value = .string(try parseLiteralString())
            }
        case ASCII.leftBracket:
            value = try parseArray(depth: depth)
        case ASCII.leftBrace:
            value = try parseInlineTable(depth: depth)
        default:
            guard Self.isTokenByte(buf[pos]) else {
                throw error("expected a value, found \(found(at: pos))", at: pos)
            }
            value = try parseToken()
        }
        return TOMLNode(value: value, line: valueLine, column: valueColumn)
    }

    /// Skips whitespace, newlines and comments between array elements.
    mutating func skipArrayTrivia() {
        while pos < count {
            switch buf[pos] {
            case ASCII.space, ASCII.tab: pos += 1
            case ASCII.hash: skipComment()
            case ASCII.newline, ASCII.carriageReturn:
                if !consumeNewline() { return }
            default: return
            }
        }
    }

    mutating func parseArray(depth: Int) throws(TOMLError) -> TOMLValue {
        let open = pos
        try checkDepth(depth, at: open)
        pos += 1
        var items: [TOMLNode] = []
        while true {
            skipArrayTrivia()
            guard pos < count else { throw error("unterminated array", at: open) }
            if buf[pos] == ASCII.rightBracket {
                pos += 1
                return .array(items)
            }
            items.append(try parseValue(depth: depth + 1))
            skipArrayTrivia()
            guard pos < count else { throw error("unterminated array", at: open) }
            switch buf[pos] {
            case ASCII.comma:
                pos += 1
            case ASCII.rightBracket:
                pos += 1
                return .array(items)
            default:
                throw error("expected ',' or ']' after array element, found \(found(at: pos))", at: pos)
            }
        }
    }

    mutating func parseInlineTable(depth: Int) throws(TOMLError) -> TOMLValue {
        let open = pos
        try checkDepth(depth, at: open)
        let table = TOMLTableBuilder(origin: .inline, line: line, column: column, depth: depth)
        pos += 1
        skipWhitespace()
        if pos < count && buf[pos] == ASCII.rightBrace {
            pos += 1
            return .table(table.build())
        }
        let oneLine = "expected '}': an inline table must be closed on the line where it starts"
        while true {
            guard pos < count else { throw error("unterminated inline table", at: open) }
            if buf[pos] == ASCII.newline || buf[pos] == ASCII.carriageReturn {
                throw error(oneLine, at: pos)
            }
            try parseKeyValue(into: table)
            skipWhitespace()
            guard pos < count else { throw error("unterminated inline table", at: open) }
            switch buf[pos] {
            case ASCII.comma:
                pos += 1
                skipWhitespace()
                if pos < count && buf[pos] == ASCII.rightBrace {
                    throw error("trailing comma is not allowed in an inline table", at: pos)
                }
            case ASCII.rightBrace:
                pos += 1
                return .table(table.build())
            case ASCII.newline, ASCII.carriageReturn:
                throw error(oneLine, at: pos)
            default:
                throw error("expected ',' or '}' after inline table entry, found \(found(at: pos))", at: pos)
            }
        }
    }

    // MARK: Strings

    /// Handles the escape whose backslash is at `i`, appending to `scratch`; returns the index after it.
    mutating func parseEscape(at i: Int, open: Int, unterminated: String) throws(TOMLError) -> Int {
        guard i + 1 < count else { throw error(unterminated, at: open) }
        let e = buf[i + 1]
        switch e {
        case ASCII.lowerB: scratch.append(0x08)
        case ASCII.lowerT: scratch.append(0x09)
        case ASCII.lowerN: scratch.append(0x0A)
        case ASCII.lowerF: scratch.append(0x0C)
        case ASCII.lowerR: scratch.append(0x0D)
        case ASCII.quote, ASCII.backslash: scratch.append(e)
        case ASCII.lowerU, ASCII.upperU:
            let digits = e == ASCII.lowerU ? 4 : 8
            var value: UInt32 = 0
            var j = i + 2
            while j < i + 2 + digits {
                guard j < count, let h = ASCII.hexValue(buf[j]) else {
                    throw error(
                        "invalid escape '\\\(e == ASCII.lowerU ? "u" : "U")': expected \(digits) hexadecimal digits",
                        at: i)
                }
                value = value << 4 | h
                j += 1
            }
            guard Unicode.Scalar(value) != nil else {
                throw error(
                    "invalid escape '\\\(UTF8Scan.snippet(buf, (i + 1)..<j))': not a Unicode scalar value", at: i)
            }
            UTF8Scan.append(scalar: value, to: &scratch)
            return j
        case ASCII.newline, ASCII.carriageReturn:
            throw error("invalid escape: backslash at end of line", at: i)
        default:
            if e >= 0x80 {
                throw error("invalid escape sequence", at: i)
            }
            throw error("invalid escape '\\\(UTF8Scan.snippet(buf, (i + 1)..<(i + 2)))'", at: i)
        }
        return i + 2
    }

    /// A single-line basic string `"..."` at `pos`.
    mutating func parseBasicString() throws(TOMLError) -> String {
        let open = pos
        scratch.removeAll(keepingCapacity: true)
        var i = pos + 1
        while i < count {
            let b = buf[i]
            if b == ASCII.quote {
                pos = i + 1
                return String(decoding: scratch, as: UTF8.self)
            }
            if b == ASCII.backslash {
                i = try parseEscape(at: i, open: open, unterminated: "unterminated string")
                continue
            }
            if b == ASCII.newline || b == ASCII.carriageReturn { break }
            scratch.append(b)
            i += 1
        }
        throw error("unterminated string", at: open)
    }

    /// A single-line literal string `'...'` at `pos`.
    mutating func parseLiteralString() throws(TOMLError) -> String {
        let open = pos
        var i = pos + 1
        while i < count {
            let b = buf[i]
            if b == ASCII.apostrophe {
                pos = i + 1
                return UTF8Scan.string(buf, (open + 1)..<i)
            }
            if b == ASCII.newline || b == ASCII.carriageReturn { break }
            i += 1
        }
        throw error("unterminated string", at: open)
    }

    /// At a run of `quote` bytes at `i` inside a multi-line string: returns how many belong to the content and
    /// whether the run closes the string (3 to 5 quotes close it; up to two of them are content).
    func closingRun(at i: Int, quote: UInt8) throws(TOMLError) -> (content: Int, length: Int, closes: Bool) {
        var n = 0
        while i + n < count && buf[i + n] == quote { n += 1 }
        if n < 3 { return (n, n, false) }
        if n > 5 { throw error("too many quotation marks at the end of a multi-line string", at: i) }
        return (n - 3, n, true)
    }

    /// Skips the newline right after an opening `"""` / `'''`, which is not part of the content.
    mutating func skipLeadingNewline(_ i: inout Int) {
        if i < count && buf[i] == ASCII.newline {
            i += 1
            markNewline(endingAt: i)
        } else if i + 1 < count && buf[i] == ASCII.carriageReturn && buf[i + 1] == ASCII.newline {
            i += 2
            markNewline(endingAt: i)
        }
    }

    /// A multi-line basic string `"""..."""` at `pos`. CRLF in the content becomes LF.
    mutating func parseMultilineBasicString() throws(TOMLError) -> String {
        let open = pos
        let unterminated = "unterminated multi-line string"
        scratch.removeAll(keepingCapacity: true)
        var i = pos + 3
        skipLeadingNewline(&i)
        while i < count {
            let b = buf[i]
            switch b {
            case ASCII.quote:
                let run = try closingRun(at: i, quote: b)
                for _ in 0..<run.content { scratch.append(b) }
                i += run.length
                if run.closes {
                    pos = i
                    return String(decoding: scratch, as: UTF8.self)
                }
            case ASCII.backslash:
                var j = i + 1
                while j < count && (buf[j] == ASCII.space || buf[j] == ASCII.tab) { j += 1 }
                if j < count && (buf[j] == ASCII.newline || buf[j] == ASCII.carriageReturn) {
                    // Line-ending backslash: drop it and all whitespace and newlines that follow.
                    i = j
                    while i < count {
                        let c = buf[i]
                        if c == ASCII.space || c == ASCII.tab {
                            i += 1
                        } else if c == ASCII.newline {
                            i += 1
                            markNewline(endingAt: i)
                        } else if c == ASCII.carriageReturn && i + 1 < count && buf[i + 1] == ASCII.newline {
                            i += 2
                            markNewline(endingAt: i)
                        } else {
                            break
                        }
                    }
                } else {
                    i = try parseEscape(at: i, open: open, unterminated: unterminated)
                }
            case ASCII.newline:
                scratch.append(ASCII.newline)
                i += 1
                markNewline(endingAt: i)
            case ASCII.carriageReturn:
                // The prescan guarantees CR is followed by LF.
                scratch.append(ASCII.newline)
                i += 2
                markNewline(endingAt: i)
            default:
                scratch.append(b)
                i += 1
            }
        }
        throw error(unterminated, at: open)
    }

    /// A multi-line literal string `'''...'''` at `pos`. CRLF in the content becomes LF.
    mutating func parseMultilineLiteralString() throws(TOMLError) -> String {
        let open = pos
        scratch.removeAll(keepingCapacity: true)
        var i = pos + 3
        skipLeadingNewline(&i)
        while i < count {
            let b = buf[i]
            switch b {
            case ASCII.apostrophe:
                let run = try closingRun(at: i, quote: b)
                for _ in 0..<run.content { scratch.append(b) }
                i += run.length
                if run.closes {
                    pos = i
                    return String(decoding: scratch, as: UTF8.self)
                }
            case ASCII.newline:
                scratch.append(ASCII.newline)
                i += 1
                markNewline(endingAt: i)
            case ASCII.carriageReturn:
                scratch.append(ASCII.newline)
                i += 2
                markNewline(endingAt: i)
            default:
                scratch.append(b)
                i += 1
            }
        }
        throw error("unterminated multi-line string", at: open)
    }

    // MARK: Numbers, booleans, date-times

    /// A bare token: boolean, integer, float or date-time.
    mutating func parseToken() throws(TOMLError) -> TOMLValue {
        let start = pos
        var end = pos
        while end < count && Self.isTokenByte(buf[end]) { end += 1 }
        // A date followed by a space and a time ("1979-05-27 07:32:00") is one date-time.
        if end - start == 10 && buf[start + 4] == ASCII.minus && end + 3 < count && buf[end] == ASCII.space
            && ASCII.isDigit(buf[end + 1]) && ASCII.isDigit(buf[end + 2]) && buf[end + 3] == ASCII.colon
        {
            end += 1
            while end < count && Self.isTokenByte(buf[end]) { end += 1 }
        }
        pos = end
        let token = UnsafeBufferPointer(rebasing: buf[start..<end])
        let text = UTF8Scan.snippet(buf, start..<end)

        if token.elementsEqual("true".utf8) { return .bool(true) }
        if token.elementsEqual("false".utf8) { return .bool(false) }

        let looksLikeDate = token.count >= 5 && token[0...3].allSatisfy(ASCII.isDigit) && token[4] == ASCII.minus
        let looksLikeTime = token.count >= 3 && token[0...1].allSatisfy(ASCII.isDigit) && token[2] == ASCII.colon
        if looksLikeDate || looksLikeTime {
            guard Self.isValidDateTime(token) else {
                throw error("invalid date-time '\(text)'", at: start)
            }
            return .datetime(UTF8Scan.string(buf, start..<end))
        }
        if ASCII.isLetter(token[0]) && !token.elementsEqual("inf".utf8) && !token.elementsEqual("nan".utf8) {
            throw error("invalid value '\(text)' (strings must be quoted)", at: start)
        }
        switch Self.parseNumber(token) {
        case .success(let value):
            return value
        case .failure(let problem):
            throw error(problem.message(text), at: start)
        }
    }

    enum NumberProblem: Error {
        case invalid
        case leadingZero
        case underscore
        case missingFraction
        case missingExponent
        case signedRadix
        case missingDigits
        case integerOverflow
        case floatOverflow

        func message(_ text: String) -> String {
            switch self {
            case .invalid: return "invalid number '\(text)'"
            case .leadingZero: return "invalid number '\(text)': leading zeros are not allowed"
            case .underscore: return "invalid number '\(text)': underscores must be between digits"
            case .missingFraction: return "invalid number '\(text)': expected digits after '.'"
            case .missingExponent: return "invalid number '\(text)': expected digits in the exponent"
            case .signedRadix: return "invalid number '\(text)': hexadecimal, octal and binary integers have no sign"
            case .missingDigits: return "invalid number '\(text)': expected digits"
            case .integerOverflow: return "integer overflow: '\(text)' does not fit in a 64-bit signed integer"
            case .floatOverflow: return "float '\(text)' is out of range"
            }
        }
    }

    /// Scans digits (accepted by `isDigit`) with single underscores between them, starting at `i`.
    /// Returns the number of digits, or an error for a misplaced underscore.
    static func scanDigits(
        _ token: UnsafeBufferPointer<UInt8>, _ i: inout Int, _ isDigit: (UInt8) -> Bool
    ) -> Result<Int, NumberProblem> {
        var digits = 0
        if i < token.count && token[i] == ASCII.underscore { return .failure(.underscore) }
        while i < token.count {
            let b = token[i]
            if isDigit(b) {
                digits += 1
                i += 1
            } else if b == ASCII.underscore {
                guard digits > 0, i + 1 < token.count, isDigit(token[i + 1]) else { return .failure(.underscore) }
                i += 1
            } else {
                break
            }
        }
        return .success(digits)
    }

    static func parseNumber(_ token: UnsafeBufferPointer<UInt8>) -> Result<TOMLValue, NumberProblem> {
        var i = 0
        var negative = false
        var signed = false
        if token[0] == ASCII.plus || token[0] == ASCII.minus {
            signed = true
            negative = token[0] == ASCII.minus
            i = 1
        }
        let rest = UnsafeBufferPointer(rebasing: token[i...])
        if rest.elementsEqual("inf".utf8) { return .success(.float(negative ? -.infinity : .infinity)) }
        if rest.elementsEqual("nan".utf8) { return .success(.float(negative ? -Double.nan : Double.nan)) }

        // Hexadecimal, octal, binary.
        if rest.count >= 2 && rest[0] == ASCII.zero
            && (rest[1] == ASCII.lowerX || rest[1] == ASCII.lowerO || rest[1] == ASCII.lowerB)
        {
            if signed { return .failure(.signedRadix) }
            let radix: UInt64 = rest[1] == ASCII.lowerX ? 16 : rest[1] == ASCII.lowerO ? 8 : 2
            let isDigit: (UInt8) -> Bool = {
                switch radix {
                case 16: return ASCII.hexValue($0) != nil
                case 8: return $0 >= ASCII.zero && $0 <= ASCII.seven
                default: return $0 == ASCII.zero || $0 == ASCII.one
                }
            }
            var j = 2
            switch scanDigits(rest, &j, isDigit) {
            case .failure(let problem): return .failure(problem)
            case .success(let n): if n == 0 { return .failure(rest.count == 2 ? .missingDigits : .invalid) }
            }
            guard j == rest.count else { return .failure(.invalid) }
            var value: UInt64 = 0
            for b in rest[2...] where b != ASCII.underscore {
                let digit = UInt64(ASCII.hexValue(b) ?? 0)
                let (shifted, o1) = value.multipliedReportingOverflow(by: radix)
                let (sum, o2) = shifted.addingReportingOverflow(digit)
                guard !o1 && !o2 else { return .failure(.integerOverflow) }
                value = sum
            }
            guard let result = Int64(exactly: value) else { return .failure(.integerOverflow) }
            return .success(.integer(result))
        }

        // Decimal integer or float.
        let intStart = i
        guard i < token.count, ASCII.isDigit(token[i]) || token[i] == ASCII.underscore else {
            return .failure(.invalid)
        }
        var intDigits = 0
        switch scanDigits(token, &i, ASCII.isDigit) {
        case .failure(let problem): return .failure(problem)
        case .success(let n): intDigits = n
        }
        if intDigits > 1 && token[intStart] == ASCII.zero { return .failure(.leadingZero) }
        var isFloat = false
        if i < token.count && token[i] == ASCII.dot {
            isFloat = true
            i += 1
            switch scanDigits(token, &i, ASCII.isDigit) {
            case .failure(let problem): return .failure(problem)
            case .success(let n): if n == 0 { return .failure(.missingFraction) }
            }
        }
        if i < token.count && (token[i] == ASCII.lowerE || token[i] == ASCII.upperE) {
            isFloat = true
            i += 1
            if i < token.count && (token[i] == ASCII.plus || token[i] == ASCII.minus) { i += 1 }
            switch scanDigits(token, &i, ASCII.isDigit) {
            case .failure(let problem): return .failure(problem)
            case .success(let n): if n == 0 { return .failure(.missingExponent) }
            }
        }
        guard i == token.count else { return .failure(.invalid) }

        var cleaned = ""
        cleaned.reserveCapacity(token.count)
        for b in token where b != ASCII.underscore { cleaned.unicodeScalars.append(Unicode.Scalar(b)) }
        if isFloat {
            guard let value = Double(cleaned), value.isFinite else { return .failure(.floatOverflow) }
            return .success(.float(value))
        }
        guard let value = Int64(cleaned) else { return .failure(.integerOverflow) }
        return .success(.integer(value))
    }

    /// RFC 3339 style date-times as TOML allows them: `YYYY-MM-DD`, `HH:MM:SS[.frac]`, or a date and time joined
    /// by `T`, `t` or a space, optionally followed (only with a date) by `Z`, `z` or `±HH:MM`.
    static func isValidDateTime(_ t: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= t.count else { return nil }
            var v = 0
            for j in i..<(i + digits) {
                guard ASCII.isDigit(t[j]) else { return nil }
                v = v * 10 + Int(t[j] - ASCII.zero)
            }
            i += digits
            return v
        }
        func expect(_ b: UInt8) -> Bool {
            guard i < t.count, t[i] == b else { return false }
            i += 1
            return true
        }
        var hasDate = false
        if t.count >= 5 && t[4] == ASCII.minus {
            guard let year = number(4), expect(ASCII.minus), let month = number(2), expect(ASCII.minus),
                let day = number(2), (1...12).contains(month)
            else { return false }
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
            let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            guard day >= 1 && day <= monthDays[month - 1] else { return false }
            hasDate = true
            if i == t.count { return true }
            guard t[i] == ASCII.upperT || t[i] == ASCII.lowerT || t[i] == ASCII.space else { return false }
            i += 1
        }
        guard let hour = number(2), expect(ASCII.colon), let minute = number(2), expect(ASCII.colon),
            let second = number(2), hour < 24, minute < 60, second <= 60
        else { return false }
        if i < t.count && t[i] == ASCII.dot {
            i += 1
            let fractionStart = i
            while i < t.count && ASCII.isDigit(t[i]) { i += 1 }
            guard i > fractionStart else { return false }
        }
        if hasDate && i < t.count {
            if t[i] == ASCII.upperZ || t[i] == ASCII.lowerZ {
                i += 1
            } else if t[i] == ASCII.plus || t[i] == ASCII.minus {
                i += 1
                guard let offsetHour = number(2), expect(ASCII.colon), let offsetMinute = number(2),
                    offsetHour < 24, offsetMinute < 60
                else { return false }
            }
        }
        return i == t.count
    }
}

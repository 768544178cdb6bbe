import Formats
import Testing

/// Parses and returns the error, or nil when the text parsed.
func jsonError(_ text: String) -> JSONSyntaxError? {
    do {
        _ = try JSON.parse(text)
        return nil
    } catch {
        return error
    }
}

func jsonError(bytes: [UInt8]) -> JSONSyntaxError? {
    bytes.withUnsafeBufferPointer { buffer -> JSONSyntaxError? in
        do throws(JSONSyntaxError) {
            _ = try JSON.parse(bytes: buffer)
            return nil
        } catch {
            return error
        }
    }
}

struct JSONErrorCase: Sendable, CustomTestStringConvertible {
    var input: String
    var line = 1
    var column: Int
    var message: String

    init(_ input: String, line: Int = 1, _ column: Int, _ message: String) {
        self.input = input
        self.line = line
        self.column = column
        self.message = message
    }

    var testDescription: String { input.debugDescription }
}

@Suite struct JSONParsingTests {
    @Test func scalars() throws {
        #expect(try JSON.parse("null") == .null)
        #expect(try JSON.parse("true") == .bool(true))
        #expect(try JSON.parse(" \t\r\n false \n") == .bool(false))
        #expect(try JSON.parse("\"\"") == .string(""))
        #expect(try JSON.parse("0") == .number(0))
        #expect(try JSON.parse("-12") == .number(-12))
    }

    @Test func numbersConvertExactlyLikeDoubleParsing() throws {
        let texts = [
            "0", "-0", "1", "-1", "0.1", "0.5", "1.5e3", "1E-2", "2e+2", "-2.5", "640.3", "12345678.9",
            "123456789012345", "1234567890123456", "9007199254740993", "123456789012345678901234567890",
            "2.2250738585072011e-308", "4.9e-324", "1.7976931348623157e308", "1e-400", "0.30000000000000004",
            "3.141592653589793238462643383279",
        ]
        for text in texts {
            let expected = try #require(Double(text), "\(text)")
            let parsed = try JSON.parse(text)
            #expect(parsed == .number(expected), "\(text)")
            #expect(parsed.doubleValue?.bitPattern == expected.bitPattern, "\(text)")
        }
        #expect(try JSON.parse("-0").doubleValue?.sign == .minus)
        #expect(try JSON.parse("42").intValue == 42)
        #expect(try JSON.parse("42.5").intValue == nil)
    }

    @Test func stringsAndEscapes() throws {
        #expect(try JSON.parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{08}\u{0C}\n\r\t"))
        #expect(try JSON.parse(#""\u0041\u00e9\u4e2d""#) == .string("Aé中"))
        #expect(try JSON.parse(#""\ud83d\ude00 and \uD834\uDD1E""#) == .string("😀 and 𝄞"))
        #expect(try JSON.parse(#""\u0000""#) == .string("\u{0}"))
        #expect(try JSON.parse("\"héllo 😀 中文\"") == .string("héllo 😀 中文"))
        #expect(try JSON.parse("\"prefix é \\n suffix\"") == .string("prefix é \n suffix"))
    }

    @Test func containersKeepDocumentOrder() throws {
        let value = try JSON.parse(#"{"z": 1, "a": [true, null, "x", {"k": []}], "m": {}}"#)
        let object = try #require(value.objectValue)
        #expect(object.keys == ["z", "a", "m"])
        #expect(object["z"] == .number(1))
        #expect(object["missing"] == nil)
        #expect(value["a"] == .array([.bool(true), .null, .string("x"), .object(["k": .array([])])]))
        #expect(value["m"] == .object(JSONObject()))
        #expect(value["a"]?.arrayValue?.count == 4)
        #expect(value.typeName == "object")
    }

    @Test func objectEqualityIsOrderSensitive() {
        let ab: JSONObject = ["a": .number(1), "b": .number(2)]
        let ba: JSONObject = ["b": .number(2), "a": .number(1)]
        #expect(ab != ba)
        #expect(ab == ["a": .number(1), "b": .number(2)])
        #expect(ab != ["a": .number(1)])
        #expect(ab != ["a": .number(1), "b": .number(3)])
    }

    @Test func objectSubscriptSetter() {
        var object: JSONObject = ["a": .number(1)]
        object["b"] = .string("x")
        object["a"] = .bool(true)
        #expect(object.keys == ["a", "b"])
        #expect(object["a"] == .bool(true))
        object["a"] = nil
        #expect(object.keys == ["b"])
    }

    @Test func parsesSubstringsAndBytes() throws {
        let text = "{\"a\":1}\n[2]\n"
        let lines = text.split(separator: "\n")
        #expect(try JSON.parse(lines[0]) == .object(["a": .number(1)]))
        #expect(try JSON.parse(lines[1]) == .array([.number(2)]))
        let bytes: [UInt8] = Array("[\"é\"]".utf8)
        let value = try bytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in
            try JSON.parse(bytes: buffer)
        }
        #expect(value == .array([.string("é")]))
    }

    @Test func roundTripThroughSerialize() throws {
        let value: JSONValue = .object([
            "t": .number(12.5),
            "name": .string("cam \"0\"\n\u{1}é😀"),
            "ok": .bool(false),
            "none": .null,
            "list": .array([.number(1), .number(-2.5), .number(1e-7), .array([]), .object([:])]),
            "nested": .object(["deep": .array([.object(["x": .number(640)])])]),
        ])
        let text = JSON.serialize(value)
        #expect(!text.contains(", ") && !text.contains(": "))
        #expect(try JSON.parse(text) == value)
        // Compact input serializes back to the same text.
        let compact = #"{"a":[1,2.5,"x\\y\"z",null,true],"b":{"c":{}},"d":-0.001}"#
        #expect(JSON.serialize(try JSON.parse(compact)) == compact)
    }

    static let errorCases: [JSONErrorCase] = [
        JSONErrorCase(#"{"a":1 "b":2}"#, 8, "expected ',' or '}' after object member"),
        JSONErrorCase(#"{"a":1"#, 1, "unterminated object"),
        JSONErrorCase(#"{"a":"#, 1, "unterminated object"),
        JSONErrorCase(#"{"a""#, 1, "unterminated object"),
        JSONErrorCase(#"{"a" 1}"#, 6, "expected ':' after object key"),
        JSONErrorCase(#"{1:2}"#, 2, "expected '\"' to begin an object key"),
        JSONErrorCase(#"{"a":1,}"#, 8, "trailing comma in object"),
        JSONErrorCase(#"{"t":1,"t":2}"#, 8, "duplicate key \"t\""),
        JSONErrorCase(#"[1 2]"#, 4, "expected ',' or ']' after array element"),
        JSONErrorCase(#"[1,]"#, 4, "trailing comma in array"),
        JSONErrorCase(#"[1,2"#, 1, "unterminated array"),
        JSONErrorCase(#"  [[]"#, 3, "unterminated array"),
        JSONErrorCase(#""abc"#, 1, "unterminated string"),
        JSONErrorCase(#"["abc\"#, 2, "unterminated string"),
        JSONErrorCase(#""a\qb""#, 3, "invalid escape '\\q' in string"),
        JSONErrorCase(#""\u12""#, 2, "invalid \\u escape: expected 4 hex digits"),
        JSONErrorCase(#""\uD800""#, 2, "lone surrogate \\uD800 in string"),
        JSONErrorCase(#""\uD800\u0041""#, 2, "lone surrogate \\uD800 in string"),
        JSONErrorCase(#""x\uDC00\uD800""#, 3, "lone surrogate \\uDC00 in string"),
        JSONErrorCase("\"a\u{1}b\"", 3, "unescaped control character U+0001 in string"),
        JSONErrorCase("\"tab\there\"", 5, "unescaped control character U+0009 in string"),
        JSONErrorCase("\"line\nbreak\"", 6, "unescaped control character U+000A in string"),
        JSONErrorCase("[01]", 2, "invalid number '01'"),
        JSONErrorCase("-01", 1, "invalid number '-01'"),
        JSONErrorCase("-", 1, "invalid number '-'"),
        JSONErrorCase("+1", 1, "invalid number '+1'"),
        JSONErrorCase("1.", 1, "invalid number '1.'"),
        JSONErrorCase(".5", 1, "invalid number '.5'"),
        JSONErrorCase("1e", 1, "invalid number '1e'"),
        JSONErrorCase("[1e+]", 2, "invalid number '1e+'"),
        JSONErrorCase("0x10", 1, "invalid number '0x10'"),
        JSONErrorCase("-Infinity", 1, "invalid number '-Infinity'"),
        JSONErrorCase("NaN", 1, "invalid literal 'NaN'"),
        JSONErrorCase("Infinity", 1, "invalid literal 'Infinity'"),
        JSONErrorCase("[tru]", 2, "invalid literal 'tru'"),
        JSONErrorCase("nulls", 1, "invalid literal 'nulls'"),
        JSONErrorCase("1e400", 1, "number out of range"),
        JSONErrorCase("[0, -1.5e309]", 5, "number out of range"),
        JSONErrorCase("", 1, "expected a JSON value, found end of input"),
        JSONErrorCase("   ", 4, "expected a JSON value, found end of input"),
        JSONErrorCase("@", 1, "unexpected '@', expected a JSON value"),
        JSONErrorCase("{} x", 4, "trailing characters after JSON value"),
        JSONErrorCase("true false", 6, "trailing characters after JSON value"),
        JSONErrorCase("1 2", 3, "trailing characters after JSON value"),
        JSONErrorCase("{\n  \"a\": 1,\n  \"a\": 2\n}", line: 3, 3, "duplicate key \"a\""),
        JSONErrorCase("[\n1,\n\n  x]", line: 4, 3, "invalid literal 'x'"),
    ]

    @Test(arguments: errorCases)
    func reportsErrorsWithLocation(_ testCase: JSONErrorCase) throws {
        let error = try #require(jsonError(testCase.input))
        #expect(error.message == testCase.message)
        #expect(error.line == testCase.line)
        #expect(error.column == testCase.column)
    }

    @Test func errorDescription() throws {
        let single = try #require(jsonError("[1 2]"))
        #expect(single.description == "column 4: expected ',' or ']' after array element")
        let multi = try #require(jsonError("[\n1 2]"))
        #expect(multi.description == "line 2, column 3: expected ',' or ']' after array element")
    }

    @Test func rejectsInvalidUTF8() throws {
        let cases: [(bytes: [UInt8], column: Int)] = [
            ([0x22, 0xC3, 0x28, 0x22], 2),  // bad continuation byte
            ([0x22, 0xC0, 0xAF, 0x22], 2),  // overlong '/'
            ([0x22, 0x61, 0xED, 0xA0, 0x80, 0x22], 3),  // UTF-8 encoded surrogate
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 2),  // above U+10FFFF
            ([0x22, 0xE2, 0x82], 2),  // truncated
            ([0x22, 0x5C, 0x6E, 0xFF, 0x22], 4),  // after an escape (slow path)
        ]
        for testCase in cases {
            let error = try #require(jsonError(bytes: testCase.bytes))
            #expect(error.message == "invalid UTF-8 in string")
            #expect(error.column == testCase.column)
        }
        let outside = try #require(jsonError(bytes: [0x5B, 0xC3, 0xA9, 0x5D]))
        #expect(outside.message == "unexpected byte 0xC3, expected a JSON value")
        #expect(outside.column == 2)
    }

    @Test func largeObjectsStillDetectDuplicates() throws {
        var writer = JSONWriter()
        writer.beginObject()
        for i in 0..<100 { writer.field("k\(i)", i) }
        writer.field("k57", 0)
        writer.endObject()
        let error = try #require(jsonError(writer.text))
        #expect(error.message == "duplicate key \"k57\"")
        let unique = String(writer.text.dropLast(9)) + "}"
        #expect(try JSON.parse(unique).objectValue?.count == 100)
    }

    @Test func nestingDepthIsLimitedTo64() throws {
        let limit = JSON.maximumNestingDepth
        #expect(limit == 64)
        let deepest = String(repeating: "[", count: limit) + String(repeating: "]", count: limit)
        var value = try JSON.parse(deepest)
        var depth = 0
        while case .array(let items) = value {
            depth += 1
            guard let first = items.first else { break }
            value = first
        }
        #expect(depth == 64)

        let tooDeep = String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1)
        let error = try #require(jsonError(tooDeep))
        #expect(error.message == "nesting depth exceeds the limit of 64")
        #expect(error.column == 65)

        let objects = String(repeating: #"{"a":"#, count: limit + 1) + "1" + String(repeating: "}", count: limit + 1)
        let objectError = try #require(jsonError(objects))
        #expect(objectError.message == "nesting depth exceeds the limit of 64")
        #expect(objectError.column == 64 * 5 + 1)

        // Hostile input far beyond the limit fails fast instead of overflowing the stack.
        let hostile = try #require(jsonError(String(repeating: "[{\"a\":", count: 200_000)))
        #expect(hostile.message == "nesting depth exceeds the limit of 64")
    }

    @Test func parsesManyJSONLines() throws {
        var lines: [String] = []
        for i in 0..<100_000 {
            lines.append(
                #"{"t":\#(Double(i) * 0.04),"kind":"frame","count":\#(i % 7),"ok":true,"#
                    + #""boxes":[[1,2,3,4.5]],"note":"caf\u00e9 \#(i)"}"#)
        }
        var total = 0.0
        var count = 0
        for line in lines {
            let value = try JSON.parse(line)
            total += value["count"]?.doubleValue ?? 0
            if value["note"]?.stringValue?.hasPrefix("café ") == true { count += 1 }
        }
        #expect(count == 100_000)
        #expect(total == Double((0..<100_000).reduce(0) { $0 + $1 % 7 }))
    }
}

import Formats
import Testing

@Suite struct JSONWriterTests {
    @Test(arguments: [
        (640.0, "640"), (640.3, "640.3"), (0.1, "0.1"), (-2.5, "-2.5"), (1e-7, "1e-07"),
        (12345678.9, "12345678.9"), (0.0, "0"), (-0.0, "-0"), (-17.0, "-17"), (1e300, "1e+300"),
        (9_007_199_254_740_991.0, "9007199254740991"), (9_007_199_254_740_992.0, "9007199254740992"), (1e16, "1e+16"),
        (-123456789.25, "-123456789.25"), (.leastNonzeroMagnitude, "5e-324"),
        (.nan, "null"), (.infinity, "null"), (-.infinity, "null"),
    ])
    func numberFormatting(_ value: Double, _ expected: String) throws {
        #expect(JSONWriter.number(value) == expected)
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("v", value)
        writer.endObject()
        #expect(writer.text == #"{"v":\#(expected)}"#)
        // Finite values survive the trip through text bit for bit.
        if value.isFinite {
            let parsed = try #require(try JSON.parse(writer.text)["v"]?.doubleValue)
            #expect(parsed.bitPattern == value.bitPattern)
        }
    }

    @Test func escaping() {
        #expect(JSONWriter.quoted("plain") == #""plain""#)
        #expect(JSONWriter.quoted("") == #""""#)
        #expect(JSONWriter.quoted("a\"b\\c") == #""a\"b\\c""#)
        #expect(JSONWriter.quoted("\n\t\r\u{08}\u{0C}") == #""\n\t\r\b\f""#)
        #expect(JSONWriter.quoted("\u{0}\u{1}\u{1F}\u{7F}") == #""\u0000\u0001\u001F\u007F""#)
        #expect(JSONWriter.quoted("é中😀/") == "\"é中😀/\"")
    }

    @Test func escapedStringsRoundTrip() throws {
        var all = ""
        for scalar in (0..<0x80).compactMap(Unicode.Scalar.init) { all.unicodeScalars.append(scalar) }
        all += "é中😀\u{2028}"
        #expect(try JSON.parse(JSONWriter.quoted(all)) == .string(all))
    }

    @Test func nestedContainersGetCorrectCommas() throws {
        var w = JSONWriter()
        w.beginObject()
        w.field("t", 1.5)
        w.field("name", "cam")
        w.field("count", 3)
        w.field("ok", true)
        w.fieldNull("none")
        w.beginArray(key: "xs")
        w.element(1)
        w.element(2.5)
        w.element("s")
        w.element(false)
        w.elementNull()
        w.beginObject()
        w.field("k", true)
        w.endObject()
        w.beginArray()
        w.endArray()
        w.beginArray(key: nil)
        w.element(7)
        w.endArray()
        w.endArray()
        w.beginObject(key: "o")
        w.endObject()
        w.key("after")
        w.beginObject()
        w.field("z", 0)
        w.endObject()
        w.field("v", .array([.number(1), .object(["q": .null])]))
        w.endObject()
        let expected =
            #"{"t":1.5,"name":"cam","count":3,"ok":true,"none":null,"xs":[1,2.5,"s",false,null,{"k":true},[],[7]],"#
            + #""o":{},"after":{"z":0},"v":[1,{"q":null}]}"#
        #expect(w.text == expected)
        #expect(w.isComplete)
        let parsed = try JSON.parse(w.text)
        #expect(parsed.objectValue?.keys == ["t", "name", "count", "ok", "none", "xs", "o", "after", "v"])
        #expect(parsed["xs"]?.arrayValue?.count == 8)
    }

    @Test func topLevelArrayAndReset() throws {
        var w = JSONWriter()
        w.beginArray()
        w.beginObject()
        w.endObject()
        w.beginObject()
        w.field("a", 1)
        w.endObject()
        #expect(!w.isComplete)
        w.endArray()
        #expect(w.text == #"[{},{"a":1}]"#)
        #expect(w.isComplete)
        w.reset()
        #expect(w.text.isEmpty)
        w.beginObject()
        w.field("k", "v\n")
        w.endObject()
        #expect(w.text == #"{"k":"v\n"}"#)
    }

    @Test func keysAreEscaped() throws {
        var w = JSONWriter()
        w.beginObject()
        w.field("we\"ird\nkey", 1)
        w.endObject()
        #expect(w.text == #"{"we\"ird\nkey":1}"#)
        #expect(try JSON.parse(w.text)["we\"ird\nkey"] == .number(1))
    }
}

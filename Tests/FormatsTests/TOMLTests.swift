import Formats
import Testing

func tomlError(_ text: String) -> TOMLError? {
    do {
        _ = try TOML.parse(text)
        return nil
    } catch {
        return error
    }
}

func tomlError(bytes: [UInt8]) -> TOMLError? {
    bytes.withUnsafeBufferPointer { buffer -> TOMLError? in
        do throws(TOMLError) {
            _ = try TOML.parse(bytes: buffer)
            return nil
        } catch {
            return error
        }
    }
}

struct TOMLErrorCase: Sendable, CustomTestStringConvertible {
    var input: String
    var line: Int
    var column: Int
    var message: String

    init(_ input: String, _ line: Int, _ column: Int, _ message: String) {
        self.input = input
        self.line = line
        self.column = column
        self.message = message
    }

    var testDescription: String { input.debugDescription }
}

@Suite struct TOMLParsingTests {
    static let config = """
        # headcount configuration
        title = "Headcount"   # trailing comment

        [policy]
        check_window_s = 200
        ratio = 0.75
          enabled = true
        limits.low = 1
        limits.high = 9
        "quoted key" = 'literal \\n stays'
        'single quoted' = ""

        [ sensors . "camera 1" ]
        size = [640, 480]
        when = 1979-05-27T07:32:00Z

        [[zones]]
        name = "door"

        [[zones]]
        name = "window"
        [zones.shape]
        kind = "rect"
        """

    @Test func valuesAndPositions() throws {
        let root = try TOML.parse(Self.config)
        #expect(root.keys == ["title", "policy", "sensors", "zones"])
        #expect(root.line == 1)

        let title = try #require(root["title"])
        #expect(title.value == .string("Headcount"))
        #expect(title.line == 2 && title.column == 9)

        let policyNode = try #require(root["policy"])
        #expect(policyNode.line == 4 && policyNode.column == 1)
        let policy = try #require(policyNode.tableValue)
        #expect(policy.line == 4)
        #expect(policy.keys == ["check_window_s", "ratio", "enabled", "limits", "quoted key", "single quoted"])
        let window = try #require(policy["check_window_s"])
        #expect(window == TOMLNode(value: .integer(200), line: 5, column: 18))
        #expect(policy["ratio"]?.value == .float(0.75))
        #expect(policy["enabled"] == TOMLNode(value: .bool(true), line: 7, column: 13))
        let limits = try #require(policy["limits"])
        #expect(limits.line == 8 && limits.column == 1)
        #expect(limits.tableValue?.keys == ["low", "high"])
        #expect(limits.tableValue?["high"] == TOMLNode(value: .integer(9), line: 9, column: 15))
        #expect(policy["quoted key"]?.value == .string("literal \\n stays"))
        #expect(policy["single quoted"]?.value == .string(""))

        let camera = try #require(root.node(at: ["sensors", "camera 1"]))
        #expect(camera.line == 13)
        #expect(root["sensors"]?.line == 13)
        let size = try #require(camera.tableValue?["size"])
        #expect(
            size
                == TOMLNode(
                    value: .array([
                        TOMLNode(value: .integer(640), line: 14, column: 9),
                        TOMLNode(value: .integer(480), line: 14, column: 14),
                    ]), line: 14, column: 8))
        #expect(camera.tableValue?["when"]?.value == .datetime("1979-05-27T07:32:00Z"))

        let zones = try #require(root["zones"])
        #expect(zones.line == 17)
        let elements = try #require(zones.arrayValue)
        #expect(elements.count == 2)
        #expect(elements[0].line == 17 && elements[1].line == 20)
        #expect(elements[0].tableValue?["name"]?.value == .string("door"))
        #expect(elements[1].tableValue?["name"]?.value == .string("window"))
        #expect(elements[1].tableValue?.node(at: ["shape", "kind"])?.value == .string("rect"))
        #expect(elements[1].tableValue?["shape"]?.line == 22)
        #expect(root.node(at: ["policy", "nope"]) == nil)
        #expect(root.node(at: ["title", "x"]) == nil)
    }

    @Test func typeNamesAndDecoderHelpers() throws {
        let root = try TOML.parse(
            """
            s = "x"
            i = 1
            f = 1.5
            b = false
            d = 2024-02-29
            a = []
            t = {}
            """)
        let names = root.entries.map(\.node.typeName)
        #expect(names == ["string", "integer", "float", "boolean", "datetime", "array", "table"])
        #expect(root["i"]?.integerValue == 1)
        #expect(root["i"]?.doubleValue == 1.0)
        #expect(root["f"]?.doubleValue == 1.5)
        #expect(root["s"]?.stringValue == "x")
        #expect(root["b"]?.boolValue == false)
        #expect(root["d"]?.datetimeText == "2024-02-29")
        #expect(root["a"]?.arrayValue == [])
        #expect(root["t"]?.tableValue?.entries.isEmpty == true)
        let node = try #require(root["i"])
        let error = node.error("1 is out of bounds 30–120")
        #expect(error == TOMLError(line: 2, column: 5, message: "1 is out of bounds 30–120"))
        #expect("headcount.toml:\(error)" == "headcount.toml:2:5: 1 is out of bounds 30–120")
    }

    @Test func keys() throws {
        let root = try TOML.parse(
            """
            bare_key-1 = 1
            "quoted \\"key\\"" = 2
            "" = 4
            a . b . "c d" = 5
            a.b.e = 6
            1234 = 7
            3.14 = 8
            [x]
            y.z = 9
            """)
        #expect(root.keys == ["bare_key-1", "quoted \"key\"", "", "a", "1234", "3", "x"])
        #expect(root["quoted \"key\""]?.value == .integer(2))
        #expect(root.node(at: ["a", "b", "c d"])?.value == .integer(5))
        #expect(root.node(at: ["a", "b", "e"])?.value == .integer(6))
        #expect(root.node(at: ["3", "14"])?.value == .integer(8))
        #expect(root.node(at: ["x", "y", "z"])?.value == .integer(9))
    }

    @Test func strings() throws {
        let root = try TOML.parse(
            #"""
            basic = "tab\there \"q\" \\ \b\f\n\r \u00E9 \U0001F600"
            literal = 'C:\Users\nodejs\templates'
            multi = """
            Roses are red
              Violets are blue"""
            folded = """\
                   The quick brown \
                   fox.\
                   """
            quotes = """Here are two quotation marks: "". Simple enough."""
            five = """"This," she said, "is just a pointless statement.""""
            raw = '''
            first line
               second \n line'''
            apostrophes = ''''That's it,' she said.''''
            """#)
        #expect(root["basic"]?.value == .string("tab\there \"q\" \\ \u{08}\u{0C}\n\r é 😀"))
        #expect(root["literal"]?.value == .string(#"C:\Users\nodejs\templates"#))
        #expect(root["multi"]?.value == .string("Roses are red\n  Violets are blue"))
        #expect(root["multi"]?.line == 3)
        #expect(root["folded"]?.value == .string("The quick brown fox."))
        #expect(root["folded"]?.line == 6)
        #expect(root["quotes"]?.value == .string(#"Here are two quotation marks: "". Simple enough."#))
        #expect(root["quotes"]?.line == 10)
        #expect(root["five"]?.value == .string(#""This," she said, "is just a pointless statement.""#))
        #expect(root["raw"]?.value == .string("first line\n   second \\n line"))
        #expect(root["apostrophes"]?.value == .string("'That's it,' she said.'"))
        #expect(root["apostrophes"]?.line == 15)
    }

    @Test func integers() throws {
        let cases: [(String, Int64)] = [
            ("+99", 99), ("42", 42), ("0", 0), ("-17", -17), ("+0", 0), ("-0", 0), ("1_000", 1000),
            ("5_349_221", 5_349_221), ("1_2_3_4_5", 12345), ("0xDEADBEEF", 0xDEAD_BEEF), ("0xdead_beef", 0xDEAD_BEEF),
            ("0o01234567", 0o01234567), ("0o755", 0o755), ("0b11010110", 0b11010110), ("0x0", 0),
            ("9223372036854775807", .max), ("-9223372036854775808", .min), ("0x7FFFFFFFFFFFFFFF", .max),
        ]
        for (text, expected) in cases {
            let root = try TOML.parse("v = \(text)")
            #expect(root["v"]?.value == .integer(expected), "\(text)")
        }
    }

    @Test func floats() throws {
        let cases: [(String, Double)] = [
            ("+1.0", 1), ("3.1415", 3.1415), ("-0.01", -0.01), ("5e+22", 5e22), ("1e06", 1e6), ("-2E-2", -0.02),
            ("6.626e-34", 6.626e-34), ("224_617.445_991_228", 224_617.445_991_228), ("0.0", 0), ("0e0", 0),
            ("1e1_0", 1e10), ("inf", .infinity), ("+inf", .infinity), ("-inf", -.infinity),
        ]
        for (text, expected) in cases {
            let root = try TOML.parse("v = \(text)")
            #expect(root["v"]?.value == .float(expected), "\(text)")
        }
        for text in ["nan", "+nan", "-nan"] {
            let value = try TOML.parse("v = \(text)")["v"]?.doubleValue
            #expect(value?.isNaN == true, "\(text)")
        }
        #expect(try TOML.parse("v = -0.0")["v"]?.doubleValue?.sign == .minus)
    }

    @Test func datetimes() throws {
        let texts = [
            "1979-05-27T07:32:00Z", "1979-05-27T00:32:00-07:00", "1979-05-27T00:32:00.999999+05:30",
            "1979-05-27 07:32:00Z", "1979-05-27t07:32:00z", "1979-05-27T07:32:00", "1979-05-27T00:32:00.999999",
            "1979-05-27", "07:32:00", "00:32:00.999999", "2000-02-29", "1990-12-31T23:59:60Z",
        ]
        for text in texts {
            let root = try TOML.parse("v = \(text) # note")
            #expect(root["v"]?.value == .datetime(text), "\(text)")
        }
        let inArray = try TOML.parse("v = [1979-05-27 07:32:00, 07:32:00]")
        #expect(inArray["v"]?.arrayValue?.map(\.value) == [.datetime("1979-05-27 07:32:00"), .datetime("07:32:00")])
    }

    @Test func arraysAndInlineTables() throws {
        let root = try TOML.parse(
            """
            numbers = [ 1, 2, 3 ]
            nested = [ [ 1, 2 ], ["a", 'b'], [] ]
            mixed = [ 0.1, "x", true, { k = 1 } ]
            multi = [   # comment after bracket
              "one",    # comment after element
              # a whole-line comment

              "two",
            ]
            point = { x = 1, y = 2, "z w".q = 3 }
            empty = {}
            deep = { a = { b = [ { c = true } ] } }
            spread = { list = [
              1,
              2 ] }
            """)
        #expect(root["numbers"]?.arrayValue?.map(\.value) == [.integer(1), .integer(2), .integer(3)])
        #expect(root["nested"]?.arrayValue?.count == 3)
        #expect(root["nested"]?.arrayValue?[1].arrayValue?.map(\.value) == [.string("a"), .string("b")])
        let mixed = try #require(root["mixed"]?.arrayValue)
        #expect(mixed.map(\.typeName) == ["float", "string", "boolean", "table"])
        #expect(mixed[3].tableValue?["k"]?.value == .integer(1))
        let multi = try #require(root["multi"]?.arrayValue)
        #expect(multi.map(\.value) == [.string("one"), .string("two")])
        #expect(multi.map(\.line) == [5, 8])
        let point = try #require(root["point"])
        #expect(point.line == 10 && point.column == 9)
        #expect(point.tableValue?.keys == ["x", "y", "z w"])
        #expect(point.tableValue?.node(at: ["z w", "q"])?.value == .integer(3))
        #expect(root["empty"]?.tableValue?.entries.isEmpty == true)
        #expect(root.node(at: ["deep", "a", "b"])?.arrayValue?.first?.tableValue?["c"]?.value == .bool(true))
        #expect(root.node(at: ["spread", "list"])?.arrayValue?.map(\.line) == [14, 15])
    }

    @Test func tableRules() throws {
        // Defining a super-table after its sub-table, sub-tables under dotted tables, arrays of tables with
        // sub-tables and nested arrays of tables are all valid.
        let root = try TOML.parse(
            """
            [x.y.z.w]
            a = 1
            [x]
            b = 2
            [fruit]
            apple.color = "red"
            apple.taste.sweet = true
            [fruit.apple.texture]
            smooth = true
            [[fruits]]
            name = "apple"
            [fruits.physical]
            color = "red"
            [[fruits.varieties]]
            name = "red delicious"
            [[fruits.varieties]]
            name = "granny smith"
            [[fruits]]
            name = "banana"
            [[fruits.varieties]]
            name = "plantain"
            """)
        #expect(root.node(at: ["x", "y", "z", "w", "a"])?.value == .integer(1))
        #expect(root.node(at: ["x", "b"])?.value == .integer(2))
        #expect(root["x"]?.line == 3)
        #expect(root.node(at: ["x", "y"])?.line == 1)
        #expect(root.node(at: ["fruit", "apple"])?.tableValue?.keys == ["color", "taste", "texture"])
        #expect(root.node(at: ["fruit", "apple", "texture", "smooth"])?.value == .bool(true))
        let fruits = try #require(root["fruits"]?.arrayValue)
        #expect(fruits.count == 2)
        #expect(fruits[0].tableValue?.node(at: ["physical", "color"])?.value == .string("red"))
        #expect(fruits[0].tableValue?["varieties"]?.arrayValue?.count == 2)
        #expect(fruits[1].tableValue?["varieties"]?.arrayValue?.first?.line == 20)
        #expect(fruits[1].tableValue?["varieties"]?.arrayValue?.first?.tableValue?["name"]?.line == 21)
    }

    @Test func crlfLineEndingsAndBOM() throws {
        let text = "\u{FEFF}a = 1\r\n# c\r\n[t]\r\nb = \"\"\"\r\nx\r\ny\"\"\"\r\nc = 'z'\r\n"
        let root = try TOML.parse(text)
        #expect(root["a"] == TOMLNode(value: .integer(1), line: 1, column: 5))
        #expect(root["t"]?.line == 3)
        #expect(root.node(at: ["t", "b"])?.value == .string("x\ny"))
        #expect(root.node(at: ["t", "c"]) == TOMLNode(value: .string("z"), line: 7, column: 5))
        let error = try #require(tomlError("a = 1\r\nb = 2\r\nb = 3\r\n"))
        #expect(error == TOMLError(line: 3, column: 1, message: "duplicate key 'b' (first defined on line 2)"))
    }

    @Test func emptyAndCommentOnlyDocuments() throws {
        #expect(try TOML.parse("").entries.isEmpty)
        #expect(try TOML.parse("\n\n  # only a comment\n\t\n").entries.isEmpty)
    }

    static let errorCases: [TOMLErrorCase] = [
        // Duplicates and redefinitions.
        TOMLErrorCase("a = 1\na = 2", 2, 1, "duplicate key 'a' (first defined on line 1)"),
        TOMLErrorCase("[t]\nx.y = 1\nx.y = 2", 3, 3, "duplicate key 'x.y' (first defined on line 2)"),
        TOMLErrorCase("\"a b\" = 1\n'a b' = 2", 2, 1, "duplicate key '\"a b\"' (first defined on line 1)"),
        TOMLErrorCase("[a]\nx = 1\n[a]", 3, 2, "table [a] is already defined on line 1"),
        TOMLErrorCase("[a.b]\n[a]\n[a]", 3, 2, "table [a] is already defined on line 2"),
        TOMLErrorCase("a = 1\n[a]", 2, 2, "key 'a' is already an integer (line 1); cannot redefine it as a table"),
        TOMLErrorCase(
            "a = {}\n[a]", 2, 2, "key 'a' is already an inline table (line 1); cannot redefine it as a table"),
        TOMLErrorCase("a = 1\n[a.b]", 2, 2, "cannot define table [a.b]: key 'a' is already an integer (line 1)"),
        TOMLErrorCase("[a.b]\n[a]\nb = 1", 3, 1, "duplicate key 'b' (already defined as a table on line 1)"),
        TOMLErrorCase(
            "[[a.b]]\n[a]\nb = 1", 3, 1, "duplicate key 'b' (already defined as an array of tables on line 1)"),
        TOMLErrorCase(
            "[a]\nb.c = 1\n[a.b]", 3, 4, "cannot define table [a.b]: it was already created by dotted keys on line 2"),
        TOMLErrorCase("a = 1\na.b = 2", 2, 1, "cannot define key 'a.b': 'a' is already an integer (line 1)"),
        TOMLErrorCase(
            "a = {x = 1}\na.y = 2", 2, 1,
            "cannot define key 'a.y': 'a' is an inline table (line 1), which cannot be extended"),
        TOMLErrorCase(
            "[a.b.c]\nz = 9\n[a]\nb.c.t = 1", 4, 1, "cannot define key 'b.c.t': table 'b' was already defined on line 1"
        ),
        TOMLErrorCase("[[t.a]]\n[t]\na.b = 1", 3, 1, "cannot define key 'a.b': 'a' is an array of tables (line 1)"),
        TOMLErrorCase(
            "[[t]]\n[t]", 2, 2, "key 't' is already an array of tables (line 1); cannot redefine it as a table"),
        TOMLErrorCase(
            "[t]\n[[t]]", 2, 3, "table 't' is already defined (line 1); cannot redefine it as an array of tables"),
        TOMLErrorCase("a = [1]\n[[a]]", 2, 3, "cannot append to static array 'a' (defined on line 1) with [[a]]"),
        TOMLErrorCase("a = []\n[a.b]", 2, 2, "cannot define table [a.b]: key 'a' is already an array (line 1)"),
        TOMLErrorCase("x = {a = 1, a = 2}", 1, 13, "duplicate key 'a' (first defined on line 1)"),
        // Strings.
        TOMLErrorCase(#"a = "x\qy""#, 1, 7, #"invalid escape '\q'"#),
        TOMLErrorCase(#"a = "\e""#, 1, 6, #"invalid escape '\e'"#),
        TOMLErrorCase(#"a = "\u12""#, 1, 6, #"invalid escape '\u': expected 4 hexadecimal digits"#),
        TOMLErrorCase(#"a = "\U0001F60""#, 1, 6, #"invalid escape '\U': expected 8 hexadecimal digits"#),
        TOMLErrorCase(#"a = "\uD800""#, 1, 6, #"invalid escape '\uD800': not a Unicode scalar value"#),
        TOMLErrorCase(#"a = "\U00110000""#, 1, 6, #"invalid escape '\U00110000': not a Unicode scalar value"#),
        TOMLErrorCase("a = \"\"\"\nx \\ y\"\"\"", 2, 3, #"invalid escape '\ '"#),
        TOMLErrorCase("a = \"abc", 1, 5, "unterminated string"),
        TOMLErrorCase("a = \"abc\nb = 1\"", 1, 5, "unterminated string"),
        TOMLErrorCase("a = 'abc", 1, 5, "unterminated string"),
        TOMLErrorCase("x = 1\na = \"\"\"abc\nmore", 2, 5, "unterminated multi-line string"),
        TOMLErrorCase("a = '''abc\n''", 1, 5, "unterminated multi-line string"),
        TOMLErrorCase("a = \"\"\"x\"\"\"\"\"\"", 1, 9, "too many quotation marks at the end of a multi-line string"),
        TOMLErrorCase("\"\"\"k\"\"\" = 1", 1, 1, "a multi-line string cannot be used as a key"),
        // Numbers.
        TOMLErrorCase("a = 0123", 1, 5, "invalid number '0123': leading zeros are not allowed"),
        TOMLErrorCase("a = 01.5", 1, 5, "invalid number '01.5': leading zeros are not allowed"),
        TOMLErrorCase("a = -00", 1, 5, "invalid number '-00': leading zeros are not allowed"),
        TOMLErrorCase("a = 1__2", 1, 5, "invalid number '1__2': underscores must be between digits"),
        TOMLErrorCase("a = 1_", 1, 5, "invalid number '1_': underscores must be between digits"),
        TOMLErrorCase("a = _1", 1, 5, "invalid number '_1': underscores must be between digits"),
        TOMLErrorCase("a = 1._5", 1, 5, "invalid number '1._5': underscores must be between digits"),
        TOMLErrorCase("a = 1.", 1, 5, "invalid number '1.': expected digits after '.'"),
        TOMLErrorCase("a = 1.e5", 1, 5, "invalid number '1.e5': expected digits after '.'"),
        TOMLErrorCase("a = 1e", 1, 5, "invalid number '1e': expected digits in the exponent"),
        TOMLErrorCase("a = 1e+", 1, 5, "invalid number '1e+': expected digits in the exponent"),
        TOMLErrorCase("a = .5", 1, 5, "invalid number '.5'"),
        TOMLErrorCase("a = 1.2.3", 1, 5, "invalid number '1.2.3'"),
        TOMLErrorCase("a = 0b102", 1, 5, "invalid number '0b102'"),
        TOMLErrorCase("a = 0o8", 1, 5, "invalid number '0o8'"),
        TOMLErrorCase("a = 0X1F", 1, 5, "invalid number '0X1F'"),
        TOMLErrorCase("a = 0x", 1, 5, "invalid number '0x': expected digits"),
        TOMLErrorCase("a = +0x10", 1, 5, "invalid number '+0x10': hexadecimal, octal and binary integers have no sign"),
        TOMLErrorCase("a = +", 1, 5, "invalid number '+'"),
        TOMLErrorCase(
            "a = 9223372036854775808", 1, 5,
            "integer overflow: '9223372036854775808' does not fit in a 64-bit signed integer"),
        TOMLErrorCase(
            "a = -9223372036854775809", 1, 5,
            "integer overflow: '-9223372036854775809' does not fit in a 64-bit signed integer"),
        TOMLErrorCase(
            "a = 0x8000000000000000", 1, 5,
            "integer overflow: '0x8000000000000000' does not fit in a 64-bit signed integer"),
        TOMLErrorCase(
            "a = 0b11111111111111111111111111111111111111111111111111111111111111111", 1, 5,
            "integer overflow: '0b11111111111111111111111111111111111111…' does not fit in a 64-bit signed integer"),
        TOMLErrorCase("a = 1e400", 1, 5, "float '1e400' is out of range"),
        TOMLErrorCase("a = 1979-13-01", 1, 5, "invalid date-time '1979-13-01'"),
        TOMLErrorCase("a = 2023-02-29", 1, 5, "invalid date-time '2023-02-29'"),
        TOMLErrorCase("a = 07:32", 1, 5, "invalid date-time '07:32'"),
        TOMLErrorCase("a = 07:32:00Z", 1, 5, "invalid date-time '07:32:00Z'"),
        TOMLErrorCase("a = 1979-05-27T25:00:00", 1, 5, "invalid date-time '1979-05-27T25:00:00'"),
        TOMLErrorCase("a = 1979-05-27T07:32:00+7", 1, 5, "invalid date-time '1979-05-27T07:32:00+7'"),
        // Structure and values.
        TOMLErrorCase("a 1", 1, 3, "expected '=' after key 'a', found '1'"),
        TOMLErrorCase("a.b", 1, 4, "expected '=' after key 'a.b', found end of input"),
        TOMLErrorCase("[t]\nname\nx = 1", 2, 5, "expected '=' after key 'name', found end of line"),
        TOMLErrorCase("= 1", 1, 1, "expected a key, found '='"),
        TOMLErrorCase("a. = 1", 1, 4, "expected a key, found '='"),
        TOMLErrorCase("[]", 1, 2, "expected a key, found ']'"),
        TOMLErrorCase("[a", 1, 3, "expected ']' to close table header, found end of input"),
        TOMLErrorCase("[[a]\n", 1, 4, "expected ']]' to close array-of-tables header, found ']'"),
        TOMLErrorCase("[a] b = 1", 1, 5, "expected end of line after table header"),
        TOMLErrorCase("a = 1 2", 1, 7, "expected end of line after value"),
        TOMLErrorCase("a = \"x\" \"y\"", 1, 9, "expected end of line after value"),
        TOMLErrorCase("a = true false", 1, 10, "expected end of line after value"),
        TOMLErrorCase("a = 1,", 1, 6, "expected end of line after value"),
        TOMLErrorCase("a = hello", 1, 5, "invalid value 'hello' (strings must be quoted)"),
        TOMLErrorCase("a = True", 1, 5, "invalid value 'True' (strings must be quoted)"),
        TOMLErrorCase("a =", 1, 4, "expected a value, found end of input"),
        TOMLErrorCase("a = # none", 1, 5, "expected a value, found a comment"),
        TOMLErrorCase("a = \nb = 1", 1, 5, "expected a value, found end of line"),
        TOMLErrorCase("a = [1 2]", 1, 8, "expected ',' or ']' after array element, found '2'"),
        TOMLErrorCase("a = [1,,]", 1, 8, "expected a value, found ','"),
        TOMLErrorCase("a = [1,\n2", 1, 5, "unterminated array"),
        TOMLErrorCase("a = {x = 1,}", 1, 12, "trailing comma is not allowed in an inline table"),
        TOMLErrorCase(
            "a = {x = 1\n}", 1, 11, "expected '}': an inline table must be closed on the line where it starts"),
        TOMLErrorCase(
            "a = {\nx = 1}", 1, 6, "expected '}': an inline table must be closed on the line where it starts"),
        TOMLErrorCase("a = {x = 1 y = 2}", 1, 12, "expected ',' or '}' after inline table entry, found 'y'"),
        TOMLErrorCase("a = {x = 1", 1, 5, "unterminated inline table"),
        // Bytes that are never allowed.
        TOMLErrorCase("a = \"x\u{0}\"", 1, 7, "control character U+0000 is not allowed"),
        TOMLErrorCase("# note\u{1}\na = 1", 1, 7, "control character U+0001 is not allowed"),
        TOMLErrorCase("a = 'x\u{7F}'", 1, 7, "control character U+007F is not allowed"),
        TOMLErrorCase("a = 1\nb = \"\u{1B}[0m\"", 2, 6, "control character U+001B is not allowed"),
        TOMLErrorCase("a = 1\rb = 2", 1, 6, "carriage return must be followed by a line feed"),
    ]

    @Test(arguments: errorCases)
    func reportsErrorsWithLocation(_ testCase: TOMLErrorCase) throws {
        let error = try #require(tomlError(testCase.input))
        #expect(error.message == testCase.message)
        #expect(error.line == testCase.line)
        #expect(error.column == testCase.column)
    }

    @Test func invalidUTF8() throws {
        let cases: [(bytes: [UInt8], line: Int, column: Int)] = [
            (Array("a = \"".utf8) + [0xFF] + Array("\"".utf8), 1, 6),
            (Array("a = 1\n# ".utf8) + [0xC3, 0x28], 2, 3),
            (Array("k".utf8) + [0xED, 0xA0, 0x80] + Array(" = 1".utf8), 1, 2),
            (Array("a = 'x".utf8) + [0xE2, 0x82], 1, 7),
        ]
        for testCase in cases {
            let error = try #require(tomlError(bytes: testCase.bytes))
            #expect(error == TOMLError(line: testCase.line, column: testCase.column, message: "invalid UTF-8"))
        }
    }

    @Test func nestingDepthIsLimitedTo64() throws {
        #expect(TOML.maximumNestingDepth == 64)
        let ok = "a = " + String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try TOML.parse(ok)["a"]?.typeName == "array")
        let arrays = "a = " + String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        let arrayError = try #require(tomlError(arrays))
        #expect(arrayError == TOMLError(line: 1, column: 69, message: "nesting depth exceeds the limit of 64"))

        let inline = "a = " + String(repeating: "{b = ", count: 65) + "1" + String(repeating: "}", count: 65)
        #expect(tomlError(inline)?.message == "nesting depth exceeds the limit of 64")

        let keys64 = (1...64).map { "k\($0)" }.joined(separator: ".")
        #expect(try TOML.parse("\(keys64) = 1").node(at: (1...64).map { "k\($0)" })?.value == .integer(1))
        // 65 key parts make 64 tables holding one integer: the deepest allowed.
        let keys65 = (1...65).map { "k\($0)" }.joined(separator: ".")
        #expect(try TOML.parse("\(keys65) = 1").node(at: (1...65).map { "k\($0)" })?.value == .integer(1))
        let keys66 = (1...66).map { "k\($0)" }.joined(separator: ".")
        let keyError = try #require(tomlError("\(keys66) = 1"))
        #expect(keyError.message == "nesting depth exceeds the limit of 64")
        #expect(keyError.column == keys64.utf8.count + 2)
        #expect(tomlError("[\(keys65)]")?.message == "nesting depth exceeds the limit of 64")
        #expect(tomlError("[[\(keys65)]]")?.message == "nesting depth exceeds the limit of 64")
        // Table depth and value depth add up.
        let mixed = "[\(keys64)]\na = [1]"
        #expect(tomlError(mixed) == TOMLError(line: 2, column: 5, message: "nesting depth exceeds the limit of 64"))
        // Hostile inputs far beyond the limit fail fast.
        #expect(tomlError("a = " + String(repeating: "[", count: 100_000))?.message.hasPrefix("nesting") == true)
        #expect(tomlError("a = " + String(repeating: "{b=", count: 100_000))?.message.hasPrefix("nesting") == true)
    }

    @Test func errorDescription() throws {
        let error = try #require(tomlError("a = 1\na = 2"))
        #expect(error.description == "2:1: duplicate key 'a' (first defined on line 1)")
    }
}

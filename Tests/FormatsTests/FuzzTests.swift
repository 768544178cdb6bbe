import Formats
import Foundation
import TestSupport
import Testing

/// Inputs per fuzz test; raise it for a longer soak, e.g. `FORMATS_FUZZ_ITERATIONS=1000000 swift test`.
let fuzzIterations = ProcessInfo.processInfo.environment["FORMATS_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 4000
/// Added to the fixed seeds so a soak can explore other inputs: `FORMATS_FUZZ_SEED=7 swift test`.
let fuzzSeedOffset = ProcessInfo.processInfo.environment["FORMATS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0

/// SplitMix64: small, fast and deterministic, so every run feeds the parsers the same inputs.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Builds random and mutated byte strings from seed documents.
struct Mutator {
    var rng: SplitMix64
    let seeds: [[UInt8]]
    /// Bytes that matter to the grammars, plus bytes that are invalid or special in UTF-8.
    let interesting: [UInt8] =
        Array("{}[]:,\"'\\/.=#+-_0123456789eExobtfnrulsaiTZ \t\n\r".utf8) + [
            0x00, 0x01, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF,
        ]

    mutating func randomByte() -> UInt8 {
        Bool.random(using: &rng)
            ? interesting.randomElement(using: &rng) ?? 0 : UInt8.random(in: 0...255, using: &rng)
    }

    mutating func randomBytes(maxCount: Int) -> [UInt8] {
        let count = Int.random(in: 0...maxCount, using: &rng)
        return (0..<count).map { _ in randomByte() }
    }

    mutating func mutated() -> [UInt8] {
        var bytes = seeds.randomElement(using: &rng) ?? []
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            let index = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0 where !bytes.isEmpty:
                bytes[index] = randomByte()
            case 1:
                bytes.insert(randomByte(), at: index)
            case 2 where !bytes.isEmpty:
                let end = min(bytes.count, index + Int.random(in: 1...8, using: &rng))
                bytes.removeSubrange(index..<end)
            case 3 where !bytes.isEmpty:
                // Duplicate a slice somewhere else (grows nesting, repeats keys).
                let end = min(bytes.count, index + Int.random(in: 1...32, using: &rng))
                let slice = Array(bytes[index..<end])
                bytes.insert(contentsOf: slice, at: Int.random(in: 0...bytes.count, using: &rng))
            case 4:
                bytes = Array(bytes.prefix(index))
            case 5:
                // Splice with another seed.
                let other = seeds.randomElement(using: &rng) ?? []
                let cut = other.isEmpty ? 0 : Int.random(in: 0..<other.count, using: &rng)
                bytes = Array(bytes.prefix(index)) + Array(other.suffix(from: cut))
            default:
                bytes.insert(contentsOf: randomBytes(maxCount: 6), at: index)
            }
        }
        return bytes
    }
}

let jsonSeeds: [String] = [
    #"{"t":12.5,"kind":"frame","count":3,"ok":true,"none":null,"boxes":[[1,2,3,4.5]],"note":"caf\u00e9 \ud83d\ude00"}"#,
    #"[0, -0, 1e10, -2.5E-3, 123456789012345678901234567890, "a\"b\\c\/\b\f\n\r\t", {}, [], [[[]]]]"#,
    #"{"nested": {"a": {"b": {"c": [true, false, null]}}}, "s": "héllo 中文", "e": ""}"#,
    "  \n\t{ \"spaces\" : [ 1 , 2 ] }  \n",
    #""just a string""#,
    "42",
]

let tomlSeeds: [String] = [
    TOMLParsingTests.config,
    """
    a = "tab\\there \\u00E9 \\U0001F600"
    b = 'lit'
    c = \"\"\"
    multi \\
      line\"\"\"
    d = '''raw
    text'''
    e = [1, 2.5, -inf, nan, 0x1F, 0o7, 0b1, 1_000, 1e-3]
    f = { x = 1, y.z = "w", arr = [ {k = true} ] }
    g = 1979-05-27T07:32:00-08:00
    h = 1979-05-27 07:32:00
    i = 07:32:00.5
    [t . "q k"]
    x.y = 1
    [[arr]]
    n = 1
    [[arr]]
    n = 2
    [arr.sub]
    m = [
      1, # c
      2,
    ]
    """,
    "a = 1\r\n[b]\r\nc = \"\"\"\r\nx\r\n\"\"\"\r\n",
]

/// Checks an error's position is plausible for the input it came from.
func checkPosition(line: Int, column: Int, message: String, in bytes: [UInt8]) {
    let lineCount = bytes.count(where: { $0 == UInt8(ascii: "\n") }) + 1
    #expect(line >= 1 && line <= lineCount, "line \(line) of \(lineCount)")
    #expect(column >= 1 && column <= bytes.count + 1, "column \(column)")
    #expect(!message.isEmpty)
}

@Suite struct FuzzTests {
    @Test(.timeLimit(.budget(minutes: 2)))
    func jsonNeverCrashesAndRoundTrips() {
        var mutator = Mutator(
            rng: SplitMix64(seed: 0x5EED_0001 &+ fuzzSeedOffset), seeds: jsonSeeds.map { Array($0.utf8) })
        var parsed = 0
        var failed = 0
        for i in 0..<fuzzIterations {
            let bytes = i % 4 == 0 ? mutator.randomBytes(maxCount: 64) : mutator.mutated()
            let result = bytes.withUnsafeBufferPointer { buffer in
                Result { () throws(JSONSyntaxError) -> JSONValue in try JSON.parse(bytes: buffer) }
            }
            switch result {
            case .success(let value):
                parsed += 1
                // Whatever parses must survive serialization unchanged.
                let text = JSON.serialize(value)
                #expect((try? JSON.parse(text)) == value, "\(text)")
            case .failure(let error):
                failed += 1
                checkPosition(line: error.line, column: error.column, message: error.message, in: bytes)
            }
        }
        #expect(parsed + failed == fuzzIterations)
        #expect(parsed > 50 && failed > 50, "parsed \(parsed), failed \(failed)")
    }

    @Test(.timeLimit(.budget(minutes: 2)))
    func tomlNeverCrashes() {
        var mutator = Mutator(
            rng: SplitMix64(seed: 0x5EED_0002 &+ fuzzSeedOffset), seeds: tomlSeeds.map { Array($0.utf8) })
        var parsed = 0
        var failed = 0
        for i in 0..<fuzzIterations {
            let bytes = i % 4 == 0 ? mutator.randomBytes(maxCount: 64) : mutator.mutated()
            let result = bytes.withUnsafeBufferPointer { buffer in
                Result { () throws(TOMLError) -> TOMLTable in try TOML.parse(bytes: buffer) }
            }
            switch result {
            case .success(let table):
                parsed += 1
                #expect(table.line == 1)
            case .failure(let error):
                failed += 1
                checkPosition(line: error.line, column: error.column, message: error.message, in: bytes)
            }
        }
        #expect(parsed + failed == fuzzIterations)
        #expect(parsed > 50 && failed > 50, "parsed \(parsed), failed \(failed)")
    }

    @Test func seedsAreValid() throws {
        for seed in jsonSeeds { _ = try JSON.parse(seed) }
        for seed in tomlSeeds { _ = try TOML.parse(seed) }
    }

    @Test func pathologicalInputsFailQuickly() {
        let inputs: [String] = [
            String(repeating: "[", count: 1_000_000),
            String(repeating: "{\"a\":", count: 200_000),
            "\"" + String(repeating: "\\u", count: 100_000),
            String(repeating: "9", count: 1_000_000),
            "[" + String(repeating: "1,", count: 200_000),
        ]
        for input in inputs {
            #expect(jsonError(input) != nil)
        }
        let big = "0." + String(repeating: "0", count: 100_000) + "1"
        #expect((try? JSON.parse(big))?.doubleValue == 0)
        let tomlInputs: [String] = [
            "a = " + String(repeating: "[", count: 1_000_000),
            String(repeating: "[", count: 100_000),
            String(repeating: "[[a]]\n", count: 10_000) + "[a]",
            (0..<100_000).map { "k\($0) = \($0)" }.joined(separator: "\n") + "\nk5 = 1",
            "a = \"" + String(repeating: "\\", count: 100_000),
        ]
        for input in tomlInputs {
            #expect(tomlError(input) != nil)
        }
    }
}

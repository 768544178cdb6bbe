import Detection
import Foundation
import Testing

/// The scenario suite: each `Tests/Scenarios/NAME.jsonl` trace is replayed and its events compared
/// with `NAME.expected`, one event a line: `T reminder`, `T checked`, `T alarm LEVEL REASON`,
/// `T silenced`, `T alarm_cleared`, `T alert TYPE`; `#` starts a comment.
enum Scenarios {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Scenarios")

    static var names: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".jsonl") }.map { String($0.dropLast(6)) }.sorted()
    }

    /// An event as a line of an `.expected` file.
    static func line(_ event: ReplayEvent) -> String {
        let t = formatNumber(event.t)
        switch event {
        case .event(.reminder, _): return "\(t) reminder"
        case .event(.checked, _): return "\(t) checked"
        case .event(.alarm(let level, let reason), _): return "\(t) alarm \(level) \(reason.rawValue)"
        case .event(.silenced, _): return "\(t) silenced"
        case .event(.alarmCleared, _): return "\(t) alarm_cleared"
        case .alert(let alert): return "\(t) alert \(alert.type.rawValue)"
        }
    }

    static func expected(_ name: String) throws -> [String] {
        let text = try String(contentsOf: directory.appendingPathComponent(name + ".expected"), encoding: .utf8)
        return text.split(separator: "\n").compactMap { raw in
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return words.isEmpty ? nil : words.joined(separator: " ")
        }
    }

    static func replay(_ name: String) throws -> [String] {
        let file = directory.appendingPathComponent(name + ".jsonl")
        let trace = try Trace.parse(try String(contentsOf: file, encoding: .utf8), file: file.lastPathComponent)
        return trace.replay(policy: trace.policy).map(line)
    }
}

@Suite("Scenario traces against their expected events")
struct ScenarioTests {
    @Test("the suite has at least 40 scenarios, each with its expected events")
    func suiteIsComplete() throws {
        let names = Scenarios.names
        #expect(names.count >= 40)
        for name in names {
            let path = Scenarios.directory.appendingPathComponent(name + ".expected").path
            #expect(FileManager.default.fileExists(atPath: path), "\(name).expected is missing")
        }
    }

    @Test("scenario", arguments: Scenarios.names)
    func scenario(_ name: String) throws {
        let actual = try Scenarios.replay(name)
        let expected = try Scenarios.expected(name)
        #expect(
            actual == expected,
            "\(name): replay gave\n\(actual.joined(separator: "\n"))\nexpected\n\(expected.joined(separator: "\n"))")
    }
}

import Detection
import Foundation
import Hardware
import Testing

/// The bad configs of Tests/CheckConfig, as `headcount check-config` sees them: `NAME.toml` (a van
/// config, which may name a bad profile in `profiles/` or a bad device model in `models/`) gives
/// exactly the lines of `NAME.expected`, every error in file and line order and then how many.
/// `scripts/cli-test` runs the same files through the binary.
@Suite("check-config: every error of a bad config, profile or device model")
struct CheckConfigCaseTests {
    static let folder = Repository.root.appendingPathComponent("Tests/CheckConfig")

    static var cases: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return files.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(".toml".count)) }.sorted()
    }

    /// What check-config prints for the case, with the folder's path taken out of file names (the
    /// binary is run from inside the folder).
    static func report(_ name: String) -> (report: String, problems: ConfigProblems, path: String) {
        let path = folder.appendingPathComponent("\(name).toml").path
        var problems = ConfigProblems()
        let van = VanConfig.load(path: path, directories: [Repository.profiles], problems: &problems)
        #expect(van == nil, "\(name).toml was accepted")
        let report = problems.report(mainFile: path).replacingOccurrences(of: folder.path + "/", with: "")
        return (report, problems, path)
    }

    @Test("at least 30 cases: configs, profiles and device models")
    func enough() {
        let cases = Self.cases
        #expect(cases.count >= 30)
        #expect(cases.filter { $0.hasPrefix("profile-") }.count >= 4)
        #expect(cases.filter { $0.hasPrefix("model-") }.count >= 4)
        #expect(cases.filter { !$0.hasPrefix("profile-") && !$0.hasPrefix("model-") }.count >= 22)
    }

    @Test("the errors are exactly those of NAME.expected", arguments: cases)
    func expected(_ name: String) throws {
        let (report, _, _) = Self.report(name)
        let expected = try String(
            contentsOf: Self.folder.appendingPathComponent("\(name).expected"), encoding: .utf8)
        let got = report.split(separator: "\n", omittingEmptySubsequences: false)
        let want = expected.split(separator: "\n", omittingEmptySubsequences: true)
        for (index, line) in want.enumerated() {
            #expect(
                index < got.count && got[index] == line,
                "\(name), line \(index + 1): got \(index < got.count ? String(got[index]) : "nothing")")
        }
        #expect(got.count == want.count, "\(name): got\n\(report)")
    }

    @Test("the daemon's load stops at the first error found, the one check-config also reports", arguments: cases)
    func firstError(_ name: String) {
        let (_, problems, path) = Self.report(name)
        guard let first = problems.errors.first else {
            Issue.record("\(name).toml: no error")
            return
        }
        #expect(throws: first) {
            try VanConfig.load(path: path, directories: [Repository.profiles])
        }
    }
}

@Suite("Collecting config errors")
struct ConfigProblemsTests {
    let error = { (file: String, line: Int, message: String) in
        ConfigError(file: file, line: line, field: nil, message: message)
    }

    @Test("the config's own errors first, then each other file's in the order first named; by line, each once")
    func order() {
        var problems = ConfigProblems()
        problems.add(error("van.toml", 9, "b"))
        problems.add(error("profile.toml", 3, "c"))
        problems.add(error("van.toml", 2, "a"))
        problems.add(error("model.toml", 1, "e"))
        problems.add(error("profile.toml", 1, "d"))
        problems.add(error("van.toml", 9, "b"))
        problems.add(error("van.toml", 9, "b2"))
        #expect(
            problems.sorted(mainFile: "van.toml").map(\.message) == ["a", "b", "b2", "d", "c", "e"])
        #expect(problems.report(mainFile: "van.toml").hasSuffix("\nmodel.toml:1: e\n6 errors"))
        #expect(ConfigProblems([error("v", 1, "x")]).report(mainFile: "v") == "v:1: x\n1 error")
    }

    @Test("a likely typo gets the name it was probably meant to be; an unrelated word gets none")
    func suggestions() {
        #expect(ConfigError.suggestion(for: "sest", among: ["seat", "presence"]) == "seat")
        #expect(ConfigError.suggestion(for: "Seat", among: ["seat", "presence"]) == "seat")
        #expect(ConfigError.suggestion(for: "chek_window_s", among: Policy.settings.map(\.name)) == "check_window_s")
        #expect(ConfigError.suggestion(for: "sofa", among: ["seat", "presence"]) == nil)
        #expect(ConfigError.suggestion(for: "", among: ["seat"]) == nil)
        #expect(ConfigError.suggestion(for: String(repeating: "x", count: 10_000), among: ["seat"]) == nil)
        #expect(
            ConfigError.allowed("points", ["temperature", "humidity"], instead: "temperatur")
                == "(did you mean \"temperature\"? points: temperature, humidity)")
        #expect(ConfigError.allowed("devices", [], instead: "x") == "(devices: none)")
    }

    @Test("a catalog made of throwing lookups still reports through the collecting ones, and back")
    func catalogBridges() throws {
        var problems = ConfigProblems()
        #expect(Fixtures.catalog.findProfile("pi9", &problems) == nil)
        #expect(problems.errors.map(\.message) == ["no hardware profile \"pi9\""])
        let files = VanConfig.Catalog.files(in: [Repository.profiles])
        #expect(try files.profile("simulator").board == "simulator")
        #expect(throws: ConfigError.self) { try files.model("xy-md03") }
        do {
            _ = try files.model("xy-md03")
        } catch {
            #expect(error.line == 0)
            #expect(error.message.hasPrefix("no device model \"xy-md03\" (did you mean \"xy-md02\"? models: di16,"))
        }
    }
}

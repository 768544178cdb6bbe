/// Every error found while checking a config and the profile and device model files it names, in
/// the order they were found. `check-config` reports them all; the daemon stops at the first.
///
/// Decoders record into one collector and carry on where the rest can still be checked: a bad
/// `[[sensor]]` does not hide the next one.
public struct ConfigProblems: Error, Equatable, Sendable {
    public private(set) var errors: [ConfigError] = []

    public init(_ errors: [ConfigError] = []) {
        self.errors = errors
    }

    public var isEmpty: Bool { errors.isEmpty }
    public var count: Int { errors.count }

    public mutating func add(_ error: ConfigError) {
        errors.append(error)
    }

    public mutating func add(_ errors: some Sequence<ConfigError>) {
        self.errors.append(contentsOf: errors)
    }

    /// Runs one check: its value, or nil with its error recorded, so the checks after it still run.
    public mutating func check<T>(_ body: @autoclosure () throws(ConfigError) -> T) -> T? {
        do {
            return try body()
        } catch {
            errors.append(error)
            return nil
        }
    }

    /// `value` when nothing was recorded, else the first error: the daemon's way, stop at the first.
    public func value<T>(_ value: T?, file: String) throws(ConfigError) -> T {
        if let first = errors.first { throw first }
        guard let value else { throw ConfigError(file: file, line: 1, field: nil, message: "cannot be read") }
        return value
    }

    /// The errors of `mainFile` first, then those of each other file in the order it was first
    /// named; by line within a file (errors of one line keep the order they were found in), each
    /// error once.
    public func sorted(mainFile: String) -> [ConfigError] {
        var files = [mainFile]
        for error in errors where !files.contains(error.file) { files.append(error.file) }
        var seen: Set<String> = []
        let unique = errors.filter { seen.insert($0.description).inserted }
        return unique.enumerated().sorted { left, right in
            let leftFile = files.firstIndex(of: left.element.file) ?? 0
            let rightFile = files.firstIndex(of: right.element.file) ?? 0
            if leftFile != rightFile { return leftFile < rightFile }
            if left.element.line != right.element.line { return left.element.line < right.element.line }
            return left.offset < right.offset
        }.map(\.element)
    }

    /// What `check-config` prints: one `FILE:LINE: FIELD: message` line per error, in the order of
    /// `sorted(mainFile:)`, then how many there are ("3 errors").
    public func report(mainFile: String) -> String {
        let lines = sorted(mainFile: mainFile).map(\.description)
        return (lines + ["\(lines.count) error\(lines.count == 1 ? "" : "s")"]).joined(separator: "\n")
    }
}

extension ConfigError {
    /// The name of `known` nearest to `name` when it looks like a typo of it ("sest" for "seat"):
    /// at most one edit in three characters apart, ignoring case.
    public static func suggestion(for name: String, among known: [String]) -> String? {
        let typed = Array(name.lowercased())
        guard !typed.isEmpty, typed.count <= 64 else { return nil }
        var best: (name: String, distance: Int)?
        for candidate in known where candidate != name {
            let distance = editDistance(typed, Array(candidate.lowercased()))
            if distance <= max(1, typed.count / 3), distance < best?.distance ?? Int.max {
                best = (candidate, distance)
            }
        }
        return best?.name
    }

    /// " (did you mean "seat"?)" when there is a likely one, else "".
    public static func didYouMean(_ name: String, among known: [String]) -> String {
        suggestion(for: name, among: known).map { " (did you mean \"\($0)\"?)" } ?? ""
    }

    /// What may be written instead of `name`: "(did you mean "seat.1"? its inputs: seat.1, seat.2)",
    /// or "(its inputs: none)".
    public static func allowed(_ label: String, _ known: [String], instead name: String) -> String {
        let near = suggestion(for: name, among: known).map { "did you mean \"\($0)\"? " } ?? ""
        return "(\(near)\(label): \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
    }

    /// Levenshtein distance, one row at a time.
    private static func editDistance(_ left: [Character], _ right: [Character]) -> Int {
        guard !right.isEmpty else { return left.count }
        var previous = Array(0...right.count)
        for (i, a) in left.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: right.count)
            for (j, b) in right.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (a == b ? 0 : 1))
            }
            previous = current
        }
        return previous[right.count]
    }
}

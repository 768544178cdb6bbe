import Detection
#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension VanConfig.Catalog {
    /// Profiles as `DIR/NAME.toml` and device models as `DIR/devices/MODEL.toml`, from the first of
    /// `directories` that has them; a name with a "/" or ending in ".toml" is a path of its own
    /// (relative to `base`, the config file's folder). Every error of a file found is recorded.
    public static func files(in directories: [String], base: String = ".") -> VanConfig.Catalog {
        VanConfig.Catalog(
            findProfile: { name, problems in
                guard
                    let (text, file) = find(
                        name, in: directories, subfolder: nil, base: base, what: "hardware profile", plural: "profiles",
                        problems: &problems)
                else { return nil }
                return HardwareProfile.parse(text, file: file, problems: &problems)
            },
            findModel: { name, problems in
                guard
                    let (text, file) = find(
                        name, in: directories, subfolder: "devices", base: base, what: "device model",
                        plural: "models", problems: &problems)
                else { return nil }
                return DeviceModel.parse(text, file: file, problems: &problems)
            })
    }

    /// Where profiles live: beside the installed binary's share folder, the system's, and a
    /// source checkout's.
    public static var standardDirectories: [String] {
        var directories: [String] = []
        if let override = ProcessInfo.processInfo.environment["HEADCOUNT_PROFILES"] {
            directories.append(override)
        }
        directories += ["/etc/headcount/profiles", "/usr/share/headcount/profiles", "HardwareProfiles"]
        return directories
    }

    /// The file's text and path; or nil, with an error on line 0 (the caller's field is at fault)
    /// that lists what there is, or one naming the file when it is not text.
    private static func find(
        _ name: String, in directories: [String], subfolder: String?, base: String, what: String, plural: String,
        problems: inout ConfigProblems
    ) -> (String, String)? {
        let folders = directories.map { [$0, subfolder].compactMap { $0 }.joined(separator: "/") }
        var candidates: [String] = []
        let isPath = name.contains("/") || name.hasSuffix(".toml")
        if isPath {
            candidates = [name.hasPrefix("/") || base == "." ? name : "\(base)/\(name)"]
        } else if name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) {
            candidates = folders.map { "\($0)/\(name).toml" }
        } else {
            problems.add(
                ConfigError(
                    file: "", line: 0, field: nil,
                    message: "\"\(name)\" is not a \(what) name \(available(in: folders, plural, instead: name))"))
            return nil
        }
        for path in candidates {
            if let data = FileManager.default.contents(atPath: path) {
                guard let text = String(data: data, encoding: .utf8) else {
                    problems.add(ConfigError(file: path, line: 1, field: nil, message: "not UTF-8 text"))
                    return nil
                }
                return (text, path)
            }
        }
        let message =
            isPath
            ? "no \(what) \"\(name)\" (no such file: \(candidates[0]))"
            : "no \(what) \"\(name)\" \(available(in: folders, plural, instead: name))"
        problems.add(ConfigError(file: "", line: 0, field: nil, message: message))
        return nil
    }

    /// "(did you mean "simulator"? profiles: raspberry-pi-4, simulator)": the `.toml` files of
    /// `folders` by name; or where none were found.
    private static func available(in folders: [String], _ plural: String, instead name: String) -> String {
        var names: [String] = []
        for folder in folders {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            for file in files where file.hasSuffix(".toml") {
                let stem = String(file.dropLast(".toml".count))
                if !names.contains(stem) { names.append(stem) }
            }
        }
        guard !names.isEmpty else { return "(no \(plural) in: \(folders.joined(separator: ", ")))" }
        return ConfigError.allowed(plural, names.sorted(), instead: name)
    }
}

extension VanConfig {
    /// Reads and checks the config file at `path`, finding profiles and models in the standard
    /// places (or `directories`).
    public static func load(path: String, directories: [String]? = nil) throws(ConfigError) -> VanConfig {
        var problems = ConfigProblems()
        let van = load(path: path, directories: directories, problems: &problems)
        return try problems.value(van, file: path)
    }

    /// Like `load(path:directories:)`, recording every error of the config, its profile and its
    /// device models in `problems` (`check-config`'s way); the config when there was none.
    public static func load(path: String, directories: [String]? = nil, problems: inout ConfigProblems) -> VanConfig? {
        guard let data = FileManager.default.contents(atPath: path) else {
            problems.add(
                ConfigError(
                    file: path, line: 0, field: nil,
                    message: "cannot read the file (does it exist, and is it readable?)"))
            return nil
        }
        guard let text = String(data: data, encoding: .utf8) else {
            problems.add(ConfigError(file: path, line: 1, field: nil, message: "not UTF-8 text"))
            return nil
        }
        let base = folder(of: path)
        let catalog = Catalog.files(in: directories ?? Catalog.standardDirectories, base: base.isEmpty ? "." : base)
        return parse(text, file: path, catalog: catalog, problems: &problems)
    }
}

/// The folder of a file's path: "" for a bare name, "/" for one at the root.
func folder(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "" }
    if slash == trimmed.startIndex { return "/" }
    return String(trimmed[..<slash])
}

import Detection
import Foundation

extension VanConfig.Catalog {
    /// Profiles as `DIR/NAME.toml` and device models as `DIR/devices/MODEL.toml`, from the first of
    /// `directories` that has them; a name with a "/" or ending in ".toml" is a path of its own
    /// (relative to `base`, the config file's folder).
    public static func files(in directories: [String], base: String = ".") -> VanConfig.Catalog {
        VanConfig.Catalog(
            profile: { name throws(ConfigError) in
                let (text, file) = try find(name, in: directories, subfolder: nil, base: base, what: "hardware profile")
                return try HardwareProfile.parse(text, file: file)
            },
            model: { name throws(ConfigError) in
                let (text, file) = try find(
                    name, in: directories, subfolder: "devices", base: base, what: "device model")
                return try DeviceModel.parse(text, file: file)
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

    private static func find(
        _ name: String, in directories: [String], subfolder: String?, base: String, what: String
    ) throws(ConfigError) -> (String, String) {
        var candidates: [String] = []
        if name.contains("/") || name.hasSuffix(".toml") {
            candidates = [name.hasPrefix("/") ? name : "\(base)/\(name)"]
        } else {
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw ConfigError(file: "", line: 0, field: nil, message: "\"\(name)\" is not a \(what) name")
            }
            candidates = directories.map { [$0, subfolder, "\(name).toml"].compactMap { $0 }.joined(separator: "/") }
        }
        for path in candidates {
            if let data = FileManager.default.contents(atPath: path) {
                guard let text = String(data: data, encoding: .utf8) else {
                    throw ConfigError(file: path, line: 1, field: nil, message: "not UTF-8 text")
                }
                return (text, path)
            }
        }
        throw ConfigError(
            file: "", line: 0, field: nil,
            message: "no \(what) \"\(name)\" (looked in: \(candidates.joined(separator: ", ")))")
    }
}

extension VanConfig {
    /// Reads and checks the config file at `path`, finding profiles and models in the standard
    /// places (or `directories`).
    public static func load(path: String, directories: [String]? = nil) throws(ConfigError) -> VanConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(
                file: path, line: 0, field: nil, message: "cannot read the file (does it exist, and is it readable?)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: 1, field: nil, message: "not UTF-8 text")
        }
        let base = (path as NSString).deletingLastPathComponent
        let catalog = Catalog.files(in: directories ?? Catalog.standardDirectories, base: base.isEmpty ? "." : base)
        return try parse(text, file: path, catalog: catalog)
    }
}

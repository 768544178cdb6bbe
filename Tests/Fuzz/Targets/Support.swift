import Detection
import Foundation
import Hardware

/// The repository's hardware profiles and device models, read once when a fuzz target starts, so
/// that every input runs against the same in-memory files without touching the disk again.
/// `HEADCOUNT_FUZZ_ROOT` names the checkout; by default it is the one this file was built from.
enum Bundled {
    static let root: String = {
        if let root = ProcessInfo.processInfo.environment["HEADCOUNT_FUZZ_ROOT"] { return root }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
    }()

    /// Every `*.toml` of a folder of the checkout, by name without ".toml", in name order.
    static func files(in folder: String) -> [(name: String, text: String)] {
        let path = "\(root)/\(folder)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let files = names.filter { $0.hasSuffix(".toml") }.sorted().compactMap { name -> (String, String)? in
            guard let data = FileManager.default.contents(atPath: "\(path)/\(name)") else { return nil }
            return (String(name.dropLast(".toml".count)), String(decoding: data, as: UTF8.self))
        }
        if files.isEmpty {
            FileHandle.standardError.write(Data("fuzz: no TOML files in \(path) (set HEADCOUNT_FUZZ_ROOT)\n".utf8))
            exit(2)
        }
        return files
    }

    /// The bundled profiles' texts, by name.
    static let profileTexts: [String: String] = Dictionary(
        uniqueKeysWithValues: files(in: "HardwareProfiles").map { ($0.name, $0.text) })

    /// The bundled device models, decoded, in name order.
    static let models: [(name: String, model: DeviceModel)] = files(in: "HardwareProfiles/devices").compactMap {
        file in
        guard let model = try? DeviceModel.parse(file.text, file: "\(file.name).toml") else {
            FileHandle.standardError.write(Data("fuzz: the bundled device model \(file.name) does not decode\n".utf8))
            exit(2)
        }
        return (file.name, model)
    }

    /// The broken profiles and models `Tests/CheckConfig` keeps for check-config's tests, by the
    /// path its configs name them with ("profiles/bias.toml", "models/bits.toml"): a config can
    /// name them too, and their errors are theirs.
    static let brokenFiles: [String: String] = Dictionary(
        uniqueKeysWithValues: ["profiles", "models"].flatMap { folder in
            files(in: "Tests/CheckConfig/\(folder)").map { ("\(folder)/\($0.name).toml", $0.text) }
        })

    /// Profiles and models by name or by path, as `VanConfig.Catalog.files` finds them on the
    /// disk; one it does not know is an error without a line, which the config reports at its own.
    static let catalog = VanConfig.Catalog(
        profile: { name throws(ConfigError) in
            if let text = profileTexts[name] { return try HardwareProfile.parse(text, file: "\(name).toml") }
            if let text = brokenFiles[name] { return try HardwareProfile.parse(text, file: name) }
            throw ConfigError(file: "", line: 0, field: nil, message: "no hardware profile \"\(name)\"")
        },
        model: { name throws(ConfigError) in
            if let model = models.first(where: { $0.name == name })?.model { return model }
            if let text = brokenFiles[name] { return try DeviceModel.parse(text, file: name) }
            throw ConfigError(file: "", line: 0, field: nil, message: "no device model \"\(name)\"")
        })

    /// Lines of a file the catalog holds, by the name its errors give.
    static func lineCount(of file: String) -> Int? {
        let text = brokenFiles[file] ?? profileTexts[String(file.dropLast(".toml".count))]
        return text.map { $0.utf8.count(where: { $0 == UInt8(ascii: "\n") }) + 1 }
    }
}

/// Stops the fuzzer on a broken promise, naming it: libFuzzer saves the input as a crash.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        FileHandle.standardError.write(Data("fuzz: broken promise: \(message())\n".utf8))
        abort()
    }
}

/// Lines in the fuzzer's bytes, as an error may number them (the last one need not end).
func lineCount(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int {
    UnsafeBufferPointer(start: data, count: size).count(where: { $0 == UInt8(ascii: "\n") }) + 1
}

/// The fuzzer's bytes as text, as a file's bytes become a `String` (invalid UTF-8 repaired).
func text(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// What `ModbusBus` relies on when it polls a model: each read within the protocol's limit, and
/// every point inside exactly one read of its own function.
func checkReads(of model: DeviceModel) {
    var seen = [Int](repeating: 0, count: model.points.count)
    for read in model.reads {
        require(read.count >= 1 && read.count <= read.function.maximumCount, "read of \(read.count)")
        require(read.address >= 0 && read.address + read.count <= 65536, "read past 65535")
        for index in read.points {
            let point = model.points[index]
            require(point.function == read.function, "\(point.name) read with function \(read.function)")
            require(
                point.address >= read.address && point.address + point.span <= read.address + read.count,
                "\(point.name) at \(point.address) outside the read at \(read.address) of \(read.count)")
            seen[index] += 1
        }
    }
    require(seen.allSatisfy { $0 == 1 }, "points not read exactly once: \(seen)")
}

import Hardware

/// `profile`: a board's hardware profile (`HardwareProfiles/NAME.toml`). Bad input must come back
/// as an error naming the file; a profile that decodes has what the daemon counts on: the built-in
/// inputs, a buzzer and a horn, and no line used twice.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProfile(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let profile: HardwareProfile
    do {
        profile = try HardwareProfile.parse(text(data, size), file: "fuzz.toml")
    } catch {
        require(
            error.file == "fuzz.toml" && error.line >= 1 && error.line <= lineCount(data, size),
            "a profile error without its file and line: \(error)")
        _ = error.description
        return 0
    }
    for role in HardwareProfile.builtInInputRoles {
        require(profile.input(role) != nil, "no input \(role)")
    }
    require(profile.output("buzzer") != nil && profile.output("horn") != nil, "no buzzer or horn")
    let lines = profile.inputs.map(\.line) + profile.outputs.map(\.line)
    require(Set(lines).count == lines.count, "a line used twice: \(lines)")
    require(profile.inputs.allSatisfy { (0...1000).contains($0.debounceMs) }, "debounce out of bounds")
    return 0
}

import Detection
import Hardware

/// `config`: the van's `headcount.toml`, decoded against the repository's profiles and device
/// models (and check-config's broken ones) held in memory. Bad input must come back as an error
/// naming a file and a line in it; a config that decodes has an evidence sensor, sources that
/// exist, and makes a detection engine.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let van: VanConfig
    do {
        van = try VanConfig.parse(text(data, size), file: "van.toml", catalog: Bundled.catalog)
    } catch {
        // The config's own errors, or those of a broken profile or model it names, in that file.
        let lines = error.file == "van.toml" ? lineCount(data, size) : Bundled.lineCount(of: error.file)
        require(error.line >= 1 && error.line <= lines ?? 0, "a config error without its file and line: \(error)")
        _ = error.description
        return 0
    }
    require(van.sensors.contains { $0.spec.kind.isEvidence }, "no evidence sensor")
    for sensor in van.sensors {
        switch sensor.source {
        case .gpio(let role):
            require(van.profile.input(role) != nil, "\(sensor.spec.id): no input \(role)")
        case .modbus(let device, let point):
            let model = van.buses.flatMap(\.devices).first { $0.name == device }?.model
            require(model?.point(named: point) != nil, "\(sensor.spec.id): no point \(device).\(point)")
        }
    }
    for bus in van.buses {
        require(!bus.devices.isEmpty, "bus \(bus.name) without devices")
        require(Set(bus.devices.map(\.unit)).count == bus.devices.count, "bus \(bus.name): a unit used twice")
    }
    let machine = DetectionMachine(sensors: van.sensors.map(\.spec), policy: van.policy)
    for sensor in van.sensors {
        require(machine.index(of: sensor.spec.id) != nil, "the engine has no \(sensor.spec.id)")
    }
    return 0
}

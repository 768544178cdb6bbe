// Public ways to build a bus config in code, for modules that drive a `ModbusBus` without a van
// config file (tests, headcount-modbus-bench, diagnose). VanConfig.swift's structs keep their
// internal memberwise initializers; these take the name unlabelled so as not to collide with them.

extension DeviceConfig {
    /// A device on a bus.
    public init(_ name: String, model: DeviceModel, unit: Int, periodMs: Int, timeoutMs: Int) {
        self.init(name: name, model: model, unit: unit, periodMs: periodMs, timeoutMs: timeoutMs)
    }
}

extension BusConfig {
    /// A bus and its devices.
    public init(_ name: String, transport: Transport, devices: [DeviceConfig]) {
        self.init(name: name, transport: transport, devices: devices)
    }
}

import Detection

/// One Modbus bus: RS-485 through a serial device, or TCP through a gateway.
public struct BusConfig: Equatable, Sendable {
    public enum Transport: Equatable, Sendable {
        case rtu(device: String, baud: Int, parity: String, dataBits: Int, stopBits: Int, rs485: Bool)
        case tcp(host: String, port: Int)
    }

    public var name: String
    public var transport: Transport
    public var devices: [DeviceConfig]

    public static let baudRates = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200]
    public static let parities = ["none", "even", "odd"]
}

/// One Modbus device on a bus.
public struct DeviceConfig: Equatable, Sendable {
    public var name: String
    public var model: DeviceModel
    public var unit: Int
    /// How often the device is polled.
    public var periodMs: Int
    /// How long one answer may take before the poll counts as failed.
    public var timeoutMs: Int
}

/// Where a sensor's readings come from.
public enum SensorSource: Equatable, Sendable {
    /// A GPIO input of the board, by its role in the profile.
    case gpio(role: String)
    /// A point of a Modbus device.
    case modbus(device: String, point: String)
}

/// One sensor this van has.
public struct SensorConfig: Equatable, Sendable {
    public var spec: SensorSpec
    public var source: SensorSource
}

/// How the van reaches the center (checked in full by the uplink).
public struct CenterConfig: Equatable, Sendable {
    public var url: String
    public var clientCertificate: String
    public var clientKey: String
    public var caFile: String?
    public var pinnedKey: String?
}

/// The van: `/etc/headcount/headcount.toml`, decoded and checked against its profile and device
/// models. Every error names the file, the line and the field.
public struct VanConfig: Equatable, Sendable {
    public var vehicleId: String
    public var profile: HardwareProfile
    public var center: CenterConfig?
    public var policy: Policy
    public var sensors: [SensorConfig]
    public var buses: [BusConfig]
    public var stateDirectory: String

    /// Finds profiles and device models by name.
    public struct Catalog: Sendable {
        public var profile: @Sendable (String) throws(ConfigError) -> HardwareProfile
        public var model: @Sendable (String) throws(ConfigError) -> DeviceModel

        public init(
            profile: @escaping @Sendable (String) throws(ConfigError) -> HardwareProfile,
            model: @escaping @Sendable (String) throws(ConfigError) -> DeviceModel
        ) {
            self.profile = profile
            self.model = model
        }
    }

    public static func parse(_ text: String, file: String, catalog: Catalog) throws(ConfigError) -> VanConfig {
        let root = try TableReader.parse(text, file: file)
        try root.rejectUnknownKeys(["vehicle_id", "profile", "state_directory", "center", "policy", "sensor", "modbus"])
        let vehicleId = try root.string("vehicle_id")
        guard vehicleId.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), vehicleId.count <= 64 else {
            throw root.error("vehicle_id", "use letters, digits, '-', '_' or '.' (at most 64)")
        }
        let profileName = try root.string("profile")
        let profile: HardwareProfile
        do {
            profile = try catalog.profile(profileName)
        } catch {
            // The profile's own errors name its file; one that cannot be found is this file's.
            if error.line == 0 { throw root.error("profile", error.message) }
            throw error
        }
        var policy = Policy()
        try policy.apply(policyTableOf: root.table, file: file)

        var center: CenterConfig?
        if let table = try root.table("center") {
            try table.rejectUnknownKeys(["url", "client_cert", "client_key", "ca_file", "pinned_key"])
            let url = try table.string("url")
            guard url.lowercased().hasPrefix("https://") else {
                throw table.error("url", "must be https:// (plain http is refused)")
            }
            let caFile = try table.string("ca_file", default: nil)
            let pinnedKey = try table.string("pinned_key", default: nil)
            if caFile == nil && pinnedKey == nil {
                throw table.error(nil, "needs ca_file or pinned_key to check the center's certificate")
            }
            if let pinnedKey, !pinnedKey.hasPrefix("sha256//") {
                throw table.error("pinned_key", "expected sha256//BASE64 (curl's pinned public key form)")
            }
            center = CenterConfig(
                url: url, clientCertificate: try table.string("client_cert"), clientKey: try table.string("client_key"),
                caFile: caFile, pinnedKey: pinnedKey)
        }

        var buses: [BusConfig] = []
        var deviceNames: [String: DeviceConfig] = [:]
        for bus in try root.tables("modbus") {
            try bus.rejectUnknownKeys([
                "name", "device", "baud", "parity", "data_bits", "stop_bits", "rs485", "host", "port", "devices",
            ])
            let name = try bus.string("name")
            if buses.contains(where: { $0.name == name }) {
                throw bus.error("name", "bus \"\(name)\" is defined twice")
            }
            let transport: BusConfig.Transport
            switch (bus.has("device"), bus.has("host")) {
            case (true, false):
                let device = try bus.string("device")
                guard device.hasPrefix("/") else {
                    throw bus.error("device", "expected a serial device path such as /dev/ttyUSB0")
                }
                transport = .rtu(
                    device: device, baud: try bus.integer("baud", oneOf: BusConfig.baudRates, default: 9600),
                    parity: try bus.choice("parity", BusConfig.parities, default: "none"),
                    dataBits: try bus.integer("data_bits", in: 7...8, default: 8),
                    stopBits: try bus.integer("stop_bits", in: 1...2, default: 1),
                    rs485: try bus.bool("rs485", default: false))
            case (false, true):
                transport = .tcp(
                    host: try bus.string("host"), port: try bus.integer("port", in: 1...65535, default: 502))
            default:
                throw bus.error(nil, "a bus has either device = \"/dev/tty…\" (RTU) or host = \"…\" (TCP)")
            }
            var devices: [DeviceConfig] = []
            for entry in try bus.tables("devices") {
                try entry.rejectUnknownKeys(["name", "model", "unit", "period_ms", "timeout_ms"])
                let deviceName = try entry.string("name")
                if deviceNames[deviceName] != nil {
                    throw entry.error("name", "device \"\(deviceName)\" is defined twice")
                }
                let modelName = try entry.string("model")
                let model: DeviceModel
                do {
                    model = try catalog.model(modelName)
                } catch {
                    if error.line == 0 { throw entry.error("model", error.message) }
                    throw error
                }
                let unit = try entry.integer("unit", in: 1...247, default: model.defaultUnit)
                if devices.contains(where: { $0.unit == unit }) {
                    throw entry.error("unit", "unit \(unit) is already used on bus \"\(name)\"")
                }
                let device = DeviceConfig(
                    name: deviceName, model: model, unit: unit,
                    periodMs: try entry.integer("period_ms", in: 50...60000, default: 250),
                    timeoutMs: try entry.integer("timeout_ms", in: 20...5000, default: 200))
                if device.timeoutMs >= device.periodMs * 4 {
                    throw entry.error(
                        "timeout_ms", "\(device.timeoutMs) ms is too long for a poll every \(device.periodMs) ms")
                }
                devices.append(device)
                deviceNames[deviceName] = device
            }
            if devices.isEmpty { throw bus.error("devices", "a bus needs at least one [[modbus.devices]]") }
            buses.append(BusConfig(name: name, transport: transport, devices: devices))
        }

        var sensors: [SensorConfig] = []
        var usedSources: [SensorSource: String] = [:]
        for entry in try root.tables("sensor") {
            try entry.rejectUnknownKeys(["id", "kind", "gpio", "modbus"])
            let id = try entry.string("id")
            if sensors.contains(where: { $0.spec.id == id }) || SensorSpec.builtIns.contains(where: { $0.id == id }) {
                throw entry.error("id", "sensor \"\(id)\" is defined twice (ignition, door and button are built in)")
            }
            let kinds: [SensorKind] = [.seat, .presence, .motion, .temperature, .co2, .door]
            let kind = SensorKind(rawValue: try entry.choice("kind", kinds.map(\.rawValue))) ?? .seat
            let source: SensorSource
            switch (entry.has("gpio"), entry.has("modbus")) {
            case (true, false):
                let role = try entry.string("gpio")
                guard profile.input(role) != nil else {
                    let known = profile.inputs.map(\.role).filter { !HardwareProfile.builtInInputRoles.contains($0) }
                    throw entry.error(
                        "gpio",
                        "profile \(profile.board) has no input \"\(role)\" (its inputs: \(known.joined(separator: ", ")))"
                    )
                }
                guard [.seat, .presence, .motion, .door].contains(kind) else {
                    throw entry.error("kind", "a \(kind.rawValue) sensor cannot be a GPIO input")
                }
                source = .gpio(role: role)
            case (false, true):
                let reference = try entry.string("modbus")
                let parts = reference.split(separator: ".", maxSplits: 1).map(String.init)
                guard parts.count == 2, let device = deviceNames[parts[0]] else {
                    throw entry.error(
                        "modbus",
                        "\"\(reference)\" is not DEVICE.POINT of a [[modbus.devices]] (devices: \(deviceNames.keys.sorted().joined(separator: ", ")))"
                    )
                }
                guard let point = device.model.point(named: parts[1]) else {
                    throw entry.error(
                        "modbus",
                        "model \(device.model.model) has no point \"\(parts[1])\" (points: \(device.model.points.map(\.name).joined(separator: ", ")))"
                    )
                }
                guard point.feeds == kind || (kind == .seat && point.feeds == nil && point.type == .bit) else {
                    throw entry.error(
                        "kind",
                        "\(reference) feeds \(point.feeds?.rawValue ?? "nothing"), not a \(kind.rawValue) sensor")
                }
                source = .modbus(device: parts[0], point: parts[1])
            default:
                throw entry.error(nil, "a sensor has either gpio = \"ROLE\" or modbus = \"DEVICE.POINT\"")
            }
            if let other = usedSources[source] {
                throw entry.error(entry.has("gpio") ? "gpio" : "modbus", "already the source of sensor \"\(other)\"")
            }
            usedSources[source] = id
            sensors.append(SensorConfig(spec: SensorSpec(id: id, kind: kind), source: source))
        }
        if !sensors.contains(where: { $0.spec.kind.isEvidence }) {
            throw root.error("sensor", "a van needs at least one seat, presence or motion [[sensor]]")
        }
        return VanConfig(
            vehicleId: vehicleId, profile: profile, center: center, policy: policy, sensors: sensors, buses: buses,
            stateDirectory: try root.string("state_directory", default: "/var/lib/headcount") ?? "/var/lib/headcount")
    }
}

extension SensorSource: Hashable {}

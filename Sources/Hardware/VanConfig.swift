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
        /// Looks a profile up by name, recording the errors of its file in `problems` (an error on
        /// line 0 says why it cannot be found: the van config's field is at fault). Returns the
        /// profile as far as it could be read.
        public var findProfile: @Sendable (String, inout ConfigProblems) -> HardwareProfile?
        /// The same for device models.
        public var findModel: @Sendable (String, inout ConfigProblems) -> DeviceModel?

        public init(
            findProfile: @escaping @Sendable (String, inout ConfigProblems) -> HardwareProfile?,
            findModel: @escaping @Sendable (String, inout ConfigProblems) -> DeviceModel?
        ) {
            self.findProfile = findProfile
            self.findModel = findModel
        }

        /// A catalog whose lookups stop at the first error of a file.
        public init(
            profile: @escaping @Sendable (String) throws(ConfigError) -> HardwareProfile,
            model: @escaping @Sendable (String) throws(ConfigError) -> DeviceModel
        ) {
            self.findProfile = Self.recording(profile)
            self.findModel = Self.recording(model)
        }

        /// The profile called `name`, or the first error of its file.
        public var profile: @Sendable (String) throws(ConfigError) -> HardwareProfile {
            get { Self.throwing(findProfile, what: "hardware profile") }
            set { findProfile = Self.recording(newValue) }
        }

        /// The device model called `name`, or the first error of its file.
        public var model: @Sendable (String) throws(ConfigError) -> DeviceModel {
            get { Self.throwing(findModel, what: "device model") }
            set { findModel = Self.recording(newValue) }
        }

        private static func recording<T>(
            _ find: @escaping @Sendable (String) throws(ConfigError) -> T
        ) -> @Sendable (String, inout ConfigProblems) -> T? {
            { name, problems in
                do throws(ConfigError) {
                    return try find(name)
                } catch {
                    problems.add(error)
                    return nil
                }
            }
        }

        private static func throwing<T>(
            _ find: @escaping @Sendable (String, inout ConfigProblems) -> T?, what: String
        ) -> @Sendable (String) throws(ConfigError) -> T {
            { name throws(ConfigError) in
                var problems = ConfigProblems()
                let found = find(name, &problems)
                if let first = problems.errors.first { throw first }
                guard let found else {
                    throw ConfigError(file: "", line: 0, field: nil, message: "no \(what) \"\(name)\"")
                }
                return found
            }
        }
    }

    /// Decodes and checks a van's config (the daemon's way): the first error found, naming its
    /// file, line and field.
    public static func parse(_ text: String, file: String, catalog: Catalog) throws(ConfigError) -> VanConfig {
        var problems = ConfigProblems()
        let van = parse(text, file: file, catalog: catalog, problems: &problems)
        return try problems.value(van, file: file)
    }

    /// Checks a van's config and the profile and device models it names, recording every error
    /// in `problems` (`check-config`'s way); the config when there was none.
    public static func parse(_ text: String, file: String, catalog: Catalog, problems: inout ConfigProblems)
        -> VanConfig?
    {
        let before = problems.count
        var checker = Checker(file: file, catalog: catalog)
        let van = checker.check(text)
        problems.add(checker.problems.errors)
        return problems.count == before ? van : nil
    }
}

extension SensorSource: Hashable {}

/// One pass over a van config: reads what it can, records every error, and goes on wherever the
/// rest can still be checked.
private struct Checker {
    let file: String
    let catalog: VanConfig.Catalog
    var problems = ConfigProblems()

    /// Device names of the config, with their model as far as it could be read and whether that
    /// model is free of errors (only then are a sensor's kind and the point's feeds compared).
    var devices: [String: (model: DeviceModel?, sound: Bool)] = [:]
    /// Models already looked up: a model used by several devices is read, and reported, once.
    var models: [String: (model: DeviceModel?, sound: Bool, missing: String?)] = [:]

    init(file: String, catalog: VanConfig.Catalog) {
        self.file = file
        self.catalog = catalog
    }

    mutating func check(_ text: String) -> VanConfig? {
        guard let root = problems.check(try TableReader.parse(text, file: file)) else { return nil }
        problems.add(
            root.unknownKeys(["vehicle_id", "profile", "state_directory", "center", "policy", "sensor", "modbus"]))
        let vehicleId = problems.check(try root.string("vehicle_id"))
        if let vehicleId,
            !vehicleId.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) || vehicleId.count > 64
        {
            problems.add(root.error("vehicle_id", "use letters, digits, '-', '_' or '.' (at most 64)"))
        }
        var profile: HardwareProfile?
        if let name = problems.check(try root.string("profile")) {
            var found = ConfigProblems()
            profile = catalog.findProfile(name, &found)
            // The profile's own errors name its file; one that cannot be found is this file's.
            for error in found.errors { problems.add(error.line == 0 ? root.error("profile", error.message) : error) }
        }
        var policy = Policy()
        policy.apply(policyTableOf: root.table, file: file, problems: &problems)
        let center = self.center(root)
        let buses = self.buses(root)
        let sensors = self.sensors(root, profile: profile)
        var stateDirectory = "/var/lib/headcount"
        if let directory = problems.check(try root.string("state_directory", default: stateDirectory)) ?? nil {
            if directory.hasPrefix("/") {
                stateDirectory = directory
            } else {
                problems.add(root.error("state_directory", "expected an absolute path such as /var/lib/headcount"))
            }
        }
        guard let vehicleId, let profile, problems.isEmpty else { return nil }
        return VanConfig(
            vehicleId: vehicleId, profile: profile, center: center, policy: policy, sensors: sensors, buses: buses,
            stateDirectory: stateDirectory)
    }

    mutating func center(_ root: TableReader) -> CenterConfig? {
        guard let table = problems.check(try root.table("center")) ?? nil else { return nil }
        problems.add(table.unknownKeys(["url", "client_cert", "client_key", "ca_file", "pinned_key"]))
        let url = problems.check(try table.string("url"))
        if let url {
            let lowered = url.lowercased()
            let host = lowered.dropFirst("https://".count).prefix { !"/?#".contains($0) }
            if !lowered.hasPrefix("https://") {
                problems.add(table.error("url", "must be https:// (plain http is refused)"))
            } else if host.isEmpty {
                problems.add(table.error("url", "has no host: expected https://HOST/PATH"))
            } else if !url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) {
                problems.add(
                    table.error("url", "must not contain spaces or non-ASCII characters (percent-encode them)"))
            }
        }
        let caFile = problems.check(try table.string("ca_file", default: nil)) ?? nil
        let pinnedKey = problems.check(try table.string("pinned_key", default: nil)) ?? nil
        if !table.has("ca_file") && !table.has("pinned_key") {
            problems.add(table.error(nil, "needs ca_file or pinned_key to check the center's certificate"))
        }
        if let pinnedKey, !Self.isPin(pinnedKey) {
            problems.add(
                table.error(
                    "pinned_key",
                    "expected sha256//BASE64 (curl's pinned public key form: 44 base64 characters, several joined by \";\")"
                ))
        }
        let certificate = problems.check(try table.string("client_cert"))
        let key = problems.check(try table.string("client_key"))
        guard let url, let certificate, let key else { return nil }
        return CenterConfig(
            url: url, clientCertificate: certificate, clientKey: key, caFile: caFile, pinnedKey: pinnedKey)
    }

    /// `sha256//` and the base64 of 32 bytes, possibly several joined by ";" (what curl accepts).
    static func isPin(_ pin: String) -> Bool {
        let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
        return pin.split(separator: ";", omittingEmptySubsequences: false).allSatisfy { part in
            part.hasPrefix("sha256//") && part.count == 8 + 44 && part.dropFirst(8).allSatisfy(base64.contains)
        }
    }

    /// The model called `name`, whether it is free of errors; its file's errors are reported the
    /// first time, and that it cannot be found at every device naming it.
    mutating func model(_ name: String, for entry: TableReader) -> (model: DeviceModel?, sound: Bool) {
        if let known = models[name] {
            if let missing = known.missing { problems.add(entry.error("model", missing)) }
            return (known.model, known.sound)
        }
        var found = ConfigProblems()
        let model = catalog.findModel(name, &found)
        var missing: String?
        for error in found.errors {
            if error.line == 0 {
                missing = missing ?? error.message
                problems.add(entry.error("model", error.message))
            } else {
                problems.add(error)
            }
        }
        models[name] = (model, found.isEmpty && model != nil, missing)
        return (model, found.isEmpty && model != nil)
    }

    mutating func buses(_ root: TableReader) -> [BusConfig] {
        var buses: [BusConfig] = []
        var names: Set<String> = []
        for bus in problems.check(try root.tables("modbus")) ?? [] {
            problems.add(
                bus.unknownKeys([
                    "name", "device", "baud", "parity", "data_bits", "stop_bits", "rs485", "host", "port", "devices",
                ]))
            let name = problems.check(try bus.string("name"))
            if let name, !names.insert(name).inserted {
                problems.add(bus.error("name", "bus \"\(name)\" is defined twice"))
            }
            let transport = self.transport(bus)
            var devices: [DeviceConfig] = []
            var units: [Int: String] = [:]
            let entries = problems.check(try bus.tables("devices"))
            for entry in entries ?? [] {
                problems.add(entry.unknownKeys(["name", "model", "unit", "period_ms", "timeout_ms"]))
                let deviceName = problems.check(try entry.string("name"))
                if let deviceName, self.devices[deviceName] != nil {
                    problems.add(entry.error("name", "device \"\(deviceName)\" is defined twice"))
                }
                let modelName = problems.check(try entry.string("model"))
                let (model, sound) = modelName.map { self.model($0, for: entry) } ?? (nil, false)
                var unit: Int?
                if entry.has("unit") {
                    unit = problems.check(try entry.integer("unit", in: 1...247))
                } else if let model, sound {
                    // Only a model read without error says whether it has a default unit.
                    unit = problems.check(try entry.integer("unit", in: 1...247, default: model.defaultUnit))
                }
                if let unit {
                    if let other = units[unit] {
                        problems.add(
                            entry.error(
                                "unit", "unit \(unit) is already used on bus \"\(name ?? bus.path)\" (by \(other))"))
                    } else {
                        units[unit] = deviceName ?? entry.path
                    }
                }
                let period = problems.check(try entry.integer("period_ms", in: 50...60000, default: 250))
                let timeout = problems.check(try entry.integer("timeout_ms", in: 20...5000, default: 200))
                if let period, let timeout, timeout >= period * 4 {
                    problems.add(
                        entry.error(
                            "timeout_ms",
                            "\(timeout) ms is too long for a poll every \(period) ms (allowed: under \(period * 4) ms)")
                    )
                }
                if let deviceName, self.devices[deviceName] == nil { self.devices[deviceName] = (model, sound) }
                if let deviceName, let model, sound, let unit, let period, let timeout {
                    devices.append(
                        DeviceConfig(name: deviceName, model: model, unit: unit, periodMs: period, timeoutMs: timeout))
                }
            }
            if let entries, entries.isEmpty {
                problems.add(bus.error("devices", "a bus needs at least one [[modbus.devices]]"))
            }
            if let name, let transport { buses.append(BusConfig(name: name, transport: transport, devices: devices)) }
        }
        return buses
    }

    mutating func transport(_ bus: TableReader) -> BusConfig.Transport? {
        let serialKeys = ["baud", "parity", "data_bits", "stop_bits", "rs485"]
        switch (bus.has("device"), bus.has("host")) {
        case (true, false):
            let device = problems.check(try bus.string("device"))
            if let device, !device.hasPrefix("/") {
                problems.add(bus.error("device", "expected a serial device path such as /dev/ttyUSB0"))
            }
            if bus.has("port") {
                problems.add(bus.error("port", "an RTU bus (device = …) has no port; a TCP gateway has host and port"))
            }
            let baud = problems.check(try bus.integer("baud", oneOf: BusConfig.baudRates, default: 9600))
            let parity = problems.check(try bus.choice("parity", BusConfig.parities, default: "none"))
            let dataBits = problems.check(try bus.integer("data_bits", in: 7...8, default: 8))
            let stopBits = problems.check(try bus.integer("stop_bits", in: 1...2, default: 1))
            let rs485 = problems.check(try bus.bool("rs485", default: false))
            guard let device, device.hasPrefix("/"), let baud, let parity, let dataBits, let stopBits, let rs485 else {
                return nil
            }
            return .rtu(
                device: device, baud: baud, parity: parity, dataBits: dataBits, stopBits: stopBits, rs485: rs485)
        case (false, true):
            for key in serialKeys where bus.has(key) {
                problems.add(
                    bus.error(
                        key, "a TCP bus (host = …) has no \(key): the gateway's serial side is set on the gateway"))
            }
            let host = problems.check(try bus.string("host"))
            let port = problems.check(try bus.integer("port", in: 1...65535, default: 502))
            guard let host, let port else { return nil }
            return .tcp(host: host, port: port)
        case (true, true):
            problems.add(
                bus.error(
                    "host", "a bus has either device = \"/dev/tty…\" (RTU) or host = \"…\" (TCP), not both"))
            return nil
        case (false, false):
            problems.add(bus.error(nil, "a bus has either device = \"/dev/tty…\" (RTU) or host = \"…\" (TCP)"))
            return nil
        }
    }

    mutating func sensors(_ root: TableReader, profile: HardwareProfile?) -> [SensorConfig] {
        var sensors: [SensorConfig] = []
        var ids: [String: Int] = [:]
        var usedSources: [SensorSource: String] = [:]
        // Whether a sensor is, or may be (its kind is wrong), evidence of a child aboard.
        var evidence = false
        let entries = problems.check(try root.tables("sensor"))
        for entry in entries ?? [] {
            problems.add(entry.unknownKeys(["id", "kind", "gpio", "modbus"]))
            let id = problems.check(try entry.string("id"))
            if let id {
                if SensorSpec.builtIns.contains(where: { $0.id == id }) {
                    problems.add(
                        entry.error("id", "sensor \"\(id)\" is built in (ignition, door and button need no [[sensor]])")
                    )
                } else if let line = ids[id] {
                    problems.add(entry.error("id", "sensor \"\(id)\" is defined twice (first on line \(line))"))
                } else {
                    ids[id] = entry.line(of: "id")
                }
            }
            let kinds: [SensorKind] = [.seat, .presence, .motion, .temperature, .co2, .door]
            let kind = problems.check(try entry.choice("kind", kinds.map(\.rawValue))).flatMap(
                SensorKind.init(rawValue:))
            if kind?.isEvidence ?? true { evidence = true }
            var source: SensorSource?
            switch (entry.has("gpio"), entry.has("modbus")) {
            case (true, false):
                source = gpioSource(entry, kind: kind, profile: profile)
            case (false, true):
                source = modbusSource(entry, kind: kind)
            case (true, true):
                problems.add(
                    entry.error(
                        "modbus", "a sensor has either gpio = \"ROLE\" or modbus = \"DEVICE.POINT\", not both"))
            case (false, false):
                problems.add(entry.error(nil, "a sensor has either gpio = \"ROLE\" or modbus = \"DEVICE.POINT\""))
            }
            if let source {
                if let other = usedSources[source] {
                    problems.add(
                        entry.error(entry.has("gpio") ? "gpio" : "modbus", "already the source of sensor \"\(other)\""))
                } else if let id {
                    usedSources[source] = id
                }
            }
            if let id, let kind, let source {
                sensors.append(SensorConfig(spec: SensorSpec(id: id, kind: kind), source: source))
            }
        }
        if entries != nil && !evidence {
            problems.add(root.error("sensor", "a van needs at least one seat, presence or motion [[sensor]]"))
        }
        return sensors
    }

    mutating func gpioSource(_ entry: TableReader, kind: SensorKind?, profile: HardwareProfile?) -> SensorSource? {
        let onGPIO: [SensorKind] = [.seat, .presence, .motion, .door]
        if let kind, !onGPIO.contains(kind) {
            problems.add(
                entry.error(
                    "kind",
                    "a \(kind.rawValue) sensor cannot be a GPIO input (on GPIO: \(onGPIO.map(\.rawValue).joined(separator: ", ")))"
                ))
        }
        guard let role = problems.check(try entry.string("gpio")) else { return nil }
        let builtIn = HardwareProfile.builtInInputRoles
        let known = profile?.inputs.map(\.role).filter { !builtIn.contains($0) } ?? []
        let board = profile.map { $0.board.isEmpty ? "the profile" : "profile \($0.board)" } ?? ""
        if builtIn.contains(role) {
            problems.add(
                entry.error(
                    "gpio",
                    "\"\(role)\" is the built-in \(role) input, watched already; a [[sensor]] takes another input "
                        + ConfigError.allowed("inputs of \(board)", known, instead: role)))
            return nil
        }
        // Without a profile the roles cannot be checked; its own error says why.
        guard let profile else { return nil }
        guard profile.input(role) != nil else {
            problems.add(
                entry.error(
                    "gpio",
                    "\(board) has no input \"\(role)\" \(ConfigError.allowed("its inputs", known, instead: role))"))
            return nil
        }
        return .gpio(role: role)
    }

    mutating func modbusSource(_ entry: TableReader, kind: SensorKind?) -> SensorSource? {
        guard let reference = problems.check(try entry.string("modbus")) else { return nil }
        let parts = reference.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2, let device = devices[parts[0]] else {
            let known = devices.keys.sorted()
            problems.add(
                entry.error(
                    "modbus",
                    "\"\(reference)\" is not DEVICE.POINT of a [[modbus.devices]] "
                        + ConfigError.allowed("devices", known, instead: parts.first ?? reference)))
            return nil
        }
        // A model that cannot be found or read has its own error; its points are not known.
        guard let model = device.model else { return nil }
        guard let point = model.point(named: parts[1]) else {
            problems.add(
                entry.error(
                    "modbus",
                    "model \(model.model) has no point \"\(parts[1])\" "
                        + ConfigError.allowed("points", model.points.map(\.name), instead: parts[1])))
            return nil
        }
        if device.sound, let kind, !(point.feeds == kind || (kind == .seat && point.feeds == nil && point.type == .bit))
        {
            problems.add(
                entry.error(
                    "kind",
                    "\(reference) feeds \(point.feeds?.rawValue ?? "nothing"), not a \(kind.rawValue) sensor"
                        + (point.feeds.map { " (it reads as kind = \"\($0.rawValue)\")" } ?? "")))
        }
        return .modbus(device: parts[0], point: parts[1])
    }
}

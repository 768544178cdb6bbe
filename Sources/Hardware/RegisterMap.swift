import Detection

/// The Modbus function that reads a point.
public enum ModbusFunction: Int, Sendable, CaseIterable {
    case coils = 1
    case discreteInputs = 2
    case holdingRegisters = 3
    case inputRegisters = 4

    /// Coils and discrete inputs are bits; the others 16-bit registers.
    public var readsBits: Bool { self == .coils || self == .discreteInputs }

    /// The most one request may read (Modbus application protocol, section 6).
    public var maximumCount: Int { readsBits ? 2000 : 125 }
}

/// How a 32-bit value is laid over two registers.
public enum WordOrder: String, Sendable {
    /// The first register holds the high word (Modbus's own big-endian habit).
    case highFirst = "high_first"
    /// The first register holds the low word (many PLCs and meters).
    case lowFirst = "low_first"
}

/// How the raw bits or registers of a point become a number.
public enum PointType: Equatable, Sendable {
    case bit
    /// One bit (0 = least significant) of a 16-bit register.
    case bitInRegister(Int)
    case u16
    case s16
    case u32(WordOrder)
    case s32(WordOrder)
    case float32(WordOrder)

    /// Registers (or bits) one value takes.
    public var width: Int {
        switch self {
        case .bit, .bitInRegister, .u16, .s16: 1
        case .u32, .s32, .float32: 2
        }
    }
}

/// One value of a device: where it is, how to decode it, and what signal it feeds.
public struct RegisterPoint: Equatable, Sendable {
    public var name: String
    public var function: ModbusFunction
    /// 0-based protocol address (the PDU address), never the 1-based "register 40001" of manuals.
    public var address: Int
    public var type: PointType
    /// value = raw × scale + offset.
    public var scale: Double
    public var offset: Double
    /// The engine signal kind this point feeds, when it feeds one.
    public var feeds: SensorKind?
    /// What a working device reports; outside it, `diagnose` warns.
    public var saneRange: ClosedRange<Double>?
    public var unit: String?

    public init(
        name: String, function: ModbusFunction, address: Int, type: PointType, scale: Double = 1, offset: Double = 0,
        feeds: SensorKind? = nil, saneRange: ClosedRange<Double>? = nil, unit: String? = nil
    ) {
        self.name = name
        self.function = function
        self.address = address
        self.type = type
        self.scale = scale
        self.offset = offset
        self.feeds = feeds
        self.saneRange = saneRange
        self.unit = unit
    }

    /// Registers or bits the point spans, from `address`.
    public var span: Int { type.width }

    /// Decodes the point from the registers starting at its address.
    public func decode(registers: ArraySlice<UInt16>) -> Double? {
        guard registers.count >= type.width, let first = registers.first else { return nil }
        let second = registers.dropFirst().first ?? 0
        let raw: Double
        switch type {
        case .bit:
            return nil
        case .bitInRegister(let bit):
            raw = (first >> UInt16(bit)) & 1 == 1 ? 1 : 0
        case .u16:
            raw = Double(first)
        case .s16:
            raw = Double(Int16(bitPattern: first))
        case .u32(let order):
            raw = Double(PointType.combine(first, second, order))
        case .s32(let order):
            raw = Double(Int32(bitPattern: PointType.combine(first, second, order)))
        case .float32(let order):
            let value = Float(bitPattern: PointType.combine(first, second, order))
            guard value.isFinite else { return nil }
            raw = Double(value)
        }
        return raw * scale + offset
    }

    /// Decodes a bit point.
    public func decode(bit: Bool) -> Double { (bit ? 1 : 0) * scale + offset }
}

extension PointType {
    static func combine(_ first: UInt16, _ second: UInt16, _ order: WordOrder) -> UInt32 {
        switch order {
        case .highFirst: UInt32(first) << 16 | UInt32(second)
        case .lowFirst: UInt32(second) << 16 | UInt32(first)
        }
    }
}

/// A Modbus device model's register map, from `HardwareProfiles/devices/MODEL.toml`.
public struct DeviceModel: Equatable, Sendable {
    public var model: String
    public var description: String
    public var points: [RegisterPoint]
    /// What the model ships with, for configs that do not say.
    public var defaultUnit: Int?
    public var defaultBaud: Int?
    public var defaultParity: String?

    public func point(named name: String) -> RegisterPoint? { points.first { $0.name == name } }

    /// The reads that cover every point: contiguous points of one function are read together.
    public var reads: [RegisterRead] {
        var reads: [RegisterRead] = []
        for function in ModbusFunction.allCases {
            let points = points.indices.filter { self.points[$0].function == function }
                .sorted { self.points[$0].address < self.points[$1].address }
            for index in points {
                let point = self.points[index]
                if var last = reads.last, last.function == function,
                    point.address <= last.address + last.count,
                    max(last.address + last.count, point.address + point.span) - last.address <= function.maximumCount
                {
                    last.count = max(last.count, point.address + point.span - last.address)
                    last.points.append(index)
                    reads[reads.count - 1] = last
                } else {
                    reads.append(
                        RegisterRead(function: function, address: point.address, count: point.span, points: [index]))
                }
            }
        }
        return reads
    }
}

/// One Modbus request of a poll and the points it answers.
public struct RegisterRead: Equatable, Sendable {
    public var function: ModbusFunction
    public var address: Int
    public var count: Int
    /// Indices into the model's points.
    public var points: [Int]

    public init(function: ModbusFunction, address: Int, count: Int, points: [Int]) {
        self.function = function
        self.address = address
        self.count = count
        self.points = points
    }
}

extension DeviceModel {
    /// Reads a model file. Every error names the file, the line and the field.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> DeviceModel {
        let root = try TableReader.parse(text, file: file)
        try root.rejectUnknownKeys(["model", "description", "defaults", "point"])
        var model = DeviceModel(
            model: try root.string("model"), description: try root.string("description", default: "") ?? "",
            points: [])
        if let defaults = try root.table("defaults") {
            try defaults.rejectUnknownKeys(["unit", "baud", "parity"])
            model.defaultUnit = defaults.has("unit") ? try defaults.integer("unit", in: 1...247) : nil
            model.defaultBaud =
                defaults.has("baud") ? try defaults.integer("baud", oneOf: BusConfig.baudRates, default: 9600) : nil
            model.defaultParity = defaults.has("parity") ? try defaults.choice("parity", BusConfig.parities) : nil
        }
        let entries = try root.tables("point")
        guard !entries.isEmpty else { throw root.error(nil, "a device model needs at least one [[point]]") }
        for entry in entries {
            try entry.rejectUnknownKeys([
                "name", "function", "address", "count", "type", "bit", "word_order", "scale", "offset", "feeds",
                "range", "unit",
            ])
            let name = try entry.string("name")
            let functionCode = try entry.integer("function", in: 1...4)
            guard let function = ModbusFunction(rawValue: functionCode) else {
                throw entry.error("function", "\(functionCode) is not 1, 2, 3 or 4")
            }
            let address = try entry.integer("address", in: 0...65535)
            let count = try entry.integer("count", in: 1...2000, default: 1)
            let typeName = try entry.choice(
                "type", ["bit", "bit-in-register", "u16", "s16", "u32", "s32", "float32"],
                default: function.readsBits ? "bit" : "u16")
            let order =
                WordOrder(rawValue: try entry.choice("word_order", ["high_first", "low_first"], default: "high_first"))
                ?? .highFirst
            let firstBit = try entry.integer("bit", in: 0...15, default: 0)
            if entry.has("bit") && typeName != "bit-in-register" {
                throw entry.error("bit", "only a bit-in-register point has a bit")
            }
            if function.readsBits != (typeName == "bit") {
                throw entry.error(
                    "type",
                    function.readsBits
                        ? "function \(functionCode) reads bits: the type must be bit"
                        : "function \(functionCode) reads registers: \"bit\" needs function 1 or 2 (or use bit-in-register)"
                )
            }
            if typeName == "bit-in-register" && firstBit + count > 16 {
                throw entry.error("count", "bits \(firstBit)…\(firstBit + count - 1) do not fit in one 16-bit register")
            }
            let scale = try entry.number("scale", default: 1)
            guard scale != 0 else { throw entry.error("scale", "must not be 0") }
            let offset = try entry.number("offset", default: 0)
            var feeds: SensorKind?
            if entry.has("feeds") {
                let kinds: [SensorKind] = [.seat, .presence, .motion, .temperature, .co2, .door, .ignition, .button]
                let kindName = try entry.choice("feeds", kinds.map(\.rawValue))
                feeds = SensorKind(rawValue: kindName)
            }
            let saneRange = try entry.range("range")
            let unit = try entry.string("unit", default: nil)
            for item in 0..<count {
                let type: PointType
                var itemAddress = address
                switch typeName {
                case "bit":
                    type = .bit
                    itemAddress = address + item
                case "bit-in-register": type = .bitInRegister(firstBit + item)
                case "s16": type = .s16
                case "u32": type = .u32(order)
                case "s32": type = .s32(order)
                case "float32": type = .float32(order)
                default: type = .u16
                }
                if typeName != "bit" && typeName != "bit-in-register" { itemAddress = address + item * type.width }
                guard itemAddress + type.width - 1 <= 65535 else {
                    throw entry.error("count", "runs past address 65535")
                }
                let pointName = count == 1 ? name : "\(name)\(item + 1)"
                if model.points.contains(where: { $0.name == pointName }) {
                    throw entry.error("name", "point \"\(pointName)\" is defined twice")
                }
                model.points.append(
                    RegisterPoint(
                        name: pointName, function: function, address: itemAddress, type: type, scale: scale,
                        offset: offset, feeds: feeds, saneRange: saneRange, unit: unit))
            }
        }
        return model
    }
}

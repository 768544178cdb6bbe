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
        var problems = ConfigProblems()
        let model = parse(text, file: file, problems: &problems)
        return try problems.value(model, file: file)
    }

    /// Reads a model file, recording every error in `problems` rather than stopping at the first.
    /// Returns the model as far as it could be read (nil when the file is not TOML); after an error
    /// only its point names are to be trusted.
    public static func parse(_ text: String, file: String, problems: inout ConfigProblems) -> DeviceModel? {
        guard let root = problems.check(try TableReader.parse(text, file: file)) else { return nil }
        problems.add(root.unknownKeys(["model", "description", "defaults", "point"]))
        var model = DeviceModel(
            model: problems.check(try root.string("model")) ?? "",
            description: (problems.check(try root.string("description", default: "")) ?? nil) ?? "", points: [])
        if let defaults = problems.check(try root.table("defaults")) ?? nil {
            problems.add(defaults.unknownKeys(["unit", "baud", "parity"]))
            if defaults.has("unit") { model.defaultUnit = problems.check(try defaults.integer("unit", in: 1...247)) }
            if defaults.has("baud") {
                model.defaultBaud = problems.check(
                    try defaults.integer("baud", oneOf: BusConfig.baudRates, default: 9600))
            }
            if defaults.has("parity") {
                model.defaultParity = problems.check(try defaults.choice("parity", BusConfig.parities))
            }
        }
        guard let entries = problems.check(try root.tables("point")) else { return model }
        if entries.isEmpty { problems.add(root.error(nil, "a device model needs at least one [[point]]")) }
        for entry in entries { readPoints(entry, into: &model, problems: &problems) }
        return model
    }

    static let typeNames = ["bit", "bit-in-register", "u16", "s16", "u32", "s32", "float32"]

    /// One `[[point]]`: a point, or `count` of them named NAME1…NAMEn.
    private static func readPoints(_ entry: TableReader, into model: inout DeviceModel, problems: inout ConfigProblems)
    {
        problems.add(
            entry.unknownKeys([
                "name", "function", "address", "count", "type", "bit", "word_order", "scale", "offset", "feeds",
                "range", "unit",
            ]))
        let name = problems.check(try entry.string("name"))
        let functionCode = problems.check(try entry.integer("function", in: 1...4))
        let function = functionCode.flatMap(ModbusFunction.init(rawValue:))
        let address = problems.check(try entry.integer("address", in: 0...65535))
        let count = problems.check(try entry.integer("count", in: 1...2000, default: 1))
        // The default type follows the function; without one, only a type that is given is known.
        let typeName: String? =
            function == nil && !entry.has("type")
            ? nil
            : problems.check(try entry.choice("type", typeNames, default: function?.readsBits == true ? "bit" : "u16"))
        let order = problems.check(try entry.choice("word_order", ["high_first", "low_first"], default: "high_first"))
            .flatMap(WordOrder.init(rawValue:))
        let firstBit = problems.check(try entry.integer("bit", in: 0...15, default: 0))
        if let typeName {
            if entry.has("bit") && typeName != "bit-in-register" {
                problems.add(entry.error("bit", "only a bit-in-register point has a bit"))
            }
            if entry.has("word_order") && !["u32", "s32", "float32"].contains(typeName) {
                problems.add(
                    entry.error(
                        "word_order",
                        "only a u32, s32 or float32 point has a word_order (a \(typeName) is not two registers)"))
            }
            if let function, let functionCode, function.readsBits != (typeName == "bit") {
                problems.add(
                    entry.error(
                        "type",
                        function.readsBits
                            ? "function \(functionCode) reads bits: the type must be bit"
                            : "function \(functionCode) reads registers: \"bit\" needs function 1 or 2 (or use bit-in-register)"
                    ))
            }
            if typeName == "bit-in-register", let firstBit, let count, firstBit + count > 16 {
                problems.add(
                    entry.error("count", "bits \(firstBit)…\(firstBit + count - 1) do not fit in one 16-bit register"))
            }
        }
        let scale = problems.check(try entry.number("scale", default: 1))
        if scale == 0 { problems.add(entry.error("scale", "must not be 0 (value = raw × scale + offset)")) }
        let offset = problems.check(try entry.number("offset", default: 0))
        var feeds: SensorKind?
        if entry.has("feeds") {
            let kinds: [SensorKind] = [.seat, .presence, .motion, .temperature, .co2, .door, .ignition, .button]
            feeds = problems.check(try entry.choice("feeds", kinds.map(\.rawValue))).flatMap(SensorKind.init(rawValue:))
            if let feeds, let typeName, [.temperature, .co2].contains(feeds), typeName.hasPrefix("bit") {
                problems.add(
                    entry.error(
                        "feeds",
                        "a \(typeName) point cannot feed \(feeds.rawValue): that needs a register value (u16, s16, u32, s32 or float32)"
                    ))
            }
        }
        let saneRange = problems.check(try entry.range("range")) ?? nil
        let unit = problems.check(try entry.string("unit", default: nil)) ?? nil

        guard let name else { return }
        let complete = function != nil && address != nil && count != nil && typeName != nil && order != nil
        let items = count ?? 1
        var overflowReported = false
        var twiceReported = false
        for item in 0..<items {
            let type: PointType
            var itemAddress = address ?? 0
            switch typeName ?? "u16" {
            case "bit":
                type = .bit
                itemAddress += item
            case "bit-in-register": type = .bitInRegister((firstBit ?? 0) + item)
            case "s16": type = .s16
            case "u32": type = .u32(order ?? .highFirst)
            case "s32": type = .s32(order ?? .highFirst)
            case "float32": type = .float32(order ?? .highFirst)
            default: type = .u16
            }
            if typeName != "bit" && typeName != "bit-in-register" { itemAddress += item * type.width }
            if complete && !overflowReported && itemAddress + type.width - 1 > 65535 {
                problems.add(entry.error("count", "runs past address 65535"))
                overflowReported = true
            }
            let pointName = items == 1 ? name : "\(name)\(item + 1)"
            if model.points.contains(where: { $0.name == pointName }) {
                if !twiceReported { problems.add(entry.error("name", "point \"\(pointName)\" is defined twice")) }
                twiceReported = true
                continue
            }
            model.points.append(
                RegisterPoint(
                    name: pointName, function: function ?? .holdingRegisters, address: itemAddress, type: type,
                    scale: scale ?? 1, offset: offset ?? 0, feeds: feeds, saneRange: saneRange, unit: unit))
        }
    }
}

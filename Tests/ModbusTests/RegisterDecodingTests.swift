import Detection
import Hardware
import Testing

/// Register decoding of every point type and word order, and the device model files.
struct RegisterDecodingTests {
    func point(_ type: PointType, scale: Double = 1, offset: Double = 0) -> RegisterPoint {
        RegisterPoint(
            name: "p", function: .holdingRegisters, address: 0, type: type, scale: scale, offset: offset, feeds: nil,
            saneRange: nil, unit: nil)
    }

    @Test func unsignedAndSigned16() {
        #expect(point(.u16).decode(registers: [0xFFFF]) == 65535)
        #expect(point(.s16).decode(registers: [0xFFFF]) == -1)
        #expect(point(.s16).decode(registers: [0x8000]) == -32768)
        #expect(point(.s16, scale: 0.1).decode(registers: [0xFF1A]) == -23.0)  // -230 × 0.1: XY-MD02 below zero
        #expect(point(.u16, scale: 0.1, offset: -40).decode(registers: [650]) == 25)
    }

    @Test func thirtyTwoBitsInBothWordOrders() {
        #expect(point(.u32(.highFirst)).decode(registers: [0x0001, 0x0002]) == 65538)
        #expect(point(.u32(.lowFirst)).decode(registers: [0x0002, 0x0001]) == 65538)
        #expect(point(.s32(.highFirst)).decode(registers: [0xFFFF, 0xFFFE]) == -2)
        #expect(point(.s32(.lowFirst)).decode(registers: [0xFFFE, 0xFFFF]) == -2)
        #expect(point(.u32(.highFirst)).decode(registers: [0xFFFF, 0xFFFF]) == 4_294_967_295)
    }

    @Test func float32InBothWordOrders() {
        // 18.5 = 0x41940000; 72.3 ≈ 0x42909999.
        #expect(point(.float32(.highFirst)).decode(registers: [0x4194, 0x0000]) == 18.5)
        #expect(point(.float32(.lowFirst)).decode(registers: [0x0000, 0x4194]) == 18.5)
        let value = point(.float32(.lowFirst)).decode(registers: [0x999A, 0x4290]) ?? 0
        #expect(abs(value - 72.3) < 1e-4)
        #expect(point(.float32(.highFirst), scale: 2).decode(registers: [0xC000, 0x0000]) == -4)
    }

    @Test func floatsThatAreNotNumbersDoNotDecode() {
        #expect(point(.float32(.highFirst)).decode(registers: [0x7FC0, 0x0000]) == nil)  // NaN
        #expect(point(.float32(.lowFirst)).decode(registers: [0x0000, 0x7F80]) == nil)  // +inf
        #expect(point(.float32(.highFirst)).decode(registers: [0xFF80, 0x0000]) == nil)  // -inf
    }

    @Test func bits() {
        #expect(point(.bitInRegister(0)).decode(registers: [0x8005]) == 1)
        #expect(point(.bitInRegister(1)).decode(registers: [0x8005]) == 0)
        #expect(point(.bitInRegister(15)).decode(registers: [0x8005]) == 1)
        #expect(point(.bit).decode(bit: true) == 1)
        #expect(point(.bit).decode(bit: false) == 0)
        #expect(point(.bit, scale: 10).decode(bit: true) == 10)
        #expect(point(.bit).decode(registers: [1]) == nil, "a bit point is not read from registers")
    }

    @Test func tooFewRegistersDoNotDecode() {
        #expect(point(.u32(.highFirst)).decode(registers: [1]) == nil)
        #expect(point(.float32(.lowFirst)).decode(registers: []) == nil)
        #expect(point(.u16).decode(registers: []) == nil)
        #expect(point(.u16).decode(registers: [7, 9][1...]) == 9, "a slice decodes from its own start")
    }

    @Test func everyModelFileParsesIntoContiguousReads() throws {
        let xy = try Repository.model("xy-md02")
        #expect(xy.reads == [RegisterRead(function: .inputRegisters, address: 1, count: 2, points: [0, 1])])
        #expect(xy.point(named: "temperature")?.feeds == .temperature)

        let di16 = try Repository.model("di16")
        #expect(di16.points.count == 32)
        #expect(di16.reads.map(\.function) == [.discreteInputs, .holdingRegisters])
        #expect(di16.reads.map(\.count) == [16, 1])
        #expect(di16.point(named: "mask16")?.type == .bitInRegister(15))

        let loadcell = try Repository.model("loadcell4")
        #expect(loadcell.reads.map(\.address) == [0, 16])
        #expect(loadcell.reads.map(\.count) == [4, 8])
        #expect(loadcell.point(named: "kgf4")?.address == 22)
        #expect(loadcell.point(named: "kgf4")?.type == .float32(.lowFirst))

        let s8 = try Repository.model("senseair-s8")
        #expect(s8.reads.map(\.address) == [0, 3], "IR 1-2 are not points: two reads")
        #expect(s8.point(named: "co2")?.feeds == .co2)
    }

    static let badModels: [(text: String, line: Int, field: String?, says: String)] = [
        ("description = \"no model\"\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 0\n", 1, "model", "missing"),
        (
            "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 5\naddress = 0\n", 4, "point[0].function",
            "out of bounds"
        ),
        (
            "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 70000\n", 5, "point[0].address",
            "out of bounds"
        ),
        (
            "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 2\naddress = 0\ntype = \"u16\"\n", 6, "point[0].type",
            "bits"
        ),
        (
            "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 0\nscale = 0\n", 6, "point[0].scale",
            "not be 0"
        ),
        (
            "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 0\nadress = 1\n", 6, "point[0].adress",
            "unknown"
        ),
        (
            "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 0\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 1\n",
            7, "point[1].name", "twice"
        ),
        ("model = \"m\"\n", 1, nil, "at least one"),
    ]

    @Test(arguments: 0..<badModels.count)
    func badModelFilesNameFileLineAndField(_ index: Int) {
        let bad = Self.badModels[index]
        do {
            _ = try DeviceModel.parse(bad.text, file: "bad-\(index).toml")
            Issue.record("bad-\(index).toml parsed")
        } catch {
            #expect(error.file == "bad-\(index).toml")
            #expect(error.line == bad.line, "\(error)")
            if let field = bad.field {
                #expect(
                    error.field?.hasSuffix(field.split(separator: ".").last.map(String.init) ?? field) == true,
                    "\(error)")
            }
            #expect(error.message.contains(bad.says), "\(error)")
            #expect(error.description.hasPrefix("bad-\(index).toml:\(bad.line):"), "\(error)")
        }
    }
}

/// The device health machine and the error classification, without a bus.
struct ModbusHealthTests {
    @Test func threeFailuresInARowAreOneFault() {
        var health = ModbusDeviceHealth()
        #expect(health.pollFailed(.timeout) == nil)
        #expect(health.pollFailed(.crc) == nil)
        #expect(health.pollFailed(.timeout) == .reportFault(.timeout))
        #expect(health.pollFailed(.noDevice) == nil, "reported once")
        #expect(health.fault == .timeout)
        #expect(health.pollSucceeded() == .reportRecovered)
        #expect(health.pollSucceeded() == nil)
        #expect(health.consecutiveFailures == 0)
    }

    @Test func aGoodPollBetweenFailuresStartsTheCountAgain() {
        var health = ModbusDeviceHealth()
        _ = health.pollFailed(.timeout)
        _ = health.pollFailed(.timeout)
        #expect(health.pollSucceeded() == nil)
        #expect(health.pollFailed(.timeout) == nil)
        #expect(health.pollFailed(.timeout) == nil)
        #expect(health.pollFailed(.timeout) == .reportFault(.timeout))
    }

    @Test func errorsMapToReasonsAndRecoveries() {
        func classify(_ code: ModbusErrorCode, _ call: ModbusCall = .readRegisters, serial: Bool = true)
            -> (ModbusFaultReason, ModbusRecovery)
        {
            let result = ModbusError(call: call, code: code).classify(serial: serial)
            return (result.reason, result.recovery)
        }
        #expect(classify(.timedOut) == (.timeout, .flush))
        #expect(classify(.badCRC) == (.crc, .flush))
        #expect(classify(.badData) == (.badData, .flush))
        #expect(classify(.tooMuchData) == (.badData, .flush))
        #expect(classify(.wrongUnit) == (.wrongUnit, .flush))
        #expect(classify(.illegalAddress) == (.illegalAddress, .none))
        #expect(classify(.illegalFunction) == (.illegalFunction, .none))
        #expect(classify(.deviceBusy) == (.deviceBusy, .none))
        #expect(classify(.gatewayTarget) == (.exception(11), .none))
        #expect(classify(.ioError) == (.noDevice, .reconnect))
        #expect(classify(.badDescriptor) == (.noDevice, .reconnect))
        #expect(classify(.connectionReset, serial: false) == (.noConnection, .reconnect))
        #expect(classify(.brokenPipe, serial: false) == (.noConnection, .reconnect))
        #expect(classify(.connectionRefused, .connect, serial: false) == (.noConnection, .reconnect))
        #expect(classify(.timedOut, .connect, serial: false) == (.noConnection, .reconnect))
        #expect(classify(.noSuchFile, .connect) == (.noDevice, .reconnect))
        #expect(classify(.permissionDenied, .connect) == (.noDevice, .reconnect))
        #expect(classify(.notATerminal, .setSerialModeRS485) == (.rs485Unsupported, .reconnect))
    }

    @Test func reasonsReadAsTheTraceFormatWritesThem() {
        #expect(ModbusFaultReason.timeout.description == "timeout")
        #expect(ModbusFaultReason.crc.description == "crc")
        #expect(ModbusFaultReason.badData.description == "bad data")
        #expect(ModbusFaultReason.noDevice.description == "no device")
        #expect(ModbusFaultReason.illegalAddress.description == "illegal address")
        #expect(ModbusErrorCode.badCRC.description == "Invalid CRC")
        #expect(
            ModbusError(call: .readInputRegisters, code: .timedOut).description.hasPrefix(
                "modbus_read_input_registers: "))
    }
}

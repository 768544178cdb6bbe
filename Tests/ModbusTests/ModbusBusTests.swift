import Foundation
import Hardware
import TestSupport
import Testing

/// ModbusBus against the real peer: pymodbus on socat ptys (RTU) and on 127.0.0.1 (TCP), with line
/// faults made by the peer's proxy and call faults made at named libmodbus call sites.
///
/// Serialized: the checks count polls against the clock, and two cores running several peers and
/// buses at once would blur them.
@Suite(.serialized, .timeLimit(.budget(minutes: 1)))
struct ModbusBusTests {
    static let allModels: [(unit: Int, model: String)] = [
        (1, "xy-md02"), (2, "di16"), (3, "loadcell4"), (4, "senseair-s8"),
    ]

    /// What the peer serves (Tests/Peers/modbus_peer.py), decoded.
    static let expected: [String: [String: Double]] = [
        "cabin": ["temperature": 27.5, "humidity": 65.1],
        "seats": [
            "in1": 1, "in2": 0, "in3": 1, "in4": 0, "in5": 0, "in6": 0, "in7": 0, "in8": 0, "in9": 0, "in10": 0,
            "in11": 0, "in12": 0, "in13": 0, "in14": 0, "in15": 0, "in16": 1,
            "mask1": 1, "mask2": 0, "mask3": 1, "mask4": 0, "mask5": 0, "mask6": 0, "mask7": 0, "mask8": 0,
            "mask9": 0, "mask10": 0, "mask11": 0, "mask12": 0, "mask13": 0, "mask14": 0, "mask15": 0, "mask16": 1,
        ],
        "weights": [
            "kg1": 0, "kg2": 18.5, "kg3": 0, "kg4": 72.3, "kgf1": 0, "kgf2": 18.5, "kgf3": 0, "kgf4": 72.3,
        ],
        "co2": ["status": 0, "co2": 612],
    ]

    /// A device polled every 100 ms. The timeout is long unless a test is about timeouts: a loaded
    /// machine must not turn a CRC test into a timeout test.
    static func device(
        _ name: String, _ model: String, unit: Int, periodMs: Int = 100, timeoutMs: Int = 300
    ) throws -> DeviceConfig {
        DeviceConfig(name, model: try Repository.model(model), unit: unit, periodMs: periodMs, timeoutMs: timeoutMs)
    }

    /// No flush beyond the one after opening but the two each timeout makes (at once, and before
    /// the next request): the failures under test leave the line clean. A machine loaded enough
    /// (a sanitizer's run) can make the peer's answers late; those timeouts flush, rightly.
    static func expectCleanLine(
        _ stats: ModbusBusStats, _ comment: Comment, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let timeouts = stats.devices.values.reduce(0) { $0 + $1.timeouts }
        #expect(
            stats.flushes <= 1 + 2 * timeouts, "\(comment): \(stats.flushes) flushes, \(timeouts) timeouts",
            sourceLocation: sourceLocation)
    }

    static func everyModel() throws -> [DeviceConfig] {
        [
            try device("cabin", "xy-md02", unit: 1),
            try device("seats", "di16", unit: 2),
            try device("weights", "loadcell4", unit: 3),
            try device("co2", "senseair-s8", unit: 4),
        ]
    }

    /// Polls every model from the peer and checks each decoded value.
    func expectEveryModelDecodes(_ peer: ModbusPeer) async throws {
        let log = EventLog()
        let bus = log.bus(peer.bus(try Self.everyModel()))
        bus.start()
        let all = await log.wait(seconds: 5) { Self.expected.keys.allSatisfy { log.valueCount($0) >= 2 } }
        #expect(await bus.stop())
        #expect(all, "values from every device: \(log.all.prefix(8))")
        for (device, expected) in Self.expected {
            let values = try #require(log.lastValues(device), "no values from \(device)")
            #expect(Set(values.keys) == Set(expected.keys), "\(device)")
            for (point, value) in expected {
                let got = try #require(values[point], "\(device).\(point)")
                #expect(abs(got - value) < 1e-4, "\(device).\(point): \(got), expected \(value)")
            }
        }
        #expect(log.all.allSatisfy { if case .values = $0 { true } else { false } }, "\(log.all.prefix(5))")
        for (name, stats) in bus.stats().devices {
            #expect(stats.failures == 0, "\(name): \(stats)")
            #expect(stats.lastRoundTripMicroseconds != nil, "\(name)")
        }
    }

    @Test func decodesEveryModelOverRTU() async throws {
        // One socat pty pair, libmodbus on one end and pymodbus on the other: no proxy between.
        let peer = try ModbusPeer(.rtu(direct: true), devices: Self.allModels)
        defer { peer.close() }
        try await expectEveryModelDecodes(peer)
    }

    @Test func decodesEveryModelOverTCP() async throws {
        let peer = try ModbusPeer(.tcp(), devices: Self.allModels)
        defer { peer.close() }
        #expect(peer.port > 0)
        try await expectEveryModelDecodes(peer)
    }

    @Test func rtuServerKilledMidPollIsAFaultAndRecovers() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 3 })
        let before = try #require(bus.stats().devices["cabin"])
        // The peer and its socat ptys die: the serial device is gone, as if unplugged.
        peer.kill()
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.noDevice])
        let atFault = try #require(log.statsAtFirstFault("cabin"))
        // Counted in a row, not since `before`: on a loaded machine a poll may time out (and the
        // next succeed) before the kill, or good polls run between the snapshot and the kill.
        #expect(atFault.consecutiveFailures == 3, "FAULT on the third failed poll in a row: \(atFault)")
        #expect(atFault.failures - before.failures >= 3)
        #expect(bus.stats().connected == false)

        try peer.start()
        #expect(await log.wait(seconds: 5) { log.recoveries("cabin") == 1 })
        let valuesAfter = log.valueCount("cabin")
        #expect(await log.wait(seconds: 2) { log.valueCount("cabin") >= valuesAfter + 2 })
        #expect(await bus.stop())
        #expect(log.faults("cabin").count == 1, "reported once")
        #expect(bus.stats().connects >= 2, "reopened: \(bus.stats())")
    }

    @Test func rtuServerStoppedIsATimeoutFaultAndRecovers() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1, timeoutMs: 100)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 })
        // The pty stays; nobody answers on it.
        try peer.send("stop")
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.timeout])
        #expect(bus.stats().flushes >= 3, "a flush after every timeout")
        try peer.send("start")
        #expect(await log.wait(seconds: 5) { log.recoveries("cabin") == 1 })
        #expect(await bus.stop())
        #expect(bus.stats().connects == 1, "a timeout never reopens the context")
    }

    @Test func tcpServerKilledIsAFaultAndRecovers() async throws {
        let peer = try ModbusPeer(.tcp(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 })
        let before = try #require(bus.stats().devices["cabin"])
        peer.kill()
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.noConnection])
        let atFault = try #require(log.statsAtFirstFault("cabin"))
        #expect(atFault.polls - before.polls <= 4)
        try peer.start()  // the same port
        #expect(await log.wait(seconds: 5) { log.recoveries("cabin") == 1 })
        #expect(await bus.stop())
        #expect(bus.stats().connects >= 2)
    }

    @Test func garbageOnTheLineIsAFaultAndRecovers() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 })
        // One burst of noise between polls costs at most a poll or two, never a FAULT.
        try peer.send("noise 64")
        let afterNoise = log.valueCount("cabin")
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= afterNoise + 4 })
        #expect(log.faults("cabin").isEmpty)
        // Garbage before every answer.
        try peer.send("garbage on")
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        let reasons: [ModbusFaultReason] = [.badData, .crc, .wrongUnit, .timeout]
        #expect(log.faults("cabin").allSatisfy(reasons.contains), "\(log.faults("cabin"))")
        try peer.send("garbage off")
        #expect(await log.wait(seconds: 3) { log.recoveries("cabin") == 1 })
        #expect(await bus.stop())
        #expect(bus.stats().flushes >= 3)
    }

    @Test func answersFromAnotherUnitAreAFault() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 })
        try peer.send("as-unit 1 7")
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.wrongUnit])
        try peer.send("as-unit 1 0")
        #expect(await log.wait(seconds: 3) { log.recoveries("cabin") == 1 })
        #expect(await bus.stop())
    }

    @Test func crcErrorsAreAFaultWithFlushesAndRecover() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(3, "loadcell4")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("weights", "loadcell4", unit: 3)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("weights") >= 2 })
        let flushes = bus.stats().flushes
        try peer.send("crc -1")
        #expect(await log.wait(seconds: 3) { !log.faults("weights").isEmpty })
        #expect(log.faults("weights") == [.crc])
        #expect(bus.stats().flushes - flushes >= 3, "modbus_flush after each CRC error")
        let detail = bus.stats().devices["weights"]?.lastFailureDetail ?? ""
        #expect(detail.hasPrefix("modbus_read_registers: Invalid CRC (unit 3, function 3, address "), "\(detail)")
        try peer.send("crc 0")
        #expect(await log.wait(seconds: 3) { log.recoveries("weights") == 1 })
        #expect(log.lastValues("weights")?["kg2"] == 18.5)
        #expect(await bus.stop())
        #expect(bus.stats().connects == 1, "a CRC error never reopens the context")
    }

    @Test func answersSlowerThanTheTimeoutAreAFaultUntilFastAgain() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1, periodMs: 150, timeoutMs: 80)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 })
        try peer.send("delay 1 250")
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.timeout])
        let rtt = try #require(bus.stats().devices["cabin"]?.lastRoundTripMicroseconds)
        #expect(rtt < 80_000)
        try peer.send("delay 1 0")
        #expect(await log.wait(seconds: 3) { log.recoveries("cabin") == 1 })
        let values = log.valueCount("cabin")
        #expect(await log.wait(seconds: 2) { log.valueCount("cabin") >= values + 3 })
        #expect(log.faults("cabin").count == 1)
        #expect(await bus.stop())
    }

    @Test func aValueThatDoesNotDecodeIsBadData() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(3, "loadcell4")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("weights", "loadcell4", unit: 3)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("weights") >= 1 })
        // kgf1 (HR 16-17, low word first) becomes a quiet NaN.
        try peer.send("set 3 3 16 0,0x7FC0")
        #expect(await log.wait(seconds: 3) { !log.faults("weights").isEmpty })
        #expect(log.faults("weights") == [.badData])
        #expect(bus.stats().devices["weights"]?.lastFailureDetail == "point kgf1 at address 16 does not decode")
        Self.expectCleanLine(bus.stats(), "a value that does not decode leaves the line clean")
        try peer.send("set 3 3 16 0,0")
        #expect(await log.wait(seconds: 3) { log.recoveries("weights") == 1 })
        #expect(await bus.stop())
    }

    @Test func anAddressTheDeviceDoesNotHaveIsAnIllegalAddressFault() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let model = try DeviceModel.parse(
            """
            model = "xy-md02-wrong"
            [[point]]
            name = "dew_point"
            function = 4
            address = 40
            """, file: "wrong.toml")
        let log = EventLog()
        let bus = log.bus(
            peer.bus([DeviceConfig("cabin", model: model, unit: 1, periodMs: 100, timeoutMs: 100)]))
        bus.start()
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(await bus.stop())
        #expect(log.faults("cabin") == [.illegalAddress])
        Self.expectCleanLine(bus.stats(), "an exception answer leaves the line clean")
    }

    @Test func aFailingDeviceNeverStallsTheOthers() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        // Unit 9 is not on the line: every poll of it waits its whole timeout.
        let bus = log.bus(
            peer.bus([
                try Self.device("ghost", "di16", unit: 9, periodMs: 100, timeoutMs: 150),
                try Self.device("cabin", "xy-md02", unit: 1, periodMs: 100),
            ]))
        let start = ModbusBus.monotonicNanoseconds()
        bus.start()
        #expect(await log.wait(seconds: 3) { !log.faults("ghost").isEmpty })
        #expect(log.faults("ghost") == [.timeout])
        let faultAt = seconds(since: start)
        let before = try #require(bus.stats().devices["cabin"]?.polls)
        try await Task.sleep(for: .seconds(1))
        let after = try #require(bus.stats().devices["cabin"]?.polls)
        #expect(await bus.stop())
        // 10 polls a second for cabin; the ghost takes 150 ms of the line every 300 ms at most.
        #expect(after - before >= 5, "cabin polled \(after - before) times in the second after the ghost's fault")
        #expect(faultAt < 1.5, "ghost's fault after \(faultAt) s")
        #expect(bus.stats().devices["cabin"]?.failures == 0)
        #expect(log.faults("cabin").isEmpty)
    }

    @Test func eachDeviceIsPolledAtItsOwnPeriod() async throws {
        let peer = try ModbusPeer(.rtu(direct: true), devices: [(1, "xy-md02"), (4, "senseair-s8")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(
            peer.bus([
                try Self.device("fast", "xy-md02", unit: 1, periodMs: 100),
                try Self.device("slow", "senseair-s8", unit: 4, periodMs: 250),
            ]))
        bus.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("fast") >= 1 && log.valueCount("slow") >= 1 })
        let first = bus.stats()
        try await Task.sleep(for: .seconds(2))
        let second = bus.stats()
        #expect(await bus.stop())
        let fast = (second.devices["fast"]?.polls ?? 0) - (first.devices["fast"]?.polls ?? 0)
        let slow = (second.devices["slow"]?.polls ?? 0) - (first.devices["slow"]?.polls ?? 0)
        // 2 s: 20 and 8 polls; loose bounds for a loaded machine.
        #expect((14...23).contains(fast), "fast: \(fast) polls in 2 s")
        #expect((5...10).contains(slow), "slow: \(slow) polls in 2 s")
        let ratio = Double(fast) / Double(max(slow, 1))
        #expect(ratio > 1.8 && ratio < 3.4, "ratio \(ratio)")
    }

    @Test func stopReturnsWithinTheLongestTimeout() async throws {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let log = EventLog()
        let bus = log.bus(peer.bus([try Self.device("ghost", "xy-md02", unit: 9, periodMs: 100, timeoutMs: 400)]))
        bus.start()
        try await Task.sleep(for: .milliseconds(150))  // a poll waits for its answer now
        let start = ModbusBus.monotonicNanoseconds()
        let ended = await bus.stop()
        let took = seconds(since: start)
        #expect(ended)
        #expect(took < 0.4 + 0.3, "stop took \(took) s")
        let events = log.all.count
        try await Task.sleep(for: .milliseconds(300))
        #expect(log.all.count == events, "nothing after stop")
        #expect(bus.stats().connected == false, "context closed")

        let never = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1)]))
        let quick = ModbusBus.monotonicNanoseconds()
        #expect(await never.stop())
        #expect(seconds(since: quick) < 0.1)
        never.start()  // after stop: does nothing
        try await Task.sleep(for: .milliseconds(150))
        #expect(never.stats().devices["cabin"]?.polls == 0)
    }

    @Test func rs485ModeOnlyWhenTheConfigAsks() async throws {
        let peer = try ModbusPeer(.rtu(direct: true), devices: [(1, "xy-md02")])
        defer { peer.close() }
        let driver = FaultInjectingModbusDriver()
        let log = EventLog()
        let plain = log.bus(peer.bus([try Self.device("cabin", "xy-md02", unit: 1)]), driver: driver)
        plain.start()
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 })
        #expect(await plain.stop())
        #expect(driver.count(.setSerialModeRS485) == 0)

        // A pty, like a USB adapter, refuses RS-485 mode: the config's mistake is a FAULT with a
        // reason, never a crash or a silent bus.
        let rs485Log = EventLog()
        let rs485 = rs485Log.bus(
            peer.bus([try Self.device("cabin", "xy-md02", unit: 1)], rs485: true), driver: driver)
        rs485.start()
        #expect(await rs485Log.wait(seconds: 3) { !rs485Log.faults("cabin").isEmpty })
        #expect(await rs485.stop())
        #expect(rs485Log.faults("cabin") == [.rs485Unsupported])
        #expect(driver.count(.setSerialModeRS485) >= 1)
    }
}

/// Faults injected at named libmodbus call sites, around the real driver and a real peer (in the
/// same serialized suite).
extension ModbusBusTests {
    func startWithInjection(_ driver: FaultInjectingModbusDriver) throws -> (ModbusPeer, EventLog, ModbusBus) {
        let peer = try ModbusPeer(.rtu(direct: true), devices: [(1, "xy-md02"), (2, "di16")])
        let log = EventLog()
        let bus = log.bus(
            peer.bus([
                try ModbusBusTests.device("cabin", "xy-md02", unit: 1),
                try ModbusBusTests.device("seats", "di16", unit: 2),
            ]), driver: driver)
        bus.start()
        return (peer, log, bus)
    }

    @Test func timeoutsAtTheReadCallAreAFaultWithFlushes() async throws {
        let driver = FaultInjectingModbusDriver()
        let (peer, log, bus) = try startWithInjection(driver)
        defer { peer.close() }
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 1 })
        let flushes = driver.count(.flush)
        driver.inject(.timedOut, at: .readInputRegisters, times: nil)
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.timeout])
        #expect(driver.count(.flush) - flushes >= 3)
        #expect(log.faults("seats").isEmpty, "di16 reads other functions")
        driver.clear()
        #expect(await log.wait(seconds: 3) { log.recoveries("cabin") == 1 })
        #expect(await bus.stop())
        #expect(driver.count(.connect) == 1)
    }

    @Test func crcAndBadDataAtTheReadCallAreFaults() async throws {
        let driver = FaultInjectingModbusDriver()
        let (peer, log, bus) = try startWithInjection(driver)
        defer { peer.close() }
        #expect(await log.wait(seconds: 3) { log.valueCount("seats") >= 1 })
        driver.inject(.badCRC, at: .readInputBits, times: nil)
        #expect(await log.wait(seconds: 3) { !log.faults("seats").isEmpty })
        driver.clear()
        #expect(await log.wait(seconds: 3) { log.recoveries("seats") == 1 })
        driver.inject(.badData, at: .readRegisters, times: nil)
        #expect(await log.wait(seconds: 3) { log.faults("seats").count == 2 })
        driver.clear()
        #expect(await log.wait(seconds: 3) { log.recoveries("seats") == 2 })
        #expect(await bus.stop())
        #expect(log.faults("seats") == [.crc, .badData])
        #expect(log.faults("cabin").isEmpty)
    }

    @Test func aDeadDescriptorReopensTheContext() async throws {
        let driver = FaultInjectingModbusDriver()
        let (peer, log, bus) = try startWithInjection(driver)
        defer { peer.close() }
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 1 })
        // One EIO: closed and reopened at once, one failed poll, no FAULT.
        driver.inject(.ioError, at: .readInputRegisters)
        #expect(await log.wait(seconds: 3) { driver.count(.connect) == 2 })
        #expect(driver.count(.close) == 1)
        let values = log.valueCount("cabin")
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= values + 2 })
        #expect(log.faults("cabin").isEmpty)

        // EBADF, then the device cannot be opened for a while: a FAULT, "no device", and reopen
        // attempts spaced by the backoff, not one per poll.
        driver.inject(.noSuchFile, at: .connect, times: 6)
        driver.inject(.badDescriptor, at: .readInputRegisters)
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.noDevice])
        #expect(log.faults("seats") == [.noDevice], "the whole bus is gone")
        #expect(await log.wait(seconds: 6) { log.recoveries("cabin") == 1 && log.recoveries("seats") == 1 })
        #expect(driver.injectedCount(.connect) == 6)
        #expect(await bus.stop())
        let stats = try #require(bus.stats().devices["cabin"])
        #expect(stats.failures >= 3)
    }

    @Test func exceptionAnswersNeedNoFlush() async throws {
        let driver = FaultInjectingModbusDriver()
        let (peer, log, bus) = try startWithInjection(driver)
        defer { peer.close() }
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 1 })
        let flushes = driver.count(.flush)
        driver.inject(.illegalAddress, at: .readInputRegisters, times: nil)
        #expect(await log.wait(seconds: 3) { !log.faults("cabin").isEmpty })
        #expect(log.faults("cabin") == [.illegalAddress])
        #expect(driver.count(.flush) == flushes)
        driver.clear()
        #expect(await log.wait(seconds: 3) { log.recoveries("cabin") == 1 })
        #expect(await bus.stop())
    }
}

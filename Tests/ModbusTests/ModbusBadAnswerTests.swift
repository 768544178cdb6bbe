import Foundation
import Hardware
import Testing

/// Bad answers from one device on a shared RTU line, made by the peer's proxy: each is a FAULT of
/// that device with its reason, the other device on the line keeps being polled without a fault,
/// and the faulty one recovers by itself once it answers properly again.
extension ModbusBusTests {
    /// The cabin thermometer (unit 1) and the seat module (unit 2) behind the fault proxy.
    func startCabinAndSeats(timeoutMs: Int = 300) throws -> (ModbusPeer, EventLog, ModbusBus) {
        let peer = try ModbusPeer(.rtu(), devices: [(1, "xy-md02"), (2, "di16")])
        let log = EventLog()
        let bus = log.bus(
            peer.bus([
                try Self.device("cabin", "xy-md02", unit: 1, timeoutMs: timeoutMs),
                try Self.device("seats", "di16", unit: 2),
            ]))
        bus.start()
        return (peer, log, bus)
    }

    /// Turns the fault on for unit 1, expects `reason`, checks the seats keep answering, turns it
    /// off and expects one recovery and fresh values.
    func expectCabinFaultAndRecovery(
        on: String, off: String, reason: ModbusFaultReason, timeoutMs: Int = 300
    ) async throws -> ModbusBusStats {
        let (peer, log, bus) = try startCabinAndSeats(timeoutMs: timeoutMs)
        defer { peer.close() }
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 && log.valueCount("seats") >= 2 })
        try peer.send(on)
        #expect(await log.wait(seconds: 4) { !log.faults("cabin").isEmpty }, "\(on): no fault")
        #expect(log.faults("cabin") == [reason], "\(on)")
        let seats = log.valueCount("seats")
        #expect(await log.wait(seconds: 3) { log.valueCount("seats") >= seats + 3 }, "\(on): the seats stalled")
        #expect(log.faults("seats").isEmpty, "\(on): \(log.faults("seats"))")
        try peer.send(off)
        #expect(await log.wait(seconds: 4) { log.recoveries("cabin") == 1 }, "\(off): no recovery")
        let values = log.valueCount("cabin")
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= values + 2 }, "\(off): not polled after")
        #expect(abs((log.lastValues("cabin")?["temperature"] ?? 0) - 27.5) < 1e-4)
        #expect(await bus.stop())
        #expect(log.faults("cabin").count == 1, "reported once")
        return bus.stats()
    }

    @Test func anAnswerCutShortIsATimeoutFaultAndRecovers() async throws {
        // The last 3 bytes (a data byte and the CRC) never come: libmodbus waits out the timeout.
        let stats = try await expectCabinFaultAndRecovery(on: "truncate 1 3", off: "truncate 1 0", reason: .timeout)
        #expect(stats.flushes >= 4, "a flush after each timeout: \(stats.flushes)")
        #expect(stats.connects == 1)
    }

    @Test func aWellFormedAnswerOfTheWrongLengthIsBadData() async throws {
        let stats = try await expectCabinFaultAndRecovery(on: "short 1 on", off: "short 1 off", reason: .badData)
        #expect(stats.connects == 1)
        let detail = stats.devices["cabin"]?.lastFailureDetail ?? ""
        #expect(detail.hasPrefix("modbus_read_input_registers: "), "\(detail)")
    }

    @Test func anExceptionAnswerFromTheLineIsAFaultAndRecovers() async throws {
        // Exception 4, "slave device failure", as the device sends it: a real frame on the line.
        let stats = try await expectCabinFaultAndRecovery(
            on: "exception 1 4", off: "exception 1 0", reason: .deviceFailure)
        Self.expectCleanLine(stats, "an exception answer leaves the line clean")
        let busy = try await expectCabinFaultAndRecovery(
            on: "exception 1 6", off: "exception 1 0", reason: .deviceBusy)
        #expect(busy.connects == 1)
    }

    @Test func aDeviceThatAnswersThenFallsSilentIsATimeoutFaultAndRecovers() async throws {
        let stats = try await expectCabinFaultAndRecovery(
            on: "mute 1 on", off: "mute 1 off", reason: .timeout, timeoutMs: 150)
        #expect(stats.connects == 1, "silence never reopens the line")
    }

    /// A register value outside the model's `range` (a disconnected SHT20 reads 0x7FFF: 3276.7 °C,
    /// where xy-md02.toml says range = [-20, 80]) is a fault, never a reading: it must not escalate
    /// an alarm as heat. The device recovers with its next sane value.
    @Test func aValueOutsideTheModelsRangeIsAFaultNeverAReading() async throws {
        let range = try #require(try Repository.model("xy-md02").points.first { $0.name == "temperature" }?.saneRange)
        #expect(!range.contains(3276.7))
        let (peer, log, bus) = try startCabinAndSeats(timeoutMs: 300)
        defer { peer.close() }
        #expect(await log.wait(seconds: 3) { log.valueCount("cabin") >= 2 })
        try peer.send("set 1 4 1 0x7FFF")
        #expect(await log.wait(seconds: 4) { !log.faults("cabin").isEmpty }, "no fault")
        #expect(log.faults("cabin") == [.outOfRange])
        let seats = log.valueCount("seats")
        #expect(await log.wait(seconds: 3) { log.valueCount("seats") >= seats + 3 }, "the seats stalled")
        try peer.send("set 1 4 1 275")
        #expect(await log.wait(seconds: 4) { log.recoveries("cabin") == 1 }, "no recovery")
        #expect(await bus.stop())
        #expect(abs((log.lastValues("cabin")?["temperature"] ?? 0) - 27.5) < 1e-4)
        #expect(
            !log.allValues("cabin").contains { abs(($0["temperature"] ?? 0) - 3276.7) < 1 }, "3276.7 reached the engine"
        )
    }
}

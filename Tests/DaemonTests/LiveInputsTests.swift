import Daemon
import Detection
import Foundation
import GPIO
import Hardware
import Synchronization
import TestSupport
import Testing

/// The van's inputs as signals, on the simulator's lines and a Modbus bus with a fake device.
@Suite("The live inputs", .serialized)
struct LiveInputsTests {
    /// Config/simulator.toml, with or without its Modbus cabin thermometer.
    static func config(modbus: Bool) throws -> VanConfig {
        var text = try String(
            contentsOf: VanTests.root.appendingPathComponent("Config/simulator.toml"), encoding: .utf8)
        if !modbus, let bus = text.range(of: "[[sensor]]\nid = \"cabin\"") { text = String(text[..<bus.lowerBound]) }
        let directories = [VanTests.root.appendingPathComponent("HardwareProfiles").path]
        return try VanConfig.parse(text, file: "simulator.toml", catalog: .files(in: directories))
    }

    static let seats = (1...16).map { "seat.\($0)" }

    @Test("the signals: the built-ins, the GPIO sensors as wired, then the Modbus points; the outputs held off")
    func signals() throws {
        let sim = SimulatedGPIO()
        let inputs = try LiveInputs(
            config: try Self.config(modbus: true), gpio: sim, modbusDriver: FakeModbus(), log: { _, _ in })
        #expect(
            inputs.signals.map(\.id) == ["ignition", "door", "button"] + Self.seats + [
                "radar.rear", "pir.mid", "cabin",
            ])
        #expect(inputs.signals.map(\.kind).prefix(4) == [.ignition, .door, .button, .seat])
        #expect(
            inputs.signals[5].source
                == .gpio(
                    GPIOInputSpec(
                        role: "seat.3", line: "SIM_SEAT3", activeLow: true, bias: .pullUp, debounceMilliseconds: 0)))
        #expect(
            inputs.signals[19].source
                == .gpio(GPIOInputSpec(role: "radar.1", line: "SIM_RADAR1", activeLow: false, bias: .asIs)))
        #expect(inputs.signals.last?.source == .modbus(bus: "sim", device: "climate", point: "temperature"))
        #expect(sim.inputSpecs.map(\.role) == ["ignition", "door", "button"] + Self.seats + ["radar.1", "pir.1"])
        #expect(sim.outputSpecs.map(\.role) == ["buzzer", "horn", "hazard", "status_led"])
        #expect(sim.outputSpecs.allSatisfy { !$0.initial })
        #expect(inputs.outputs == sim.outputSpecs)
    }

    @Test("a seat mat pressed and released: two readings with the edges' times, active low applied, outputs untouched")
    func gpioEdges() async throws {
        let sim = SimulatedGPIO()
        let inputs = try LiveInputs(config: try Self.config(modbus: false), gpio: sim, log: { _, _ in })
        let levels = try inputs.gpioLevels()
        #expect(levels.count == 21 && levels.allSatisfy { !$0.value })
        let seen = Collected<LiveInputs.Change>()
        inputs.start { seen.append($0) }
        // Active low: the mat pulls the line low when someone sits.
        try sim.scheduleInput("seat.3", high: false, at: 20_000_000)
        try sim.scheduleInput("seat.3", high: true, at: 70_000_000)
        #expect(eventually { seen.items.count == 2 })
        #expect(
            seen.items == [
                .reading(signal: 5, .flag(true), atNanoseconds: sim.startNanoseconds + 20_000_000),
                .reading(signal: 5, .flag(false), atNanoseconds: sim.startNanoseconds + 70_000_000),
            ])
        #expect(inputs.turns > 0)
        await inputs.stop()
        #expect(sim.outputChanges.allSatisfy { !$0.value })
        #expect(sim.outputChanges.count == 4)
    }

    @Test("a line another program holds: the message names it and says to stop the service first")
    func busyLine() throws {
        let busy = BusyGPIO()
        #expect {
            _ = try LiveInputs(config: try Self.config(modbus: false), gpio: busy, log: { _, _ in })
        } throws: { error in
            guard let error = error as? LiveInputs.OpenError else { return false }
            return error.description
                == "GPIO line SIM_IGNITION is in use (is the headcount service running? stop it first: systemctl stop headcount)"
        }
    }

    @Test(
        "Modbus: the cabin temperature as a number, only changes, a fault after three failed polls, the reading again after"
    )
    func modbus() async throws {
        let device = FakeModbus()
        device.set(inputRegister: 1, to: 275)  // 27.5 °C
        let logged = Collected<String>()
        let inputs = try LiveInputs(
            config: try Self.config(modbus: true), gpio: SimulatedGPIO(), modbusDriver: device,
            log: { _, message in logged.append(message) })
        let cabin = inputs.signals.count - 1
        let seen = Collected<LiveInputs.Change>()
        inputs.start { seen.append($0) }
        #expect(eventually { seen.items.count == 1 })
        // Polled every 250 ms: a second of the same value is still one reading.
        usleep(1_000_000)
        #expect(seen.items.count == 1)
        #expect(seen.items.first.map { if case .reading(cabin, .number(27.5), _) = $0 { true } else { false } } == true)
        device.set(inputRegister: 1, to: 301)
        #expect(eventually { seen.items.count == 2 })
        device.dead.store(true, ordering: .relaxed)
        #expect(eventually { seen.items.count == 3 })
        #expect(seen.items.last.map { if case .fault(cabin, "timeout", _) = $0 { true } else { false } } == true)
        #expect(logged.items.contains("Modbus device climate: fault (timeout)"))
        // Back with the value it had before the fault: recovered, and that value again.
        device.dead.store(false, ordering: .relaxed)
        #expect(eventually { seen.items.count == 5 })
        let last = Array(seen.items.suffix(2))
        #expect(last.first.map { if case .fault(cabin, nil, _) = $0 { true } else { false } } == true)
        #expect(last.last.map { if case .reading(cabin, .number(30.1), _) = $0 { true } else { false } } == true)
        await inputs.stop()
    }

    @Test("Modbus values: numbers for temperature, CO2 and weights; on/off for bits, presence and motion")
    func conversion() {
        // A 1 kg bag on a load cell is a weight under the child minimum, not an occupied mat.
        #expect(LiveInputs.reading(1, kind: .seat, type: .u16) == .number(1))
        #expect(LiveInputs.reading(0, kind: .seat, type: .float32(.lowFirst)) == .number(0))
        #expect(LiveInputs.reading(1, kind: .seat, type: .bit) == .flag(true))
        #expect(LiveInputs.reading(0, kind: .seat, type: .bitInRegister(3)) == .flag(false))
        #expect(LiveInputs.reading(27.5, kind: .temperature, type: .s16) == .number(27.5))
        #expect(LiveInputs.reading(612, kind: .co2, type: .u16) == .number(612))
        #expect(LiveInputs.reading(1, kind: .motion, type: .bit) == .flag(true))
        #expect(LiveInputs.reading(0, kind: .presence, type: .u16) == .flag(false))
    }

    @Test("a trip played into the simulator: weights as mats, active-low levels, the trace's times, the rest left out")
    func simulatedTrip() throws {
        let config = try Self.config(modbus: false)
        let sim = SimulatedGPIO()
        _ = try LiveInputs(config: config, gpio: sim, log: { _, _ in })
        let trace = try Trace.parse(
            """
            {"headcount_trace": 1, "sensors": [{"id": "seat.1", "kind": "seat"}, {"id": "cabin", "kind": "temperature"}, {"id": "seat.99", "kind": "seat"}]}
            {"t": 0, "signal": "ignition", "value": true}
            {"t": 0, "signal": "cabin", "value": 27}
            {"t": 1, "signal": "seat.1", "value": 16.4}
            {"t": 1.5, "signal": "seat.99", "value": true}
            {"t": 2, "signal": "seat.1", "value": 3}
            {"t": 2.5, "signal": "seat.1", "fault": "timeout"}
            {"t": 3, "end": true}
            """)
        #expect(sim.schedule(trace, wiredAs: config, speed: 100) == ["cabin", "seat.99"])
        var edges: [GPIOEdge] = []
        for _ in 0..<50 where edges.count < 3 { edges += try sim.waitForEdges(timeoutNanoseconds: 100_000_000) }
        #expect(
            edges == [
                GPIOEdge(input: 0, value: true, timestampNanoseconds: sim.startNanoseconds),
                GPIOEdge(input: 3, value: true, timestampNanoseconds: sim.startNanoseconds + 10_000_000),
                GPIOEdge(input: 3, value: false, timestampNanoseconds: sim.startNanoseconds + 20_000_000),
            ])
        // The lines are active low: "on" is a low level.
        #expect(try sim.readInputs()[0] == true)
    }
}

/// Things seen on other threads, in order.
final class Collected<Item: Sendable>: Sendable {
    private let list = Mutex<[Item]>([])
    func append(_ item: Item) { list.withLock { $0.append(item) } }
    var items: [Item] { list.withLock { $0 } }
}

/// A chip whose lines another program holds.
final class BusyGPIO: GPIOBackend {
    func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {
        throw .lineBusy(line: inputs.first?.line ?? "?", chip: "pinctrl-bcm2711", role: inputs.first?.role ?? "?")
    }
    func readInputs() throws(GPIOError) -> [Bool] { throw .closed }
    func setOutput(_ index: Int, to value: Bool) throws(GPIOError) { throw .closed }
    func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge] { throw .closed }
    func close() {}
}

/// One Modbus device in memory: input registers by address; `dead` makes every read time out.
final class FakeModbus: ModbusDriver {
    let dead = Atomic<Bool>(false)
    private let registers = Mutex<[Int: UInt16]>([:])

    func set(inputRegister address: Int, to value: UInt16) { registers.withLock { $0[address] = value } }

    func connect(_ transport: BusConfig.Transport, timeoutMicroseconds: Int) throws(ModbusError) -> any ModbusContext {
        Context(device: self)
    }

    final class Context: ModbusContext {
        let device: FakeModbus
        init(device: FakeModbus) { self.device = device }

        func setSerialModeRS485() throws(ModbusError) {}
        func setSlave(_ unit: Int) throws(ModbusError) {}
        func setResponseTimeout(microseconds: Int) throws(ModbusError) {}
        func readBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
            throw ModbusError(call: .readBits, code: .illegalFunction)
        }
        func readInputBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
            throw ModbusError(call: .readInputBits, code: .illegalFunction)
        }
        func readRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
            throw ModbusError(call: .readRegisters, code: .illegalFunction)
        }
        func readInputRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
            if device.dead.load(ordering: .relaxed) { throw ModbusError(call: .readInputRegisters, code: .timedOut) }
            let values = device.registers.withLock { $0 }
            for offset in 0..<count { registers[offset] = values[address + offset] ?? 0 }
        }
        func flush() throws(ModbusError) {}
        func close() {}
    }
}

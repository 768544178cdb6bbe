import Daemon
import Detection
import Foundation
import GPIO
import Hardware
import Synchronization
import TestSupport
import Testing
import Uplink

/// The live runtime in-process: the simulator's lines, the engine thread, the sounder, the outbox
/// and the persisted memory, at 100× speed.
@Suite("The van's runtime on the simulator", .serialized)
struct VanTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func config(state: String) throws -> VanConfig {
        var text = try String(contentsOf: root.appendingPathComponent("Config/simulator.toml"), encoding: .utf8)
        text = text.replacingOccurrences(
            of: "state_directory = \"/tmp/headcount-sim\"", with: "state_directory = \"\(state)\"")
        // No Modbus bus here: the cabin thermometer is the pymodbus peer's, tested elsewhere.
        if let bus = text.range(of: "[[sensor]]\nid = \"cabin\"") { text = String(text[..<bus.lowerBound]) }
        let directories = [root.appendingPathComponent("HardwareProfiles").path]
        return try VanConfig.parse(text, file: "simulator.toml", catalog: .files(in: directories))
    }

    func outboxTypes(_ outbox: Outbox) throws -> [AlertType] {
        try outbox.entries(limit: 100).sorted { $0.seq < $1.seq }.compactMap(\.type)
    }

    @Test("a child left on a seat: reminder, check missed, presence alarm on the buzzer, alerts in the outbox")
    func childLeft() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("headcount-van-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let config = try Self.config(state: state)
        let sim = SimulatedGPIO()
        var options = Van.Options()
        options.speed = 100
        let van = try Van(config: config, gpio: sim, center: nil, options: options) { _, _ in }
        // Lines are active low: "high: false" is on.
        try sim.setInput("ignition", high: false)
        van.start()
        #expect(eventually { van.engine.machine.state == .driving })
        try sim.setInput("seat.3", high: false)
        try sim.setInput("ignition", high: true)
        // The trip starts (at 100× the 120 s window lasts 1.2 s: on a loaded machine the check may only
        // see it closed already).
        #expect(
            eventually {
                switch van.engine.machine.state {
                case .checkWindow, .closed: true
                default: false
                }
            })
        // Then check_missed, and the seat makes it presence.
        #expect(eventually { van.sounder.pattern == .level1 || van.sounder.pattern == .level2 })
        #expect(sim.output("buzzer") == true)
        #expect(eventually { (try? outboxTypes(van.outbox)) ?? [] == [.checkMissed, .presenceAlarm] })
        // The memory on disk says an alarm sounds.
        let saved = try #require(try van.outbox.savedState().flatMap(SavedMemory.decode))
        let resumed = DetectionMachine(
            sensors: config.sensors.map(\.spec), policy: config.policy, resuming: saved.memory,
            writtenAt: saved.engineTime, now: 0, elapsed: 0)
        #expect(resumed.currentSound == .level1 || resumed.currentSound == .level2)
        await van.stop()
        #expect(sim.output("buzzer") == false)
    }

    @Test("after a restart the alarm that was sounding sounds again, and the check window keeps its deadline")
    func restart() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("headcount-van-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: state) }
        // A 60 s window at 10×: 6 s real, time enough to stop the first run inside it even on a
        // loaded machine.
        var config = try Self.config(state: state)
        try config.policy.set("check_window_s", to: 60)
        var options = Van.Options()
        options.speed = 10
        // First run: ignition off, then stop before the window runs out (a crash, as far as the
        // memory knows: nothing is written on stop).
        do {
            let sim = SimulatedGPIO()
            let van = try Van(config: config, gpio: sim, center: nil, options: options) { _, _ in }
            try sim.setInput("ignition", high: false)
            van.start()
            #expect(eventually { van.engine.machine.state == .driving })
            try sim.setInput("seat.1", high: false)
            try sim.setInput("ignition", high: true)
            #expect(eventually { if case .checkWindow = van.engine.machine.state { true } else { false } })
            await van.stop()
        }
        // Second run, ignition still off: the trip goes on and the window runs out on time.
        let sim = SimulatedGPIO()
        let van = try Van(config: config, gpio: sim, center: nil, options: options) { _, _ in }
        try sim.setInput("seat.1", high: false)
        #expect({ if case .checkWindow = van.engine.machine.state { true } else { false } }())
        van.start()
        #expect(eventually(20) { van.sounder.pattern == .level1 || van.sounder.pattern == .level2 })
        #expect(eventually { (try? outboxTypes(van.outbox)) ?? [] == [.checkMissed, .presenceAlarm] })
        await van.stop()

        // Third run: the alarm is sounding in the memory; it sounds at once.
        let again = SimulatedGPIO()
        let third = try Van(config: config, gpio: again, center: nil, options: options) { _, _ in }
        third.start()
        #expect(eventually(budget(seconds: 2)) { again.output("buzzer") == true })
        await third.stop()
    }

    @Test("a saved state it cannot read is said in the journal, and the van starts parked")
    func unreadableState() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("headcount-van-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let config = try Self.config(state: state)
        do {
            let van = try Van(config: config, gpio: SimulatedGPIO(), center: nil, options: Van.Options()) { _, _ in }
            _ = try van.outbox.enqueue([], savingState: "{\"engine_time\": 12}\nnot a memory")
            await van.stop()
        }
        let lines = Mutex<[String]>([])
        let van = try Van(config: config, gpio: SimulatedGPIO(), center: nil, options: Van.Options()) { level, line in
            if level == .error { lines.withLock { $0.append(line) } }
        }
        #expect(lines.withLock { $0 } == ["saved detection state unreadable (32 bytes): starting parked"])
        #expect(van.engine.machine.state == .parked)
        await van.stop()
    }
}

@Suite("The detection memory")
struct MachineMemoryTests {
    @Test("it round-trips through JSON and resumes on a new clock with every deadline in place")
    func roundTrip() throws {
        var machine = DetectionMachine(sensors: [SensorSpec(id: "seat.1", kind: .seat)], policy: Policy())
        var actions: [Action] = []
        let ignition = try #require(machine.index(of: "ignition"))
        machine.handle(.reading(sensor: ignition, .flag(true)), at: 0, into: &actions)
        machine.handle(.reading(sensor: ignition, .flag(false)), at: 600, into: &actions)
        let memory = try #require(MachineMemory(json: machine.memory.json))
        #expect(memory == machine.memory)
        // Written at engine time 630; 50 s passed; the new clock reads 2.
        let resumed = DetectionMachine(
            sensors: machine.sensors, policy: machine.policy, resuming: memory, writtenAt: 630, now: 2, elapsed: 50)
        // Ignition off happened 80 s before now: the window (120 s) runs out 40 s from now.
        #expect(resumed.state == .checkWindow(offAt: -78, deadline: 42))
        #expect(resumed.currentSound == .reminder)
        #expect(resumed.pendingTimers.contains { $0.0 == .checkWindow && $0.1 == 42 })
        #expect(MachineMemory(json: "{\"version\": 2}") == nil)
        // Power-up after a restart: the chirp, then the alarm that was sounding, not silence.
        machine.timerFired(.checkWindow, at: 720, into: &actions)
        var restarted = DetectionMachine(
            sensors: machine.sensors, policy: machine.policy, resuming: machine.memory, writtenAt: 720, now: 0,
            elapsed: 1)
        actions.removeAll()
        restarted.powerUp(into: &actions)
        #expect(actions == [.sound(.selfTest), .sound(.level1)])
        #expect(MachineMemory(json: "garbage") == nil)
    }
}

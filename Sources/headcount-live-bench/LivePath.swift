import Daemon
import Detection
import Dispatch
import Foundation
import GPIO
import Hardware
import Synchronization
import Uplink

#if canImport(Glibc)
    import Glibc
#endif

/// One kind of input edge that changes the buzzer at once, and what the engine does before it
/// writes the buzzer.
enum EdgeKind: Int, CaseIterable {
    case ignitionOffReminder
    case ignitionOnEndsTrip
    case checkPressEndsReminder
    case pirPulseRaisesAlarm
    case ignitionOnEndsAlarm

    var label: String {
        switch self {
        case .ignitionOffReminder: "ignition off -> reminder chime on"
        case .ignitionOnEndsTrip: "ignition on in the window -> buzzer off"
        case .checkPressEndsReminder: "CHECK press in the window -> buzzer off"
        case .pirPulseRaisesAlarm: "2nd PIR pulse, van closed -> ALARM level 1"
        case .ignitionOnEndsAlarm: "ignition on during the alarm -> buzzer off"
        }
    }

    /// What is committed to the outbox's database before the buzzer changes (EngineThread.apply:
    /// one transaction with the batch's alerts and the detection state, then the sound).
    var writesFirst: String {
        switch self {
        case .ignitionOffReminder, .checkPressEndsReminder: "state"
        case .ignitionOnEndsTrip: "trip_closed + state"
        case .pirPulseRaisesAlarm: "presence_alarm + state"
        case .ignitionOnEndsAlarm: "alarm_cleared, trip_closed + state"
        }
    }

    var queuesAlert: Bool { self != .ignitionOffReminder && self != .checkPressEndsReminder }
}

/// The daemon's warnings and errors, as its log closure hands them over.
final class ErrorLog: Sendable {
    let lines = Mutex<[String]>([])
}

/// One edge's figures, in milliseconds from the edge's timestamp.
struct EdgeSample {
    var kind: EdgeKind
    var buzzer: Double
    /// Until the first read of `outbox.lastSeq` that saw the new alert (an upper bound of the commit).
    var outbox: Double?
    /// How long the read that saw the alert took: long when it waited on the lock through the commit.
    var outboxRead: Double?
    /// The longest gap between the starts of two reads while polling (the resolution when no read
    /// waited on the commit).
    var pollGap: Double?
}

struct LiveOptions {
    var root: URL
    var parent: String
    var cycles = 200
    var alarms = 20
    var speed = 1.0
    var exitGrace = 10.0
}

/// Parts 1 and 2: the real runtime (`Van`) in-process on the simulated GPIO backend, no center,
/// its state folder under `parent`.
final class LiveBench {
    let options: LiveOptions
    let sim: SimulatedGPIO
    let van: Van
    let config: VanConfig
    let state: String
    private(set) var samples: [EdgeSample] = []
    private(set) var lost: [String] = []
    private let errors = ErrorLog()

    init(options: LiveOptions) throws {
        self.options = options
        state = try Cleanup.makeFolder(under: options.parent, "van")
        var text = try String(
            contentsOf: options.root.appendingPathComponent("Config/simulator.toml"), encoding: .utf8)
        // No Modbus bus in-process (as in VanTests): the cabin thermometer is the pymodbus peer's,
        // which parts 3 and 4 use; nothing here reads it.
        guard let modbus = text.range(of: "[[sensor]]\nid = \"cabin\"") else {
            throw BenchError(description: "Config/simulator.toml has no cabin sensor where expected")
        }
        text = String(text[..<modbus.lowerBound])
        // The shortest exit grace the policy allows, so that a van closed by CHECK watches again soon.
        text += "\n[policy]\nexit_grace_s = \(Int(options.exitGrace))\n"
        var config = try VanConfig.parse(
            text, file: "simulator.toml",
            catalog: .files(in: [options.root.appendingPathComponent("HardwareProfiles").path]))
        config.stateDirectory = state
        self.config = config
        sim = SimulatedGPIO()
        var vanOptions = Van.Options()
        vanOptions.speed = options.speed
        let errors = self.errors
        van = try Van(config: config, gpio: sim, center: nil, options: vanOptions) { level, message in
            // ALARM lines are warnings and errors too; they are what the bench makes happen.
            if level == .error && !message.hasPrefix("ALARM") { errors.lines.withLock { $0.append(message) } }
        }
    }

    var problems: [String] { errors.lines.withLock { $0 } }

    /// Sets an input's electrical level at a timestamp the bench knows: "now", scheduled at
    /// (now - startNanoseconds), which the simulator delivers at once with exactly that timestamp.
    private func edge(_ role: String, high: Bool) throws -> UInt64 {
        let now = monotonicNanoseconds()
        try sim.scheduleInput(role, high: high, at: now &- sim.startNanoseconds)
        return now
    }

    /// The timestamp of the buzzer's first change to `value` at or after `since`, waiting up to
    /// `seconds` for it. Polls the output (its timestamp is taken inside `setOutput`, so polling adds
    /// nothing to the figure).
    private func buzzer(_ value: Bool, since: UInt64, seconds: Double = 2) -> UInt64? {
        let deadline = since + UInt64(seconds * 1e9)
        while sim.output("buzzer") != value && monotonicNanoseconds() < deadline { sleep(seconds: 0.000_05) }
        return sim.outputChanges.first { $0.role == "buzzer" && $0.value == value && $0.timestampNanoseconds >= since }?
            .timestampNanoseconds
    }

    /// Polls `outbox.lastSeq` every ~20 µs (plus timer slack) until it passes `seq`. The read takes
    /// the outbox's lock, which `enqueue` holds through COMMIT (the fsync), so a read that starts
    /// during the commit returns just after it. Returns when the read that saw it ended, how long
    /// that read took, and the longest gap between two reads' starts.
    private func outboxCommit(after seq: Int, since: UInt64, seconds: Double = 2) -> (
        seen: UInt64, read: UInt64, gap: UInt64
    )? {
        let deadline = since + UInt64(seconds * 1e9)
        var previous = since
        var gap: UInt64 = 0
        while true {
            let start = monotonicNanoseconds()
            gap = Swift.max(gap, start - previous)
            previous = start
            let current = van.outbox.lastSeq
            let end = monotonicNanoseconds()
            if current > seq { return (end, end - start, gap) }
            guard end < deadline else { return nil }
            sleep(seconds: 0.000_02)
        }
    }

    private func milliseconds(_ from: UInt64, _ to: UInt64) -> Double { Double(Int64(bitPattern: to &- from)) / 1e6 }

    /// One edge: sets it, waits for the outbox (if the edge queues an alert) and the buzzer.
    private func measure(_ kind: EdgeKind, _ role: String, high: Bool, buzzerTo value: Bool) throws {
        guard sim.output("buzzer") != value else {
            lost.append("\(kind.label): buzzer already \(value ? "on" : "off") before the edge")
            return
        }
        let seq = van.outbox.lastSeq
        let at = try edge(role, high: high)
        var commit: (seen: UInt64, read: UInt64, gap: UInt64)?
        if kind.queuesAlert {
            commit = outboxCommit(after: seq, since: at)
            if commit == nil { lost.append("\(kind.label): no alert in the outbox within 2 s") }
        }
        guard let written = buzzer(value, since: at) else {
            lost.append("\(kind.label): the buzzer did not change within 2 s (\(Van.describe(van.engine.machine)))")
            return
        }
        samples.append(
            EdgeSample(
                kind: kind, buzzer: milliseconds(at, written), outbox: commit.map { milliseconds(at, $0.seen) },
                outboxRead: commit.map { Double($0.read) / 1e6 }, pollGap: commit.map { Double($0.gap) / 1e6 }))
    }

    private func waitFor(_ what: String, seconds: Double = 5, _ condition: () -> Bool) throws {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while !condition() {
            guard monotonicNanoseconds() < deadline else {
                throw BenchError(description: "timed out waiting for \(what) (\(Van.describe(van.engine.machine)))")
            }
            sleep(seconds: 0.001)
        }
    }

    /// 10 to 40 ms, so that edges do not fall in step with the reader's 100 ms poll or the
    /// sounder's and the engine's 1 s turns.
    private func jitter() -> Double { Double.random(in: 0.010...0.040) }

    func run(progress: (String) -> Void) async throws {
        van.start()
        // Lines are active low (ignition, door, button, seats): high: false is on. Radar and PIR
        // are active high.
        _ = try edge("ignition", high: false)
        try waitFor("driving") { van.engine.machine.state == .driving }
        // The power-up self-test chirp holds the buzzer 150 ms.
        sleep(seconds: 0.3)
        try waitFor("the self-test chirp to end") { sim.output("buzzer") == false }

        // Fast cycles: ignition off (a trip starts: reminder chime on at once), then ignition on
        // 10 to 40 ms later, inside the 200 ms chime (the trip closes: trip_closed, buzzer off).
        for cycle in 0..<options.cycles {
            if cycle % 50 == 0 { progress("   ignition cycles: \(cycle)/\(options.cycles)") }
            try measure(.ignitionOffReminder, "ignition", high: true, buzzerTo: true)
            sleep(seconds: jitter())
            try measure(.ignitionOnEndsTrip, "ignition", high: false, buzzerTo: false)
            sleep(seconds: jitter())
        }

        // Alarm cycles: ignition off, CHECK pressed (the van is closed, exit grace runs), grace
        // over, two PIR pulses: the second raises the presence alarm; ignition on ends it.
        let grace = options.exitGrace / options.speed
        for cycle in 0..<options.alarms {
            progress(
                String(
                    format: "   alarm cycles: %d/%d (%.0f s each at speed %g)", cycle, options.alarms, grace + 0.2,
                    options.speed))
            try measure(.ignitionOffReminder, "ignition", high: true, buzzerTo: true)
            sleep(seconds: jitter())
            let pressed = monotonicNanoseconds()
            try measure(.checkPressEndsReminder, "button", high: false, buzzerTo: false)
            sleep(seconds: 0.05)
            _ = try edge("button", high: true)
            let graceEnds = pressed + UInt64((grace + 0.02) * 1e9)
            while monotonicNanoseconds() < graceEnds { sleep(seconds: 0.01) }
            guard case .closed = van.engine.machine.state, van.engine.machine.alarm == .quiet else {
                throw BenchError(description: "the van is not closed and quiet: \(Van.describe(van.engine.machine))")
            }
            _ = try edge("pir.1", high: true)
            sleep(seconds: 0.005)
            _ = try edge("pir.1", high: false)
            sleep(seconds: jitter())
            try measure(.pirPulseRaisesAlarm, "pir.1", high: true, buzzerTo: true)
            sleep(seconds: 0.005)
            _ = try edge("pir.1", high: false)
            sleep(seconds: jitter())
            try measure(.ignitionOnEndsAlarm, "ignition", high: false, buzzerTo: false)
            sleep(seconds: jitter())
        }
        await van.stop()
    }

    /// The commit that comes before the sound, alone, in an outbox beside the van's (synchronous=FULL,
    /// as the daemon): the detection state alone, and an alert with the state, 20 ms apart (edges
    /// are sparse), then alert + state back to back.
    func isolatedCommits(count: Int = 50) throws -> (state: Figures, alertAndState: Figures, backToBack: Figures) {
        let folder = try Cleanup.makeFolder(under: options.parent, "commits")
        let outbox = try Outbox(path: folder + "/outbox.sqlite")
        defer { outbox.close() }
        let machine = DetectionMachine(sensors: config.sensors.map(\.spec), policy: config.policy)
        func commit(alert: Bool, _ index: Int) throws -> Double {
            let alerts =
                alert
                ? [
                    CenterAlert.heartbeat(
                        vehicleID: "sim-01", occurredAt: .now(), version: "bench", uptimeSeconds: 1, sensors: [])
                ] : []
            let start = monotonicNanoseconds()
            try outbox.enqueue(alerts, savingState: SavedMemory.encode(machine.memory, engineTime: Double(index)))
            return Double(monotonicNanoseconds() - start) / 1e6
        }
        var state: [Double] = []
        var both: [Double] = []
        var backToBack: [Double] = []
        for index in 0..<count {
            state.append(try commit(alert: false, index))
            sleep(seconds: 0.02)
            both.append(try commit(alert: true, index))
            sleep(seconds: 0.02)
        }
        for index in 0..<count { backToBack.append(try commit(alert: true, index)) }
        return (Figures(state), Figures(both), Figures(backToBack))
    }
}

import Daemon
import Detection
import GPIO
import Synchronization
import Uplink

#if canImport(Glibc)
    import Glibc
#endif

/// In which order the bench-made effects commit and sound.
enum WriteOrder: CaseIterable {
    /// As EngineThread.apply calls the effects: alerts and state committed, then the sound.
    case asToday
    /// The sound, then the alerts and state committed.
    case soundFirst

    var label: String {
        switch self {
        case .asToday: "commit, then sound (as the daemon)"
        case .soundFirst: "sound, then commit"
        }
    }
}

/// The daemon's effects rebuilt from its public parts (Outbox, SavedMemory, Sounder), so that the
/// order can be changed without touching the daemon. Notes when each commit with alerts ends.
/// (In `soundFirst` a batch with neither a sound nor an event would wait for the next one; every
/// edge this bench sets makes a sound.)
final class WritingEffects: EngineEffects {
    let outbox: Outbox
    let sounder: Sounder
    let table: [SensorSpec]
    let order: WriteOrder
    /// When each commit that held alerts returned (CLOCK_MONOTONIC ns).
    let commits = Mutex<[UInt64]>([])
    private let pending = Mutex<(alerts: [Alert], memory: MachineMemory, at: Seconds)?>(nil)

    init(folder: String, sounder: Sounder, table: [SensorSpec], order: WriteOrder) throws {
        outbox = try Outbox(path: folder + "/outbox.sqlite")
        self.sounder = sounder
        self.table = table
        self.order = order
    }

    func commit(_ alerts: [Alert], memory: MachineMemory, at time: Seconds) {
        if order == .soundFirst {
            pending.withLock { $0 = (alerts, memory, time) }
        } else {
            store(alerts, memory, time)
        }
    }

    func sound(_ pattern: SoundPattern) {
        sounder.set(pattern)
        flush()
    }

    func event(_ event: DetectionEvent, at time: Seconds) { flush() }

    private func store(_ alerts: [Alert], _ memory: MachineMemory, _ time: Seconds) {
        let rows = alerts.map { CenterAlert($0, sensorTable: table, vehicleID: "sim-01", occurredAt: .now()) }
        _ = try? outbox.enqueue(rows, savingState: SavedMemory.encode(memory, engineTime: time))
        let now = monotonicNanoseconds()
        if !alerts.isEmpty { commits.withLock { $0.append(now) } }
    }

    private func flush() {
        guard
            let waiting = pending.withLock({ value in
                defer { value = nil }; return value
            })
        else { return }
        store(waiting.alerts, waiting.memory, waiting.at)
    }
}

/// A small runtime: SimulatedGPIO (ignition in, buzzer out), GPIOInputReader, the same hand-over
/// as `Van.start`, EngineThread, Sounder and `WritingEffects`.
final class WritingRuntime {
    let sim = SimulatedGPIO()
    let engine: EngineThread
    let reader: GPIOInputReader
    let sounder: Sounder
    let effects: WritingEffects
    private var consumer: Task<Void, Never>?

    init(folder: String, order: WriteOrder) throws {
        try sim.request(
            inputs: [GPIOInputSpec(role: "ignition", line: "SIM_IGNITION", activeLow: true)],
            outputs: [GPIOOutputSpec(role: "buzzer", line: "SIM_BUZZER")])
        let table = DetectionMachine.sensorTable([])
        guard let ignition = table.firstIndex(where: { $0.id == "ignition" }) else {
            throw BenchError(description: "no ignition in the sensor table")
        }
        sounder = Sounder(backend: sim, outputs: .init(buzzer: 0, horn: nil, hazard: nil, statusLED: nil)) { _ in }
        effects = try WritingEffects(folder: folder, sounder: sounder, table: table, order: order)
        engine = EngineThread(
            machine: DetectionMachine(sensors: [], policy: Policy()), clock: EngineClock(), effects: effects)
        reader = GPIOInputReader(backend: sim)
        sounder.start()
        engine.start(powerUp: false)
        reader.start()
        let reader = self.reader
        let engine = self.engine
        consumer = Task.detached {
            for await event in reader.events {
                guard case .edge(let edge) = event else { continue }
                engine.submit(
                    EngineInput(
                        .reading(sensor: ignition, .flag(edge.value)), atNanoseconds: edge.timestampNanoseconds))
            }
        }
        try sim.setInput("ignition", high: false)  // driving
        sleep(seconds: 0.05)
    }

    /// One edge; milliseconds from its timestamp to the buzzer's change to `value`, and to the end
    /// of the commit of its first alert when `alert`.
    func edge(high: Bool, buzzerTo value: Bool, alert: Bool) throws -> (buzzer: Double?, commit: Double?) {
        let commitsBefore = effects.commits.withLock { $0.count }
        let at = monotonicNanoseconds()
        try sim.scheduleInput("ignition", high: high, at: at &- sim.startNanoseconds)
        let deadline = at + 2_000_000_000
        while sim.output("buzzer") != value && monotonicNanoseconds() < deadline { sleep(seconds: 0.000_05) }
        let change = sim.outputChanges.first {
            $0.role == "buzzer" && $0.value == value && $0.timestampNanoseconds >= at
        }
        var commit: Double?
        if alert {
            while effects.commits.withLock({ $0.count }) == commitsBefore && monotonicNanoseconds() < deadline {
                sleep(seconds: 0.000_05)
            }
            commit = effects.commits.withLock { $0.count > commitsBefore ? $0[commitsBefore] : nil }
                .map { Double($0 - at) / 1e6 }
        }
        return (change.map { Double($0.timestampNanoseconds - at) / 1e6 }, commit)
    }

    func stop() async {
        reader.stop()
        await consumer?.value
        engine.stop()
        sounder.stop()
        sim.close()
        effects.outbox.close()
    }
}

/// Ignition off/on cycles on one such runtime per order, turn about (so that both see the same
/// disk at the same time): edge -> buzzer for both edges, edge -> trip_closed committed for
/// ignition on.
func measureWriteOrders(cycles: Int, parent: String) async throws -> [(
    order: WriteOrder, off: Figures, on: Figures, commit: Figures
)] {
    var runtimes: [WritingRuntime] = []
    for order in WriteOrder.allCases {
        runtimes.append(try WritingRuntime(folder: try Cleanup.makeFolder(under: parent, "order"), order: order))
    }
    var off = [[Double]](repeating: [], count: runtimes.count)
    var on = [[Double]](repeating: [], count: runtimes.count)
    var commit = [[Double]](repeating: [], count: runtimes.count)
    for _ in 0..<cycles {
        for (index, runtime) in runtimes.enumerated() {
            if let time = try runtime.edge(high: true, buzzerTo: true, alert: false).buzzer { off[index].append(time) }
            sleep(seconds: Double.random(in: 0.010...0.040))
            let edge = try runtime.edge(high: false, buzzerTo: false, alert: true)
            if let time = edge.buzzer { on[index].append(time) }
            if let time = edge.commit { commit[index].append(time) }
            sleep(seconds: Double.random(in: 0.010...0.040))
        }
    }
    for runtime in runtimes { await runtime.stop() }
    return runtimes.indices.map {
        (runtimes[$0].effects.order, Figures(off[$0]), Figures(on[$0]), Figures(commit[$0]))
    }
}

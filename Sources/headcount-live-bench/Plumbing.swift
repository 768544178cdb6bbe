import Daemon
import Detection
import GPIO
import Synchronization
import Uplink

#if canImport(Glibc)
    import Glibc
#endif

/// Effects that only note when each sound reaches them: no outbox commit, no GPIO write.
final class StampingEffects: EngineEffects {
    let sounds = Mutex<[(pattern: SoundPattern, at: UInt64)]>([])

    func commit(_ alerts: [Alert], memory: MachineMemory, at time: Seconds) {}
    func sound(_ pattern: SoundPattern) { sounds.withLock { $0.append((pattern, monotonicNanoseconds())) } }
    func event(_ event: DetectionEvent, at time: Seconds) {}
}

/// The runtime's plumbing without its writes, to tell the two apart: the same GPIOInputReader on a
/// SimulatedGPIO, the same hand-over as `Van.start` (AsyncStream, a detached task, `engine.submit`)
/// and the same EngineThread, with effects that only take the time. Ignition off/on edges.
func measurePlumbing(cycles: Int) async throws -> (handOver: Figures, engine: Figures) {
    let sim = SimulatedGPIO()
    try sim.request(
        inputs: [GPIOInputSpec(role: "ignition", line: "SIM_IGNITION", activeLow: true)],
        outputs: [GPIOOutputSpec(role: "buzzer", line: "SIM_BUZZER")])
    let table = DetectionMachine.sensorTable([])
    guard let ignition = table.firstIndex(where: { $0.id == "ignition" }) else {
        throw BenchError(description: "no ignition in the sensor table")
    }
    let effects = StampingEffects()
    let engine = EngineThread(
        machine: DetectionMachine(sensors: [], policy: Policy()), clock: EngineClock(), effects: effects)
    engine.start(powerUp: false)
    let reader = GPIOInputReader(backend: sim)
    let received = Mutex<[UInt64: UInt64]>([:])  // edge timestamp -> when the task had it
    reader.start()
    let consumer = Task.detached {
        for await event in reader.events {
            guard case .edge(let edge) = event else { continue }
            let now = monotonicNanoseconds()
            received.withLock { $0[edge.timestampNanoseconds] = now }
            engine.submit(
                EngineInput(.reading(sensor: ignition, .flag(edge.value)), atNanoseconds: edge.timestampNanoseconds))
        }
    }
    var handOver: [Double] = []
    var total: [Double] = []
    // Ignition on from parked makes no sound: get to driving first. Lines are active low.
    try sim.setInput("ignition", high: false)
    sleep(seconds: 0.05)
    var high = false
    for _ in 0..<(cycles * 2) {
        high.toggle()
        let before = effects.sounds.withLock { $0.count }
        let at = monotonicNanoseconds()
        try sim.scheduleInput("ignition", high: high, at: at &- sim.startNanoseconds)
        let deadline = at + 2_000_000_000
        while effects.sounds.withLock({ $0.count }) == before && monotonicNanoseconds() < deadline {
            sleep(seconds: 0.000_05)
        }
        if let sound = effects.sounds.withLock({ $0.count > before ? $0[before].at : nil }),
            let taken = received.withLock({ $0[at] })
        {
            handOver.append(Double(taken - at) / 1e6)
            total.append(Double(sound - at) / 1e6)
        }
        sleep(seconds: Double.random(in: 0.005...0.015))
    }
    reader.stop()
    _ = await consumer.value
    engine.stop()
    sim.close()
    return (Figures(handOver), Figures(total))
}

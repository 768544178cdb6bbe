import Detection
import GPIO
import Hardware
import Synchronization
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The running van: the config's GPIO lines and Modbus devices feeding the engine thread, whose
/// alerts go to the outbox (and from there to the center) before anything sounds, whose sounds
/// drive the buzzer, horn and hazard outputs, and whose memory is written on every transition.
public final class Van: Sendable {
    public struct Options: Sendable {
        /// Engine seconds per real second: 1 in the van; more for the demo.
        public var speed: Double = 1
        public var version: String = "0"
        public var heartbeatSeconds: Double = 300
        public init() {}
    }

    public let config: VanConfig
    public let gpio: any GPIOBackend
    public let engine: EngineThread
    public let outbox: Outbox
    public let delivery: Delivery?
    public let sounder: Sounder
    /// The GPIO lines and Modbus points, as signals.
    public let inputs: LiveInputs
    private let signalSensor: [Int]  // LiveInputs signal index -> engine sensor index
    private let log: @Sendable (LogLevel, String) -> Void
    private let clock: EngineClock
    private let started = Mutex(false)

    /// Opens everything the config names; throws when the hardware or the state folder cannot be used.
    public init(
        config: VanConfig, gpio: any GPIOBackend, center: (any CenterLink)?, options: Options = Options(),
        log: @escaping @Sendable (LogLevel, String) -> Void
    ) throws {
        self.config = config
        self.gpio = gpio
        self.log = log
        let sensors = config.sensors.map(\.spec)
        let table = DetectionMachine.sensorTable(sensors)

        // GPIO (the three built-ins, then every sensor wired to a line, and the outputs) and the
        // Modbus points, as signals; each one is a sensor of the engine's table.
        let inputs: LiveInputs
        do {
            inputs = try LiveInputs(config: config, gpio: gpio, log: log)
        } catch {
            switch error {
            case .config(let text): throw DaemonError.config(text)
            case .gpio(let gpioError): throw DaemonError.hardware("GPIO: \(gpioError.description)")
            }
        }
        self.inputs = inputs
        var signalSensor: [Int] = []
        for signal in inputs.signals {
            guard let index = table.firstIndex(where: { $0.id == signal.id }) else {
                throw DaemonError.config("signal \(signal.id) is not a sensor of the engine")
            }
            signalSensor.append(index)
        }
        self.signalSensor = signalSensor
        var outputIndex: [String: Int] = [:]
        for (index, output) in inputs.outputs.enumerated() { outputIndex[output.role] = index }

        // The outbox, and delivery when there is a center.
        let stateDirectory = config.stateDirectory
        mkdir(stateDirectory, 0o700)
        outbox = try Outbox(path: stateDirectory + "/outbox.sqlite")
        clock = EngineClock(speed: options.speed)

        // The machine: resumed from its memory when there is one.
        var machine = DetectionMachine(sensors: sensors, policy: config.policy)
        do {
            if let text = try outbox.savedState() {
                if let saved = SavedMemory.decode(text) {
                    machine = DetectionMachine(
                        sensors: sensors, policy: config.policy, resuming: saved.memory, writtenAt: saved.engineTime,
                        now: 0, elapsed: saved.elapsed * options.speed)
                    log(.notice, "resumed: \(Van.describe(machine)) (written \(Int(saved.elapsed)) s ago)")
                } else {
                    // A trip in progress (a sounding alarm) may be lost: say so where it is seen.
                    log(.error, "saved detection state unreadable (\(text.utf8.count) bytes): starting parked")
                }
            }
        } catch {
            log(.error, "saved detection state not read: \(error.description): starting parked")
        }

        let sounder = Sounder(
            backend: gpio,
            outputs: Sounder.Outputs(
                buzzer: outputIndex["buzzer"], horn: outputIndex["horn"], hazard: outputIndex["hazard"],
                statusLED: outputIndex["status_led"])
        ) { problem in log(.error, "output: \(problem)") }
        self.sounder = sounder

        let outbox = self.outbox
        let vehicle = config.vehicleId
        let clock = self.clock
        let effects = VanEffects(
            vehicle: vehicle, table: table, outbox: outbox, sounder: sounder, clock: clock,
            log: log)
        engine = EngineThread(machine: machine, clock: clock, effects: effects)

        if let center {
            var configuration = Delivery.Configuration()
            configuration.heartbeatSeconds = options.heartbeatSeconds
            let startedAt = EngineClock.monotonicNanoseconds()
            let engine = self.engine
            let version = options.version
            let delivery = Delivery(
                outbox: outbox, link: center, configuration: configuration,
                heartbeat: {
                    let machine = engine.machine
                    let health = machine.sensors.indices.map {
                        CenterAlert.SensorHealth(id: machine.sensors[$0].id, faulty: machine.isFaulty($0))
                    }
                    let uptime = Int((EngineClock.monotonicNanoseconds() - startedAt) / 1_000_000_000)
                    return CenterAlert.heartbeat(
                        vehicleID: vehicle, occurredAt: .now(), version: version, uptimeSeconds: uptime, sensors: health
                    )
                },
                log: { event in Van.journal(event, log: log) })
            self.delivery = delivery
            effects.delivery.withLock { $0 = delivery }
        } else {
            delivery = nil
        }
    }

    /// One change of a signal for the engine, from the thread that read it: the input path never
    /// waits for the Swift concurrency pool.
    private static func hand(_ change: LiveInputs.Change, to engine: EngineThread, signalSensor: [Int]) {
        switch change {
        case .reading(let signal, let reading, let at):
            engine.submit(EngineInput(.reading(sensor: signalSensor[signal], reading), atNanoseconds: at))
        case .fault(let signal, let reason, let at):
            engine.submit(EngineInput(.fault(sensor: signalSensor[signal], reason: reason), atNanoseconds: at))
        }
    }

    /// Starts every thread: the sounder (self-test chirp), the engine, the inputs, Modbus, delivery.
    public func start() {
        guard
            !started.withLock({ flag in
                defer { flag = true }; return flag
            })
        else { return }
        sounder.start()
        engine.start(powerUp: true)
        // The lines' levels now, as readings. An ignition found off at start-up starts no trip
        // (a restart keeps the trip it had in its memory): only a change of ignition does.
        if let levels = try? inputs.gpioLevels() {
            for (signal, level) in levels {
                let sensor = signalSensor[signal]
                if engine.machine.sensors[sensor].kind == .ignition && !level { continue }
                if engine.machine.sensors[sensor].kind == .button { continue }
                engine.submit(EngineInput(.reading(sensor: sensor, .flag(level))))
            }
        }
        let engine = self.engine
        let signalSensor = self.signalSensor
        inputs.start { change in Van.hand(change, to: engine, signalSensor: signalSensor) }
        delivery?.start()
    }

    /// Stops inputs first, then the engine (its last alerts are already in the outbox), delivery,
    /// and the outputs (silenced).
    public func stop() async {
        await inputs.stop()
        engine.stop()
        delivery?.stop()
        sounder.stop()
        gpio.close()
        outbox.close()
    }

    /// Turns of the GPIO reading loop and of the engine loop: the watchdog is fed only while both move.
    public var progress: (inputs: UInt64, engine: UInt64) { (inputs.turns, engine.progress) }

    /// One line for STATUS= and the journal.
    public static func describe(_ machine: DetectionMachine) -> String {
        let state: String
        switch machine.state {
        case .parked: state = "parked"
        case .driving: state = "driving"
        case .checkWindow: state = "check window open"
        case .closed: state = "watching the cabin"
        case .monitoringEnded: state = "monitoring ended"
        }
        switch machine.alarm {
        case .quiet: return state
        case .sounding(let alarm): return "\(state), ALARM level \(alarm.level) (\(alarm.reason.rawValue))"
        case .silenced: return "\(state), alarm silenced (recheck pending)"
        }
    }

    static func journal(_ event: DeliveryEvent, log: @Sendable (LogLevel, String) -> Void) {
        switch event {
        case .delivered(let id, let seq, let type, let status, let attempts):
            log(.info, "center: \(type) seq \(seq) delivered (\(status), attempt \(attempts), id \(id))")
        case .deadLettered(let id, let seq, let type, let status, let answer):
            log(.error, "center refused \(type) seq \(seq) with \(status): \(answer) (kept as a dead letter, id \(id))")
        case .retrying(_, let seq, let reason, let retryIn):
            log(.warning, "center: seq \(seq) not delivered: \(reason); retrying in \(Int(retryIn.rounded(.up))) s")
        case .heartbeatQueued(let seq):
            log(.debug, "heartbeat queued, seq \(seq)")
        case .outboxFailed(let problem):
            log(.error, "outbox: \(problem)")
        }
    }
}

/// How loud a journal line is (sd-daemon's priorities).
public enum LogLevel: Int, Sendable {
    case error = 3
    case warning = 4
    case notice = 5
    case info = 6
    case debug = 7
}

/// The engine's effects in the van.
final class VanEffects: EngineEffects {
    let vehicle: String
    let table: [SensorSpec]
    let outbox: Outbox
    let sounder: Sounder
    let clock: EngineClock
    let log: @Sendable (LogLevel, String) -> Void
    let delivery = Mutex<Delivery?>(nil)

    init(
        vehicle: String, table: [SensorSpec], outbox: Outbox, sounder: Sounder, clock: EngineClock,
        log: @escaping @Sendable (LogLevel, String) -> Void
    ) {
        self.vehicle = vehicle
        self.table = table
        self.outbox = outbox
        self.sounder = sounder
        self.clock = clock
        self.log = log
    }

    func commit(_ alerts: [Alert], memory: MachineMemory, at time: Seconds) {
        let rows = alerts.map { alert in
            // The engine's time of the alert, as wall-clock time: now, less however far behind it is.
            let behind = max(0, clock.now - alert.at) / clock.speed
            return CenterAlert(
                alert, sensorTable: table, vehicleID: vehicle, occurredAt: WallClockTime.now().adding(seconds: -behind))
        }
        do {
            let stored = try outbox.enqueue(rows, savingState: SavedMemory.encode(memory, engineTime: time))
            for (alert, row) in zip(alerts, stored) {
                log(
                    alert.type == .tripClosed || alert.level > 0 ? .notice : .info,
                    "alert queued: \(alert.type.rawValue) seq \(row.seq)")
            }
            if !stored.isEmpty { delivery.withLock { $0 }?.wake() }
        } catch {
            // The alarm still sounds: losing the record must never silence the van.
            let types = alerts.map(\.type.rawValue).joined(separator: ", ")
            log(.error, "alerts [\(types)] and the detection state NOT stored: \(error.description)")
        }
    }

    func sound(_ pattern: SoundPattern) {
        sounder.set(pattern)
        let heard: String
        switch pattern {
        case .silent: heard = "silent"
        case .selfTest: heard = "self-test chirp"
        case .reminder: heard = "reminder chimes"
        case .level1: heard = "cabin buzzer (level 1)"
        case .level2: heard = "buzzer, horn and hazard lights (level 2)"
        }
        log(.info, "sound: \(heard)")
    }

    func event(_ event: DetectionEvent, at time: Seconds) {
        switch event {
        case .reminder: log(.notice, "ignition off: reminder, check window open")
        case .checked: log(.notice, "CHECK pressed at the rear: van checked")
        case .alarm(let level, let reason):
            log(level == 2 ? .error : .warning, "ALARM level \(level) (\(reason.rawValue))")
        case .silenced: log(.notice, "alarm acknowledged at the rear button: silenced")
        case .alarmCleared: log(.notice, "alarm cleared")
        }
    }
}

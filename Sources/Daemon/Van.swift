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
    private let reader: GPIOInputReader
    private let inputSensor: [Int]  // GPIO input index -> engine sensor index
    private let log: @Sendable (LogLevel, String) -> Void
    private let modbusSensors: [String: [(point: String, sensor: Int, kind: SensorKind)]]
    private let lastModbus = Mutex<[Int: Reading]>([:])
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

        // GPIO: the three built-ins, then every sensor wired to a line.
        var inputs: [GPIOInputSpec] = []
        var inputSensor: [Int] = []
        func add(role: String, sensorID: String) throws {
            guard let line = config.profile.input(role) else {
                throw DaemonError.config("profile \(config.profile.board) has no input \(role)")
            }
            guard let index = table.firstIndex(where: { $0.id == sensorID }) else { return }
            inputs.append(
                GPIOInputSpec(
                    role: role, line: line.line, activeLow: line.activeLow, bias: Van.bias(line.bias),
                    debounceMilliseconds: UInt32(line.debounceMs)))
            inputSensor.append(index)
        }
        for role in HardwareProfile.builtInInputRoles { try add(role: role, sensorID: role) }
        for sensor in config.sensors {
            if case .gpio(let role) = sensor.source { try add(role: role, sensorID: sensor.spec.id) }
        }
        var outputs: [GPIOOutputSpec] = []
        var outputIndex: [String: Int] = [:]
        for output in config.profile.outputs {
            outputIndex[output.role] = outputs.count
            outputs.append(
                GPIOOutputSpec(role: output.role, line: output.line, activeLow: output.activeLow, initial: false))
        }
        do {
            try gpio.request(inputs: inputs, outputs: outputs)
        } catch {
            throw DaemonError.hardware("GPIO: \(error.description)")
        }
        self.inputSensor = inputSensor

        // The outbox, and delivery when there is a center.
        let stateDirectory = config.stateDirectory
        mkdir(stateDirectory, 0o700)
        outbox = try Outbox(path: stateDirectory + "/outbox.sqlite")
        clock = EngineClock(speed: options.speed)

        // The machine: resumed from its memory when there is one.
        var machine = DetectionMachine(sensors: sensors, policy: config.policy)
        if let text = try? outbox.savedState(), let saved = SavedMemory.decode(text) {
            machine = DetectionMachine(
                sensors: sensors, policy: config.policy, resuming: saved.memory, writtenAt: saved.engineTime,
                now: 0, elapsed: saved.elapsed * options.speed)
            log(.notice, "resumed: \(Van.describe(machine)) (written \(Int(saved.elapsed)) s ago)")
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

        // Modbus: one bus thread each; every point that feeds a sensor.
        var modbusSensors: [String: [(point: String, sensor: Int, kind: SensorKind)]] = [:]
        for sensor in config.sensors {
            guard case .modbus(let device, let point) = sensor.source,
                let index = table.firstIndex(where: { $0.id == sensor.spec.id })
            else { continue }
            modbusSensors[device, default: []].append((point, index, sensor.spec.kind))
        }
        self.modbusSensors = modbusSensors
        // Edges go from the reader's thread straight to the engine's queue: the input path never
        // waits for the Swift concurrency pool.
        let engineForInputs = engine
        let faulty = GPIOFaults()
        let sensorOfInput = inputSensor
        reader = GPIOInputReader(backend: gpio) { event in
            Van.hand(event, to: engineForInputs, inputSensor: sensorOfInput, faulty: faulty, log: log)
        }
    }

    /// One GPIO event for the engine: an edge as a reading (a line that had failed recovers with
    /// it), a read failure as a fault of every GPIO sensor.
    private static func hand(
        _ event: GPIOInputEvent, to engine: EngineThread, inputSensor: [Int], faulty: GPIOFaults,
        log: @Sendable (LogLevel, String) -> Void
    ) {
        switch event {
        case .edge(let edge):
            guard edge.input < inputSensor.count else { return }
            let sensor = inputSensor[edge.input]
            if faulty.remove(sensor) {
                engine.submit(
                    EngineInput(.fault(sensor: sensor, reason: nil), atNanoseconds: edge.timestampNanoseconds))
            }
            engine.submit(
                EngineInput(.reading(sensor: sensor, .flag(edge.value)), atNanoseconds: edge.timestampNanoseconds))
        case .failure(let error):
            if case .closed = error { return }
            log(.error, "GPIO: \(error.description)")
            for sensor in Set(inputSensor) where faulty.insert(sensor) {
                engine.submit(EngineInput(.fault(sensor: sensor, reason: "gpio read error")))
            }
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
        if let levels = try? gpio.readInputs() {
            for (input, level) in levels.enumerated() where input < inputSensor.count {
                let sensor = inputSensor[input]
                if engine.machine.sensors[sensor].kind == .ignition && !level { continue }
                if engine.machine.sensors[sensor].kind == .button { continue }
                engine.submit(EngineInput(.reading(sensor: sensor, .flag(level))))
            }
        }
        _ = reader.start()
        for bus in startBuses() { bus.start() }
        delivery?.start()
    }

    private func startBuses() -> [ModbusBus] {
        let engine = self.engine
        let modbusSensors = self.modbusSensors
        let log = self.log
        let buses = config.buses.map { bus in
            ModbusBus(bus) { [self] event in
                switch event {
                case .values(let device, let values, let at):
                    for (point, sensor, kind) in modbusSensors[device] ?? [] {
                        guard let value = values[point] else { continue }
                        let reading: Reading
                        switch kind {
                        case .temperature, .co2: reading = .number(value)
                        case .seat: reading = value == 0 || value == 1 ? .flag(value == 1) : .number(value)
                        default: reading = .flag(value != 0)
                        }
                        // Only changes reach the engine: a PIR read as "on" four times a second is one pulse.
                        let changed = self.lastModbus.withLock { last -> Bool in
                            defer { last[sensor] = reading }
                            return last[sensor] != reading
                        }
                        if changed { engine.submit(EngineInput(.reading(sensor: sensor, reading), atNanoseconds: at)) }
                    }
                case .fault(let device, let reason):
                    log(.warning, "Modbus device \(device): fault (\(reason))")
                    for (_, sensor, _) in modbusSensors[device] ?? [] {
                        engine.submit(EngineInput(.fault(sensor: sensor, reason: "\(reason)")))
                    }
                case .recovered(let device):
                    log(.notice, "Modbus device \(device): recovered")
                    for (_, sensor, _) in modbusSensors[device] ?? [] {
                        self.lastModbus.withLock { _ = $0.removeValue(forKey: sensor) }
                        engine.submit(EngineInput(.fault(sensor: sensor, reason: nil)))
                    }
                }
            }
        }
        runningBuses.withLock { $0 = buses }
        return buses
    }

    private let runningBuses = Mutex<[ModbusBus]>([])

    /// Stops inputs first, then the engine (its last alerts are already in the outbox), delivery,
    /// and the outputs (silenced).
    public func stop() async {
        reader.stop()
        for bus in runningBuses.withLock({ $0 }) { _ = await bus.stop() }
        engine.stop()
        delivery?.stop()
        sounder.stop()
        gpio.close()
        outbox.close()
    }

    /// Turns of the GPIO reading loop and of the engine loop: the watchdog is fed only while both move.
    public var progress: (inputs: UInt64, engine: UInt64) { (reader.turns, engine.progress) }

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

    static func bias(_ bias: LineBias) -> GPIOBias {
        switch bias {
        case .asIs: .asIs
        case .disabled: .disabled
        case .pullUp: .pullUp
        case .pullDown: .pullDown
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

/// GPIO sensors marked faulty after a read error, until their next edge.
final class GPIOFaults: Sendable {
    private let sensors = Mutex<Set<Int>>([])
    func insert(_ sensor: Int) -> Bool { sensors.withLock { $0.insert(sensor).inserted } }
    func remove(_ sensor: Int) -> Bool { sensors.withLock { $0.remove(sensor) != nil } }
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

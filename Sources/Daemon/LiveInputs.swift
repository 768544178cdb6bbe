import Detection
import GPIO
import Hardware
import Synchronization

/// The van's inputs as a trace names them, live: the config's GPIO lines (the built-ins ignition,
/// door and button, then every sensor wired to a line) and the Modbus points its sensors read,
/// each change handed to one callback with its CLOCK_MONOTONIC time. The daemon feeds its engine
/// from it; `headcount watch` shows it and `headcount record` writes it as a trace.
///
/// The lines are requested when it is made, the outputs with them (a backend requests once, all
/// or nothing), driven to inactive: this type never sets them; whoever owns `gpio` may.
public final class LiveInputs: Sendable {
    /// One input signal: its id in traces and alerts, its kind, and where it is read.
    public struct Signal: Sendable, Equatable {
        public var id: String
        public var kind: SensorKind
        public var source: Source

        public init(id: String, kind: SensorKind, source: Source) {
            self.id = id
            self.kind = kind
            self.source = source
        }
    }

    /// Where a signal is read.
    public enum Source: Sendable, Equatable {
        /// A GPIO input line, as requested: line name, active low, bias, debounce.
        case gpio(GPIOInputSpec)
        /// A point of a Modbus device on a bus.
        case modbus(bus: String, device: String, point: String)
    }

    /// One change of one signal (an index into `signals`), at CLOCK_MONOTONIC nanoseconds: the
    /// kernel's edge time for GPIO, the answer's arrival for Modbus.
    public enum Change: Sendable, Equatable {
        /// The signal now reads this. A Modbus point is reported only when its reading changes.
        case reading(signal: Int, Reading, atNanoseconds: UInt64)
        /// The signal's source failed (a Modbus device's third failed poll in a row, a GPIO read
        /// error) for `reason`; `nil` when it is back.
        case fault(signal: Int, reason: String?, atNanoseconds: UInt64)

        /// When it happened, CLOCK_MONOTONIC nanoseconds.
        public var atNanoseconds: UInt64 {
            switch self {
            case .reading(_, _, let at), .fault(_, _, let at): at
            }
        }
    }

    /// Why the inputs could not be opened.
    public enum OpenError: Error, Sendable, CustomStringConvertible {
        /// The config names a line its profile does not have.
        case config(String)
        /// The GPIO backend refused the request.
        case gpio(GPIOError)

        /// For a technician's tool (the daemon words its own message): a line another program
        /// holds is, on a van, almost always the headcount service itself.
        public var description: String {
            switch self {
            case .config(let text): text
            case .gpio(.lineBusy(let line, _, _)):
                "GPIO line \(line) is in use (is the headcount service running? stop it first: systemctl stop headcount)"
            case .gpio(let error): "GPIO: \(error.description)"
            }
        }
    }

    public let signals: [Signal]
    /// The output lines, in request order: `gpio.setOutput` takes an index into this.
    public let outputs: [GPIOOutputSpec]
    public let gpio: any GPIOBackend
    private let buses: [BusConfig]
    private let modbusDriver: any ModbusDriver
    private let router: Router
    private let running = Mutex<Running?>(nil)

    private struct Running: Sendable {
        var reader: GPIOInputReader
        var buses: [ModbusBus]
    }

    /// Requests every input of `config` and its profile's outputs (inactive) on `gpio`.
    public init(
        config: VanConfig, gpio: any GPIOBackend, modbusDriver: any ModbusDriver = LibModbusDriver(),
        log: @escaping @Sendable (LogLevel, String) -> Void
    ) throws(OpenError) {
        self.gpio = gpio
        self.modbusDriver = modbusDriver
        buses = config.buses
        let wiring: GPIOWiring
        do {
            wiring = try GPIOWiring(config)
        } catch {
            throw .config(error.description)
        }
        var signals = wiring.inputs.map { Signal(id: $0.sensorID, kind: $0.kind, source: .gpio($0.spec)) }
        let specs = wiring.inputs.map(\.spec)
        let gpioSignals = Array(signals.indices)
        var points: [String: [Router.Point]] = [:]
        for sensor in config.sensors {
            guard case .modbus(let device, let point) = sensor.source,
                let bus = config.buses.first(where: { $0.devices.contains { $0.name == device } }),
                let type = bus.devices.first(where: { $0.name == device })?.model.point(named: point)?.type
            else { continue }
            points[device, default: []].append(
                Router.Point(point: point, signal: signals.count, kind: sensor.spec.kind, type: type))
            signals.append(
                Signal(
                    id: sensor.spec.id, kind: sensor.spec.kind,
                    source: .modbus(bus: bus.name, device: device, point: point)))
        }
        self.signals = signals
        router = Router(gpioSignals: gpioSignals, modbusPoints: points, log: log)
        outputs = wiring.outputs
        do {
            try gpio.request(inputs: specs, outputs: outputs)
        } catch {
            throw .gpio(error)
        }
    }

    /// What a Modbus point's value means for a sensor of `kind`: numbers for temperature, CO2 and
    /// a seat's weight; on/off for a seat mat's bit, presence and motion.
    public static func reading(_ value: Double, kind: SensorKind, type: PointType) -> Reading {
        switch kind {
        case .temperature, .co2: return .number(value)
        case .seat:
            switch type {
            case .bit, .bitInRegister: return .flag(value != 0)
            default: return .number(value)
            }
        default: return .flag(value != 0)
        }
    }

    /// Every GPIO input's level now, as (signal, value), active low applied.
    public func gpioLevels() throws(GPIOError) -> [(signal: Int, value: Bool)] {
        let levels = try gpio.readInputs()
        return zip(router.gpioSignals, levels).map { ($0, $1) }
    }

    /// Starts the GPIO reading thread and one thread per Modbus bus; every change goes to
    /// `onChange`, called on those threads (so it must be quick and thread-safe). A second call
    /// does nothing.
    public func start(onChange: @escaping @Sendable (Change) -> Void) {
        running.withLock { running in
            guard running == nil else { return }
            let router = self.router
            let reader = GPIOInputReader(backend: gpio) { router.hand($0, onChange: onChange) }
            let buses = self.buses.map { bus in
                ModbusBus(bus, driver: modbusDriver) { router.hand($0, onChange: onChange) }
            }
            running = Running(reader: reader, buses: buses)
            reader.start()
            for bus in buses { bus.start() }
        }
    }

    /// Stops reading: the GPIO thread, then every bus (each within its longest call's timeout).
    /// The lines stay requested until `gpio.close()`.
    public func stop() async {
        guard let running = running.withLock({ $0 }) else { return }
        running.reader.stop()
        for bus in running.buses { _ = await bus.stop() }
    }

    /// Turns of the GPIO reading loop: the daemon's watchdog is fed only while this moves.
    public var turns: UInt64 { running.withLock { $0?.reader.turns } ?? 0 }

    /// Turns GPIO and Modbus events into changes of signals, on the threads that read them.
    private final class Router: Sendable {
        struct Point: Sendable {
            var point: String
            var signal: Int
            var kind: SensorKind
            var type: PointType
        }

        /// GPIO input index (request order) -> signal index.
        let gpioSignals: [Int]
        /// Modbus device -> the points its sensors read.
        let modbusPoints: [String: [Point]]
        let log: @Sendable (LogLevel, String) -> Void
        /// The last reading of each Modbus signal, so that only changes go on.
        private let lastModbus = Mutex<[Int: Reading]>([:])
        /// GPIO signals marked faulty after a read error, until their next edge.
        private let faulty = Mutex<Set<Int>>([])

        init(gpioSignals: [Int], modbusPoints: [String: [Point]], log: @escaping @Sendable (LogLevel, String) -> Void) {
            self.gpioSignals = gpioSignals
            self.modbusPoints = modbusPoints
            self.log = log
        }

        /// An edge as a reading (a line that had failed recovers with it); a read failure as a
        /// fault of every GPIO signal.
        func hand(_ event: GPIOInputEvent, onChange: @Sendable (Change) -> Void) {
            switch event {
            case .edge(let edge):
                guard edge.input < gpioSignals.count else { return }
                let signal = gpioSignals[edge.input]
                if faulty.withLock({ $0.remove(signal) != nil }) {
                    onChange(.fault(signal: signal, reason: nil, atNanoseconds: edge.timestampNanoseconds))
                }
                onChange(.reading(signal: signal, .flag(edge.value), atNanoseconds: edge.timestampNanoseconds))
            case .failure(let error):
                if case .closed = error { return }
                log(.error, "GPIO: \(error.description)")
                let now = GPIOClock.monotonicNanoseconds()
                for signal in gpioSignals where faulty.withLock({ $0.insert(signal).inserted }) {
                    onChange(.fault(signal: signal, reason: "gpio read error", atNanoseconds: now))
                }
            }
        }

        func hand(_ event: ModbusEvent, onChange: @Sendable (Change) -> Void) {
            switch event {
            case .values(let device, let values, let at):
                for point in modbusPoints[device] ?? [] {
                    guard let value = values[point.point] else { continue }
                    let reading = LiveInputs.reading(value, kind: point.kind, type: point.type)
                    // Only changes go on: a PIR read as "on" four times a second is one pulse.
                    let changed = lastModbus.withLock { last -> Bool in
                        defer { last[point.signal] = reading }
                        return last[point.signal] != reading
                    }
                    if changed { onChange(.reading(signal: point.signal, reading, atNanoseconds: at)) }
                }
            case .fault(let device, let reason):
                log(.warning, "Modbus device \(device): fault (\(reason))")
                let now = ModbusBus.monotonicNanoseconds()
                for point in modbusPoints[device] ?? [] {
                    onChange(.fault(signal: point.signal, reason: "\(reason)", atNanoseconds: now))
                }
            case .recovered(let device):
                log(.notice, "Modbus device \(device): recovered")
                let now = ModbusBus.monotonicNanoseconds()
                for point in modbusPoints[device] ?? [] {
                    // Its next reading goes on even if it is what it was before the fault.
                    lastModbus.withLock { _ = $0.removeValue(forKey: point.signal) }
                    onChange(.fault(signal: point.signal, reason: nil, atNanoseconds: now))
                }
            }
        }
    }
}

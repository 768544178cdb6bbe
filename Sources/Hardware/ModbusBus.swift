import Dispatch
import Synchronization
import Threads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a bus reports, in the order it happened on the bus.
public enum ModbusEvent: Equatable, Sendable {
    /// A good poll: every point of the device's model, decoded (raw × scale + offset), and when
    /// the answer came (`ModbusBus.monotonicNanoseconds()`, CLOCK_MONOTONIC).
    case values(device: String, values: [String: Double], atMonotonicNs: UInt64)
    /// The device failed its third poll in a row; reported once, with that poll's reason.
    case fault(device: String, reason: ModbusFaultReason)
    /// A device that was a FAULT answered a whole poll again.
    case recovered(device: String)
}

/// Counters of one device, for `diagnose`.
public struct ModbusDeviceStats: Equatable, Sendable {
    /// Polls made (each: every read of the device's model).
    public var polls = 0
    /// Polls that failed.
    public var failures = 0
    /// Polls that failed for want of a whole answer in time (each flushes the line).
    public var timeouts = 0
    public var consecutiveFailures = 0
    /// The last good poll, from its first request to its last answer, in microseconds.
    public var lastRoundTripMicroseconds: Int?
    public var lastFailure: ModbusFaultReason?
    /// What failed, with its context: the libmodbus call and error, and the unit, function,
    /// address and count it read; or the point that did not decode.
    public var lastFailureDetail: String?
    /// The reported reason, while the device is a FAULT.
    public var fault: ModbusFaultReason?

    public init() {}
}

/// Counters of one bus, for `diagnose`.
public struct ModbusBusStats: Equatable, Sendable {
    public var devices: [String: ModbusDeviceStats] = [:]
    public var connected = false
    /// Contexts opened (the first, and every reopen after a dead descriptor).
    public var connects = 0
    /// `modbus_flush` calls after timeouts, CRC errors and bad answers.
    public var flushes = 0

    public init() {}
}

/// One Modbus bus — an RS-485 line through a serial device, or a TCP gateway — and the devices on
/// it, polled by ONE thread of its own: libmodbus contexts are not thread-safe and every call
/// blocks, so none runs on the Swift concurrency pool.
///
/// Each device is polled at its own `periodMs` (the thread keeps each device's next due time and
/// polls whichever is due first), with its own response timeout, through its model's contiguous
/// reads. After a timeout, a CRC error or a bad answer the bus calls `modbus_flush`; after a dead
/// descriptor (device unplugged, TCP peer gone) it closes the context and reopens it with a
/// bounded backoff, never through libmodbus's own link recovery. A device failing three polls in
/// a row is reported as a FAULT once; its next good poll, as recovered. While a FAULT, a device is
/// polled at most every `Options.faultedPeriodMs`, so a dead device costs the others little.
///
/// Events go to `onEvent`, called on the bus thread in the order they happen; it must return
/// quickly. To read them as an `AsyncStream`:
///
///     let (events, continuation) = AsyncStream.makeStream(of: ModbusEvent.self)
///     let bus = ModbusBus(config, onEvent: { continuation.yield($0) })
public final class ModbusBus: Sendable {
    /// Tuning of the bus's recovery; the defaults suit a van.
    public struct Options: Equatable, Sendable {
        /// Polls failed in a row that make a device a FAULT.
        public var failuresForFault: Int
        /// How often a FAULT device is still polled, at most.
        public var faultedPeriodMs: Int
        /// The first and the longest wait between reopen attempts of a dead context.
        public var reconnectBackoffMs: ClosedRange<Int>

        public init(
            failuresForFault: Int = 3, faultedPeriodMs: Int = 1000, reconnectBackoffMs: ClosedRange<Int> = 100...2000
        ) {
            self.failuresForFault = failuresForFault
            self.faultedPeriodMs = faultedPeriodMs
            self.reconnectBackoffMs = max(1, reconnectBackoffMs.lowerBound)...max(1, reconnectBackoffMs.upperBound)
        }
    }

    public let config: BusConfig
    public let options: Options
    private let driver: any ModbusDriver
    private let onEvent: @Sendable (ModbusEvent) -> Void
    private let shared: ModbusBusShared

    public init(
        _ config: BusConfig, options: Options = Options(), driver: any ModbusDriver = LibModbusDriver(),
        onEvent: @escaping @Sendable (ModbusEvent) -> Void
    ) {
        self.config = config
        self.options = options
        self.driver = driver
        self.onEvent = onEvent
        var stats = ModbusBusStats()
        for device in config.devices { stats.devices[device.name] = ModbusDeviceStats() }
        self.shared = ModbusBusShared(stats: stats)
    }

    deinit { shared.requestStop() }

    /// The longest one blocking call of this bus can take: `stop()` returns within about this.
    public var longestCallMilliseconds: Int { config.devices.map(\.timeoutMs).max() ?? 0 }

    /// Starts the bus's thread. A second call does nothing.
    public func start() {
        guard shared.markStarted() else { return }
        let config = config
        let options = options
        let driver = driver
        let shared = shared
        let onEvent = onEvent
        let started = OwnedThread.start(name: "modbus \(config.name)") {
            let loop = ModbusBusLoop(config: config, options: options, driver: driver, shared: shared, emit: onEvent)
            loop.run()
            shared.markFinished()
        }
        switch started {
        case .success(let thread):
            // Never joined: stop() waits for markFinished, with a bound.
            OwnedThread.detach(thread)
        case .failure(let error):
            // No thread, no polls: each device is a FAULT at once rather than silently never read.
            for device in config.devices {
                onEvent(.fault(device: device.name, reason: .other(ModbusErrorCode(error.code))))
            }
            shared.markFinished()
        }
    }

    /// Stops polling and closes the context. Returns once the bus thread has ended (true), or
    /// after the longest call's timeout plus a second if it has not (false): the call in flight
    /// ends on its own response timeout, and the thread right after it.
    @discardableResult
    public func stop() async -> Bool {
        shared.requestStop()
        let bound = Duration.milliseconds(longestCallMilliseconds + 1000)
        let shared = shared
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            guard let waiter = shared.addStopWaiter(continuation) else { return }
            let timer = Task {
                try? await Task.sleep(for: bound)
                shared.resumeStopWaiter(waiter, ended: false)
            }
            shared.setStopTimer(timer, for: waiter)
        }
    }

    /// A snapshot of the bus's counters.
    public func stats() -> ModbusBusStats { shared.stats.withLock { $0 } }

    /// CLOCK_MONOTONIC in nanoseconds: the clock of `ModbusEvent.values`.
    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// What the bus thread and its callers share, each part behind its own lock.
final class ModbusBusShared: Sendable {
    struct Control {
        var started = false
        var stopRequested = false
        var finished = false
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        /// The timers bounding each waiter, cancelled when the thread ends first.
        var timers: [Int: Task<Void, Never>] = [:]
    }

    let control = Mutex(Control())
    let stats: Mutex<ModbusBusStats>
    /// Signalled by `requestStop()`: the bus thread sleeps on it between polls.
    let wakeup = DispatchSemaphore(value: 0)

    init(stats: ModbusBusStats) { self.stats = Mutex(stats) }

    var stopRequested: Bool { control.withLock { $0.stopRequested } }

    func markStarted() -> Bool {
        control.withLock { control in
            guard !control.started, !control.stopRequested else { return false }
            control.started = true
            return true
        }
    }

    func requestStop() {
        let neverStarted = control.withLock { control in
            control.stopRequested = true
            return !control.started
        }
        wakeup.signal()
        if neverStarted { markFinished() }
    }

    func markFinished() {
        let (waiters, timers) = control.withLock { control in
            control.finished = true
            defer {
                control.waiters = [:]
                control.timers = [:]
            }
            return (Array(control.waiters.values), Array(control.timers.values))
        }
        for timer in timers { timer.cancel() }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Registers a waiter for the thread's end; nil (resumed already) when it has ended.
    func addStopWaiter(_ continuation: CheckedContinuation<Bool, Never>) -> Int? {
        let id: Int? = control.withLock { control in
            guard !control.finished else { return nil }
            control.nextWaiter += 1
            control.waiters[control.nextWaiter] = continuation
            return control.nextWaiter
        }
        if id == nil { continuation.resume(returning: true) }
        return id
    }

    func setStopTimer(_ timer: Task<Void, Never>, for id: Int) {
        let pending = control.withLock { control in
            guard control.waiters[id] != nil else { return false }
            control.timers[id] = timer
            return true
        }
        if !pending { timer.cancel() }
    }

    func resumeStopWaiter(_ id: Int, ended: Bool) {
        let waiter = control.withLock { control in
            control.timers[id] = nil
            return control.waiters.removeValue(forKey: id)
        }
        waiter?.resume(returning: ended)
    }
}

/// The bus thread's own state: the context, the schedule, each device's health. Created on the
/// bus thread and never leaves it.
final class ModbusBusLoop {
    struct Device {
        let config: DeviceConfig
        let reads: [RegisterRead]
        var due: UInt64
        var health: ModbusDeviceHealth
    }

    enum PollResult {
        case values([String: Double], roundTripNanoseconds: UInt64)
        case failed(ModbusFaultReason, detail: String)
        case stopped
    }

    let config: BusConfig
    let options: Options
    let driver: any ModbusDriver
    let shared: ModbusBusShared
    let emit: @Sendable (ModbusEvent) -> Void
    let serial: Bool
    let connectTimeoutMicroseconds: Int

    var devices: [Device]
    var context: (any ModbusContext)?
    /// Set after a failed or lost connection: no reopen before `notBefore`; the next failed reopen
    /// waits `backoffMs` (doubling up to the options' bound).
    var reconnect: (notBefore: UInt64, backoffMs: Int, reason: ModbusFaultReason, detail: String)?
    /// Flush before the next request: a late answer may have arrived after the last flush.
    var lineDirty = false
    var registers: [UInt16]
    var bits: [UInt8]

    typealias Options = ModbusBus.Options

    init(
        config: BusConfig, options: Options, driver: any ModbusDriver, shared: ModbusBusShared,
        emit: @escaping @Sendable (ModbusEvent) -> Void
    ) {
        self.config = config
        self.options = options
        self.driver = driver
        self.shared = shared
        self.emit = emit
        if case .rtu = config.transport { serial = true } else { serial = false }
        connectTimeoutMicroseconds = (config.devices.map(\.timeoutMs).max() ?? 200) * 1000
        let now = ModbusBus.monotonicNanoseconds()
        devices = config.devices.map {
            Device(
                config: $0, reads: $0.model.reads, due: now,
                health: ModbusDeviceHealth(failuresForFault: options.failuresForFault))
        }
        let longest = devices.flatMap(\.reads).map(\.count).max() ?? 1
        registers = Array(repeating: 0, count: longest)
        bits = Array(repeating: 0, count: longest)
    }

    func run() {
        defer { closeContext() }
        while !shared.stopRequested, !devices.isEmpty {
            var index = 0
            for candidate in devices.indices where devices[candidate].due < devices[index].due { index = candidate }
            let now = ModbusBus.monotonicNanoseconds()
            if devices[index].due > now {
                _ = shared.wakeup.wait(timeout: .now() + .nanoseconds(Int(devices[index].due - now)))
                continue
            }
            let result = poll(devices[index])
            let finished = ModbusBus.monotonicNanoseconds()
            switch result {
            case .stopped: return
            case .values(let values, let roundTrip):
                succeeded(index, values: values, roundTripNanoseconds: roundTrip, at: finished)
            case .failed(let reason, let detail): failed(index, reason: reason, detail: detail)
            }
            // Next due one period after this one was due; a device that fell behind is not
            // polled in a burst to catch up.
            var periodMs = devices[index].config.periodMs
            if devices[index].health.fault != nil { periodMs = max(periodMs, options.faultedPeriodMs) }
            let due = devices[index].due + UInt64(periodMs) * 1_000_000
            devices[index].due = max(due, finished)
        }
    }

    private func succeeded(_ index: Int, values: [String: Double], roundTripNanoseconds: UInt64, at finished: UInt64) {
        let name = devices[index].config.name
        let action = devices[index].health.pollSucceeded()
        shared.stats.withLock { stats in
            stats.devices[name, default: ModbusDeviceStats()].polls += 1
            stats.devices[name]?.consecutiveFailures = 0
            stats.devices[name]?.fault = nil
            stats.devices[name]?.lastRoundTripMicroseconds = Int(roundTripNanoseconds / 1000)
        }
        if action == .reportRecovered { emit(.recovered(device: name)) }
        emit(.values(device: name, values: values, atMonotonicNs: finished))
    }

    private func failed(_ index: Int, reason: ModbusFaultReason, detail: String) {
        let name = devices[index].config.name
        let action = devices[index].health.pollFailed(reason)
        let health = devices[index].health
        shared.stats.withLock { stats in
            stats.devices[name, default: ModbusDeviceStats()].polls += 1
            stats.devices[name]?.failures += 1
            if reason == .timeout { stats.devices[name]?.timeouts += 1 }
            stats.devices[name]?.consecutiveFailures = health.consecutiveFailures
            stats.devices[name]?.lastFailure = reason
            stats.devices[name]?.lastFailureDetail = detail
            stats.devices[name]?.fault = health.fault
        }
        if case .reportFault(let reason) = action { emit(.fault(device: name, reason: reason)) }
    }

    /// One poll of one device: every read of its model, then every point decoded.
    private func poll(_ device: Device) -> PollResult {
        let context: any ModbusContext
        switch connected() {
        case .open(let open): context = open
        case .closed(let reason, let detail): return .failed(reason, detail: detail)
        }
        if lineDirty {
            lineDirty = false
            if let (reason, detail) = flush(context) { return .failed(reason, detail: detail) }
        }
        var values: [String: Double] = [:]
        let points = device.config.model.points
        var current: RegisterRead?
        let started = ModbusBus.monotonicNanoseconds()
        do throws(ModbusError) {
            try context.setSlave(device.config.unit)
            try context.setResponseTimeout(microseconds: device.config.timeoutMs * 1000)
            for read in device.reads {
                if shared.stopRequested { return .stopped }
                current = read
                switch read.function {
                case .coils: try context.readBits(address: read.address, count: read.count, into: &bits)
                case .discreteInputs:
                    try context.readInputBits(address: read.address, count: read.count, into: &bits)
                case .holdingRegisters:
                    try context.readRegisters(address: read.address, count: read.count, into: &registers)
                case .inputRegisters:
                    try context.readInputRegisters(address: read.address, count: read.count, into: &registers)
                }
                for index in read.points {
                    let point = points[index]
                    let offset = point.address - read.address
                    let value: Double?
                    if read.function.readsBits {
                        value = offset < read.count ? point.decode(bit: bits[offset] != 0) : nil
                    } else {
                        let end = offset + point.span
                        value = end <= read.count ? point.decode(registers: registers[offset..<end]) : nil
                    }
                    // A value that does not decode (a NaN float) is bad data: the poll fails.
                    guard let value else {
                        return .failed(
                            .badData, detail: "point \(point.name) at address \(point.address) does not decode")
                    }
                    // So is one outside the model's sane range: a broken or unplugged probe's
                    // reading, which must not raise (or escalate) an alarm.
                    if let range = point.saneRange, !range.contains(value) {
                        return .failed(
                            .outOfRange,
                            detail:
                                "point \(point.name) at address \(point.address) reads \(value), outside \(range.lowerBound)…\(range.upperBound)"
                        )
                    }
                    values[point.name] = value
                }
            }
        } catch {
            let reason = recover(from: error, context: context)
            var place = "unit \(device.config.unit)"
            if let current {
                place += ", function \(current.function.rawValue), address \(current.address), count \(current.count)"
            }
            return .failed(reason, detail: "\(error) (\(place))")
        }
        return .values(values, roundTripNanoseconds: ModbusBus.monotonicNanoseconds() - started)
    }

    /// Applies the recovery an error calls for; returns its fault reason.
    private func recover(from error: ModbusError, context: any ModbusContext) -> ModbusFaultReason {
        let (reason, recovery) = error.classify(serial: serial)
        switch recovery {
        case .none: break
        case .flush:
            if let (lost, _) = flush(context) { return lost }
            lineDirty = true
        case .reconnect:
            closeContext()
            reconnect = (ModbusBus.monotonicNanoseconds(), options.reconnectBackoffMs.lowerBound, reason, "\(error)")
        }
        return reason
    }

    /// `modbus_flush`; a dead descriptor found by it closes the context (and its reason is returned).
    private func flush(_ context: any ModbusContext) -> (ModbusFaultReason, String)? {
        shared.stats.withLock { $0.flushes += 1 }
        do {
            try context.flush()
            return nil
        } catch {
            let (reason, recovery) = error.classify(serial: serial)
            guard recovery == .reconnect else { return nil }
            closeContext()
            reconnect = (ModbusBus.monotonicNanoseconds(), options.reconnectBackoffMs.lowerBound, reason, "\(error)")
            return (reason, "\(error)")
        }
    }

    enum Connection {
        case open(any ModbusContext)
        case closed(ModbusFaultReason, detail: String)
    }

    /// The open context, opening one if it is due; or why there is none.
    private func connected() -> Connection {
        if let context { return .open(context) }
        let now = ModbusBus.monotonicNanoseconds()
        if let reconnect, now < reconnect.notBefore { return .closed(reconnect.reason, detail: reconnect.detail) }
        do throws(ModbusError) {
            let opened = try driver.connect(config.transport, timeoutMicroseconds: connectTimeoutMicroseconds)
            if case .rtu(_, _, _, _, _, let rs485) = config.transport, rs485 {
                do throws(ModbusError) {
                    try opened.setSerialModeRS485()
                } catch {
                    opened.close()
                    throw error
                }
            }
            context = opened
            reconnect = nil
            // Whatever waited in the tty's buffers belongs to nobody.
            lineDirty = true
            shared.stats.withLock { stats in
                stats.connects += 1
                stats.connected = true
            }
            return .open(opened)
        } catch {
            let reason = error.classify(serial: serial).reason
            let wait = reconnect?.backoffMs ?? options.reconnectBackoffMs.lowerBound
            let next = min(wait * 2, options.reconnectBackoffMs.upperBound)
            let detail = "\(error) (\(Self.describe(config.transport)))"
            reconnect = (ModbusBus.monotonicNanoseconds() + UInt64(wait) * 1_000_000, next, reason, detail)
            return .closed(reason, detail: detail)
        }
    }

    static func describe(_ transport: BusConfig.Transport) -> String {
        switch transport {
        case .rtu(let device, let baud, let parity, let dataBits, let stopBits, let rs485):
            "\(device) \(baud) \(parity) \(dataBits)\(stopBits == 2 ? " 2 stop bits" : "")\(rs485 ? " RS-485" : "")"
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }

    private func closeContext() {
        guard let context else { return }
        self.context = nil
        context.close()
        shared.stats.withLock { $0.connected = false }
    }
}

import Detection
import Synchronization
import Threads
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The engine's time: seconds on the monotonic clock since the daemon started, times `speed`
/// (1 in the van; more for the demo and tests, so that a 120 s check window passes in seconds).
public struct EngineClock: Sendable {
    public let startNanoseconds: UInt64
    public let speed: Double

    public init(startNanoseconds: UInt64 = EngineClock.monotonicNanoseconds(), speed: Double = 1) {
        self.startNanoseconds = startNanoseconds
        self.speed = max(speed, 0.001)
    }

    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// Engine seconds at a monotonic timestamp (a kernel edge timestamp, a Modbus answer).
    public func seconds(atNanoseconds nanoseconds: UInt64) -> Seconds {
        let elapsed = nanoseconds >= startNanoseconds ? Double(nanoseconds - startNanoseconds) : 0
        return elapsed / 1e9 * speed
    }

    public var now: Seconds { seconds(atNanoseconds: Self.monotonicNanoseconds()) }

    /// Real seconds until the engine reaches `deadline`.
    public func realSeconds(until deadline: Seconds) -> Double { max(0, (deadline - now) / speed) }
}

/// One input for the engine, stamped with the monotonic time it happened.
public struct EngineInput: Sendable {
    public var input: Input
    public var atNanoseconds: UInt64

    public init(_ input: Input, atNanoseconds: UInt64 = EngineClock.monotonicNanoseconds()) {
        self.input = input
        self.atNanoseconds = atNanoseconds
    }
}

/// Where the engine's actions go. Called on the engine thread, in this order for each batch: the
/// batch's alerts together with the machine's new memory (one durable commit, before anything
/// sounds), then the sound, then the events.
public protocol EngineEffects: AnyObject, Sendable {
    /// Stores `alerts` and `memory` together: both or neither survive a crash.
    func commit(_ alerts: [Alert], memory: MachineMemory, at time: Seconds)
    func sound(_ pattern: SoundPattern)
    func event(_ event: DetectionEvent, at time: Seconds)
}

/// Runs the detection machine on one thread of its own: inputs are queued to it from the GPIO
/// reader and the Modbus buses, the timers it asks for run on the (scaled) monotonic clock, and its
/// actions go to `effects`. Nothing else touches the machine.
public final class EngineThread: Sendable {
    private struct Shared {
        var queue: [EngineInput] = []
        var stopping = false
        var progress: UInt64 = 0
        var machine: DetectionMachine
    }

    public let clock: EngineClock
    private let effects: any EngineEffects
    private let shared: Mutex<Shared>
    private let signal = WakeSignal()
    private let thread = Mutex<pthread_t?>(nil)

    public init(machine: DetectionMachine, clock: EngineClock, effects: any EngineEffects) {
        self.clock = clock
        self.effects = effects
        shared = Mutex(Shared(machine: machine))
    }

    /// Queues an input; the engine thread takes it at once.
    public func submit(_ input: EngineInput) {
        shared.withLock { $0.queue.append(input) }
        signal.notify()
    }

    /// Counts turns of the engine loop: the watchdog is fed only while this moves.
    public var progress: UInt64 { shared.withLock { $0.progress } }

    /// A copy of the machine as it is now (for status lines and tests).
    public var machine: DetectionMachine { shared.withLock { $0.machine } }

    /// Starts the engine thread; with `powerUp`, the self-test chirp first (then the state's own
    /// sound: a resumed alarm sounds again), before the thread takes the machine over.
    public func start(powerUp: Bool) {
        if powerUp {
            var actions: [Action] = []
            shared.withLock { $0.machine.powerUp(into: &actions) }
            for case .sound(let pattern) in actions { effects.sound(pattern) }
        }
        guard case .success(let handle) = OwnedThread.start(name: "engine", { [self] in run() }) else { return }
        thread.withLock { $0 = handle }
    }

    /// Stops the loop after the input in hand; returns once the thread has ended.
    public func stop() {
        shared.withLock { $0.stopping = true }
        signal.notify()
        let handle = thread.withLock { handle -> pthread_t? in
            defer { handle = nil }
            return handle
        }
        if let handle { OwnedThread.join(handle) }
    }

    private func run() {
        var machine = shared.withLock { $0.machine }
        var timers = TimerTable(sensorCount: machine.sensors.count)
        var actions: [Action] = []
        actions.reserveCapacity(32)
        var now = clock.now
        // After a restart the machine's timers come from its state; an alarm that was sounding
        // sounds again.
        for (timer, deadline) in machine.pendingTimers { timers.apply(.startTimer(timer, at: deadline)) }
        effects.sound(machine.currentSound)

        while true {
            let (inputs, stopping) = shared.withLock { shared -> ([EngineInput], Bool) in
                defer { shared.queue.removeAll(keepingCapacity: true) }
                return (shared.queue, shared.stopping)
            }
            if stopping { break }
            for input in inputs {
                let at = max(now, clock.seconds(atNanoseconds: input.atNanoseconds))
                fireTimers(&machine, &timers, &actions, upTo: at, inclusive: false, now: &now)
                now = max(now, at)
                machine.handle(input.input, at: now, into: &actions)
                apply(&actions, to: &timers, machine: machine, at: now)
            }
            let caughtUp = fireTimersDueNow(&machine, &timers, &actions, now: &now)
            shared.withLock {
                $0.machine = machine
                $0.progress &+= 1
            }
            // Inputs are waiting: they go first, without sleeping.
            guard caughtUp else { continue }
            let wait = timers.nextDeadline().map { clock.realSeconds(until: $0) } ?? 1
            signal.wait(seconds: min(wait, 1))
        }
    }

    /// Fires the timers due by the clock's now, in order, and returns true; but returns false, with
    /// the rest left pending, as soon as an input is queued. An input in the queue happened before
    /// the clock's now (it is stamped when it happens) and may be older than those timers: it
    /// reached the queue while the engine was busy, most often in a commit waiting for the disk. It
    /// is taken first, with the timers due before it, as replay would order them; otherwise a CHECK
    /// pressed in time during a slow commit would count as late, after a check_missed alarm.
    ///
    /// `now` moves to the deadlines fired, not to the clock: the machine's time is that of the last
    /// thing that happened to it. An input that comes late (its thread was held up) then still
    /// goes at its own time if nothing happened since, so a press and its release handed on
    /// together keep the time between them: squashed to the clock, the hold would last nothing.
    private func fireTimersDueNow(
        _ machine: inout DetectionMachine, _ timers: inout TimerTable, _ actions: inout [Action], now: inout Seconds
    ) -> Bool {
        let until = max(now, clock.now)
        while !inputsWaiting {
            guard let (timer, deadline) = timers.popDue(before: until, inclusive: true) else { return true }
            now = max(now, deadline)
            machine.timerFired(timer, at: now, into: &actions)
            apply(&actions, to: &timers, machine: machine, at: now)
        }
        return false
    }

    private var inputsWaiting: Bool { shared.withLock { !$0.queue.isEmpty } }

    private func fireTimers(
        _ machine: inout DetectionMachine, _ timers: inout TimerTable, _ actions: inout [Action], upTo time: Seconds,
        inclusive: Bool, now: inout Seconds
    ) {
        while let (timer, deadline) = timers.popDue(before: time, inclusive: inclusive) {
            now = max(now, deadline)
            machine.timerFired(timer, at: now, into: &actions)
            apply(&actions, to: &timers, machine: machine, at: now)
        }
    }

    /// Carries out one batch: timers into the table; the alerts and the memory committed together
    /// whenever the batch held an event or an alert; then the sound, then the events.
    private func apply(
        _ actions: inout [Action], to timers: inout TimerTable, machine: DetectionMachine, at now: Seconds
    ) {
        guard !actions.isEmpty else { return }
        var alerts: [Alert] = []
        var transition = false
        for action in actions {
            switch action {
            case .startTimer, .cancelTimer: timers.apply(action)
            case .queueAlert(let alert): alerts.append(alert)
            case .event: transition = true
            case .sound: break
            }
        }
        if transition || !alerts.isEmpty { effects.commit(alerts, memory: machine.memory, at: now) }
        for case .sound(let pattern) in actions { effects.sound(pattern) }
        for case .event(let event, let at) in actions { effects.event(event, at: at) }
        actions.removeAll(keepingCapacity: true)
    }
}

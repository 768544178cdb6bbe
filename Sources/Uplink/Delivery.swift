import Detection
import Synchronization
import Threads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the center said to one POST, or why there was no answer.
public enum CenterAnswer: Sendable, Equatable {
    case status(Int, body: [UInt8], retryAfterSeconds: Int?)
    /// No HTTP answer: DNS, TCP, TLS, a timeout. The text says what a technician should look at.
    case failed(String)
}

/// Where the outbox's alerts go: the center over HTTPS, or a stand-in in tests.
public protocol CenterLink: Sendable {
    /// POSTs one alert's JSON; blocks the calling thread (the delivery thread) until the answer.
    func deliver(body: [UInt8], idempotencyKey: String) -> CenterAnswer
    /// Aborts a POST in progress (the daemon is stopping): its alert stays in the outbox.
    func interrupt()
}

extension CenterLink {
    public func interrupt() {}
}

extension HTTPSClient: CenterLink {
    public func interrupt() { shutdown() }

    public func deliver(body: [UInt8], idempotencyKey: String) -> CenterAnswer {
        do {
            let response = try sendBlocking(body: body, idempotencyKey: idempotencyKey)
            return .status(response.status, body: response.body, retryAfterSeconds: response.retryAfterSeconds)
        } catch {
            return .failed(error.description)
        }
    }
}

/// What delivery tells the journal.
public enum DeliveryEvent: Sendable, Equatable {
    case delivered(id: String, seq: Int, type: String, status: Int, attempts: Int)
    /// A 4xx other than 408, 425 or 429: the center will never take it; kept in the dead-letter table.
    case deadLettered(id: String, seq: Int, type: String, status: Int, answer: String)
    /// The center could not be reached or asked to retry; the next try is in `retryIn` seconds.
    case retrying(id: String, seq: Int, reason: String, retryIn: Double)
    case heartbeatQueued(seq: Int)
    /// The outbox itself failed (disk full, damaged file).
    case outboxFailed(String)
}

/// Delivers the outbox to the center, at least once and in order: alarms first, then the rest by
/// seq, on a thread of its own.
///
/// 2xx and 409 (the center has it already) delete the alert. 408, 425, 429, 5xx, other answers and
/// no answer at all keep it at the head and back off — 1 s, 2 s, 4 s … up to 60 s, each with
/// jitter in its upper half — so nothing overtakes an alert the center has not taken yet. Any
/// other 4xx moves it to the dead-letter table and the journal, never into a retry loop. A new
/// alarm cuts a backoff short: when the link is back, it goes at once.
public final class Delivery: Sendable {
    public struct Configuration: Sendable {
        public var firstBackoffSeconds: Double = 1
        public var maxBackoffSeconds: Double = 60
        /// A heartbeat is queued this often; 0 turns heartbeats off (tests).
        public var heartbeatSeconds: Double = 300
        public init() {}
    }

    private struct State {
        var stopping = false
        var running = false
        var wakeRequested = false
        var consecutiveFailures = 0
        var delivered = 0
        var lastProblem: String?
    }

    private let outbox: Outbox
    private let link: any CenterLink
    private let configuration: Configuration
    private let heartbeat: @Sendable () -> CenterAlert
    private let log: @Sendable (DeliveryEvent) -> Void
    private let state = Mutex(State())
    private let signal = WakeSignal()
    private let thread = Mutex<pthread_t?>(nil)

    /// `heartbeat` builds the next heartbeat (version, uptime, sensor health); the outbox fills in
    /// its depth when it stores it.
    public init(
        outbox: Outbox, link: any CenterLink, configuration: Configuration = Configuration(),
        heartbeat: @escaping @Sendable () -> CenterAlert, log: @escaping @Sendable (DeliveryEvent) -> Void
    ) {
        self.outbox = outbox
        self.link = link
        self.configuration = configuration
        self.heartbeat = heartbeat
        self.log = log
    }

    deinit { stop() }

    /// Alerts delivered since start.
    public var deliveredCount: Int { state.withLock { $0.delivered } }
    /// Failures in a row now (0 when the link works).
    public var consecutiveFailures: Int { state.withLock { $0.consecutiveFailures } }
    /// What went wrong last, if the link is failing.
    public var lastProblem: String? { state.withLock { $0.lastProblem } }

    /// Starts the delivery thread.
    public func start() {
        let already = state.withLock { state -> Bool in
            defer { state.running = true }
            return state.running
        }
        guard !already else { return }
        switch OwnedThread.start(name: "delivery", { [self] in run() }) {
        case .success(let handle):
            thread.withLock { $0 = handle }
        case .failure(let error):
            state.withLock { $0.running = false }
            log(.outboxFailed("cannot start the delivery thread: \(error)"))
        }
    }

    /// A new alert is in the outbox: deliver it now, even in the middle of a backoff.
    public func wake() {
        state.withLock { $0.wakeRequested = true }
        signal.notify()
    }

    /// Stops the thread at once: a POST in progress is aborted (its alert stays in the outbox and
    /// goes again after the restart; the center dedupes it by id). The link cannot be used after.
    public func stop() {
        state.withLock { $0.stopping = true }
        signal.notify()
        link.interrupt()
        let handle = thread.withLock { handle -> pthread_t? in
            defer { handle = nil }
            return handle
        }
        if let handle, !pthread_equal(handle, pthread_self()).isTrue {
            OwnedThread.join(handle)
        }
    }

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func run() {
        var nextHeartbeat = monotonicSeconds() + configuration.heartbeatSeconds
        while !stopping {
            if configuration.heartbeatSeconds > 0, monotonicSeconds() >= nextHeartbeat {
                nextHeartbeat = monotonicSeconds() + configuration.heartbeatSeconds
                do {
                    let stored = try outbox.enqueue(heartbeat())
                    log(.heartbeatQueued(seq: stored.seq))
                } catch {
                    log(.outboxFailed(error.description))
                }
            }
            let entry: Outbox.Entry?
            do {
                entry = try outbox.nextDue(now: .now())
            } catch {
                log(.outboxFailed(error.description))
                pause(seconds: 5, untilHeartbeat: nextHeartbeat)
                continue
            }
            guard let entry else {
                pause(seconds: .infinity, untilHeartbeat: nextHeartbeat)
                continue
            }
            let answer = link.deliver(body: Array(entry.body.utf8), idempotencyKey: entry.id)
            handle(answer, for: entry, nextHeartbeat: nextHeartbeat)
        }
    }

    private func handle(_ answer: CenterAnswer, for entry: Outbox.Entry, nextHeartbeat: Double) {
        switch answer {
        case .status(let status, _, _) where (200..<300).contains(status) || status == 409:
            do {
                _ = try outbox.markDelivered(id: entry.id)
                state.withLock {
                    $0.consecutiveFailures = 0
                    $0.delivered += 1
                    $0.lastProblem = nil
                }
                log(
                    .delivered(
                        id: entry.id, seq: entry.seq, type: entry.typeName, status: status, attempts: entry.attempts + 1
                    ))
            } catch {
                log(.outboxFailed(error.description))
            }
        case .status(let status, let body, _) where (400..<500).contains(status) && ![408, 425, 429].contains(status):
            let answer = String(decoding: body.prefix(1024), as: UTF8.self)
            do {
                _ = try outbox.deadLetter(id: entry.id, status: status, answer: answer)
                log(.deadLettered(id: entry.id, seq: entry.seq, type: entry.typeName, status: status, answer: answer))
            } catch {
                log(.outboxFailed(error.description))
            }
        case .status(let status, _, let retryAfter):
            backOff(
                entry, reason: "the center answered \(status)", atLeast: Double(retryAfter ?? 0),
                nextHeartbeat: nextHeartbeat)
        case .failed(let reason):
            backOff(entry, reason: reason, atLeast: 0, nextHeartbeat: nextHeartbeat)
        }
    }

    private func backOff(_ entry: Outbox.Entry, reason: String, atLeast floor: Double, nextHeartbeat: Double) {
        let failures = state.withLock { state -> Int in
            state.consecutiveFailures += 1
            state.lastProblem = reason
            return state.consecutiveFailures
        }
        let delay = max(
            min(Self.backoff(failures: failures, configuration: configuration), configuration.maxBackoffSeconds),
            min(floor, configuration.maxBackoffSeconds))
        do {
            // The entry stays due (it keeps its place at the head); only its attempts are counted.
            _ = try outbox.deferRetry(id: entry.id, until: .now())
        } catch {
            log(.outboxFailed(error.description))
        }
        log(.retrying(id: entry.id, seq: entry.seq, reason: reason, retryIn: delay))
        state.withLock { $0.wakeRequested = false }
        pause(seconds: delay, untilHeartbeat: nextHeartbeat)
    }

    /// 1, 2, 4 … seconds (capped), each drawn from the upper half of its step so vans that lost
    /// the link together do not come back together.
    public static func backoff(failures: Int, configuration: Configuration, random: Double = Double.random(in: 0...1))
        -> Double
    {
        let step = configuration.firstBackoffSeconds * Double(1 << min(max(failures - 1, 0), 16))
        let capped = min(step, configuration.maxBackoffSeconds)
        return capped / 2 + capped / 2 * random
    }

    /// Sleeps up to `seconds`, but no later than the next heartbeat, and wakes for `wake()` or `stop()`.
    private func pause(seconds: Double, untilHeartbeat nextHeartbeat: Double) {
        var deadline = monotonicSeconds() + seconds
        if configuration.heartbeatSeconds > 0 { deadline = min(deadline, nextHeartbeat) }
        while true {
            let woken = state.withLock { state -> Bool in
                defer { state.wakeRequested = false }
                return state.wakeRequested || state.stopping
            }
            if woken { return }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return }
            signal.wait(seconds: min(remaining, 3600))
        }
    }
}

/// A condition variable on the monotonic clock, for a thread that sleeps until told or timed out
/// (the delivery thread here, the engine thread in the daemon). Spurious and missed wake-ups are
/// harmless: callers check their own state before and after.
public final class WakeSignal: @unchecked Sendable {
    // @unchecked: the pthread mutex and condition live in memory this object owns for its whole
    // life and are only touched through pthread calls, which are thread-safe.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending = false

    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func notify() {
        pthread_mutex_lock(mutex)
        pending = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    public func wait(seconds: Double) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let target = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 + max(seconds, 0)
        var deadline = timespec(tv_sec: Int(target), tv_nsec: Int((target - Double(Int(target))) * 1e9))
        pthread_mutex_lock(mutex)
        if !pending { _ = pthread_cond_timedwait(condition, mutex, &deadline) }
        pending = false
        pthread_mutex_unlock(mutex)
    }
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

extension Int32 {
    fileprivate var isTrue: Bool { self != 0 }
}

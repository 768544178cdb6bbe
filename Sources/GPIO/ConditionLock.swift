import Glibc

/// A value guarded by a pthread mutex, with a condition variable on CLOCK_MONOTONIC so a thread
/// can sleep until the value changes or a monotonic deadline passes. `Synchronization.Mutex` has
/// no condition variable, hence this.
final class ConditionLock<State: Sendable>: @unchecked Sendable {
    // @unchecked Sendable is safe here: `state` is only read or written between
    // pthread_mutex_lock and pthread_mutex_unlock on `mutex` (every access below goes through
    // `withLock` or `waitLoop`), and the mutex and condition live at fixed heap addresses for the
    // lifetime of the object, as pthreads requires.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private let state: UnsafeMutablePointer<State>

    /// What one look at the state decides in `waitLoop`.
    enum Step<Result> {
        case done(Result)
        /// Sleep until this CLOCK_MONOTONIC time, or until someone calls `withLockBroadcasting`.
        case sleep(until: UInt64)
    }

    init(_ initial: State) {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        state = .allocate(capacity: 1)
        state.initialize(to: initial)
    }

    deinit {
        state.deinitialize(count: 1)
        state.deallocate()
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<Result, Failure: Error>(
        _ body: (inout State) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state.pointee)
    }

    /// Like `withLock`, then wakes every thread sleeping in `waitLoop`.
    func withLockBroadcasting<Result, Failure: Error>(
        _ body: (inout State) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        return try body(&state.pointee)
    }

    /// Calls `step` with the state and the current monotonic time, under the lock, until it says
    /// `.done`; between calls sleeps as it asks (releasing the lock). `step` bounds the loop: it
    /// must return `.done` once its own deadline has passed. `maximumSteps` bounds it in count
    /// too (spurious wake-ups); past it, `exhausted` is returned.
    func waitLoop<Result, Failure: Error>(
        maximumSteps: Int, exhausted: Result, _ step: (inout State, UInt64) throws(Failure) -> Step<Result>
    ) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        for _ in 0..<maximumSteps {
            switch try step(&state.pointee, GPIOClock.monotonicNanoseconds()) {
            case .done(let result):
                return result
            case .sleep(let until):
                var deadline = timespec(
                    tv_sec: Int(until / 1_000_000_000), tv_nsec: Int(until % 1_000_000_000))
                _ = pthread_cond_timedwait(condition, mutex, &deadline)
            }
        }
        return exhausted
    }
}

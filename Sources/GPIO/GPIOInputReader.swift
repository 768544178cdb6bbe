import Glibc
import Synchronization
import Threads

/// What the input reader hands on: an edge, or a failure of the backend (after which the reader
/// pauses for one poll timeout and tries again, so a failing line is reported, not fatal).
public enum GPIOInputEvent: Sendable, Hashable {
    case edge(GPIOEdge)
    case failure(GPIOError)
}

/// Reads a `GPIOBackend`'s input edges on a thread of its own (never the Swift concurrency pool:
/// the wait blocks) and hands them to the rest of the program through `events`, or to `onEvent`.
///
/// The thread loops on `waitForEdges` with a short timeout (100 ms by default), so `stop()`
/// returns within about one timeout. Edges are yielded exactly once, in the backend's order; the
/// stream buffers without limit, since a van's inputs change a few times a second at most and
/// its reader keeps up.
public final class GPIOInputReader: Sendable {
    /// Every edge (and failure) read, in order; finishes after `stop()`. Empty, and finished at
    /// once, when the reader was made with `onEvent`.
    public let events: AsyncStream<GPIOInputEvent>
    private let continuation: AsyncStream<GPIOInputEvent>.Continuation
    private let backend: any GPIOBackend
    private let onEvent: (@Sendable (GPIOInputEvent) -> Void)?
    private let pollTimeoutNanoseconds: Int64
    private let stopping = Atomic<Bool>(false)
    private let loops = Atomic<UInt64>(0)
    private let thread = Mutex<ThreadState>(.idle)

    private enum ThreadState: Sendable {
        case idle
        case running(pthread_t)
        case stopped
    }

    /// With `onEvent`, every event is handed to it directly on the reader's thread instead (the
    /// daemon's input path then never waits for the Swift concurrency pool), and `events` ends at
    /// once: fed too, with nobody reading it, it would keep every edge of the van's life.
    public init(
        backend: any GPIOBackend, pollTimeoutNanoseconds: Int64 = 100_000_000,
        onEvent: (@Sendable (GPIOInputEvent) -> Void)? = nil
    ) {
        self.onEvent = onEvent
        self.backend = backend
        self.pollTimeoutNanoseconds = max(1_000_000, pollTimeoutNanoseconds)
        (events, continuation) = AsyncStream.makeStream(of: GPIOInputEvent.self, bufferingPolicy: .unbounded)
        if onEvent != nil { continuation.finish() }
    }

    /// Starts the reading thread; does nothing if it was started before. Returns false if the
    /// thread could not be created (the failure is also yielded as a `.failure`).
    @discardableResult
    public func start() -> Bool {
        thread.withLock { state in
            guard case .idle = state else { return true }
            switch OwnedThread.start(name: "gpio edges", { [self] in run() }) {
            case .success(let id):
                state = .running(id)
                return true
            case .failure(let error):
                state = .stopped
                continuation.yield(.failure(.invalidRequest("cannot start the GPIO input thread: \(error)")))
                continuation.finish()
                return false
            }
        }
    }

    /// Stops the thread, waits for it to end (at most about one poll timeout) and finishes
    /// `events`. Safe to call more than once, and before `start()`. Must not be called from the
    /// reader's own thread.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        thread.withLock { state in
            if case .running(let id) = state { OwnedThread.join(id) }
            state = .stopped
        }
        continuation.finish()
    }

    /// Turns of the reading loop (one per edge batch or poll timeout): the daemon's watchdog is fed
    /// only while this moves.
    public var turns: UInt64 { loops.load(ordering: .relaxed) }

    private func run() {
        while !stopping.load(ordering: .acquiring) {
            loops.add(1, ordering: .relaxed)
            do {
                for edge in try backend.waitForEdges(timeoutNanoseconds: pollTimeoutNanoseconds) {
                    onEvent?(.edge(edge))
                    continuation.yield(.edge(edge))
                }
            } catch {
                onEvent?(.failure(error))
                continuation.yield(.failure(error))
                if error == .closed { return }
                pause(nanoseconds: pollTimeoutNanoseconds)
            }
        }
    }

    /// Sleeps in 10 ms slices so that `stop()` is not held up by a pause after a failure.
    private func pause(nanoseconds: Int64) {
        var left = nanoseconds
        while left > 0 && !stopping.load(ordering: .acquiring) {
            let slice = min(left, 10_000_000)
            var request = timespec(tv_sec: 0, tv_nsec: Int(slice))
            nanosleep(&request, nil)
            left -= slice
        }
    }
}

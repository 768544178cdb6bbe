import Synchronization
import Threads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One POST waiting for, or running on, the client's thread.
final class HTTPSJob: Sendable {
    let body: [UInt8]
    let idempotencyKey: String
    let cancellation: HTTPSCancellation
    private let completion: @Sendable (Result<HTTPSResponse, HTTPSError>) -> Void

    init(
        body: [UInt8], idempotencyKey: String, cancellation: HTTPSCancellation,
        completion: @escaping @Sendable (Result<HTTPSResponse, HTTPSError>) -> Void
    ) {
        self.body = body
        self.idempotencyKey = idempotencyKey
        self.cancellation = cancellation
        self.completion = completion
    }

    func complete(_ result: Result<HTTPSResponse, HTTPSError>) { completion(result) }
}

/// Set from any thread when the caller gives up on a POST; read by the transfer's progress callback.
final class HTTPSCancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    func cancel() { flag.store(true, ordering: .relaxed) }
    var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// The thread an `HTTPSClient` owns: it holds the client's `HTTPSSession` (the easy handle) and runs
/// the queued POSTs one after another, in order. `curl_easy_perform` blocks for as long as the link
/// takes, so it runs here and never on the Swift concurrency pool.
final class HTTPSThread: @unchecked Sendable {
    // @unchecked Sendable is safe: `state` is read and written only while `mutex` is held, and the
    // state, the mutex and the condition variables live at fixed heap addresses for the life of the
    // object. The session is touched only by the thread itself. The state is reached through a
    // pointer, never held as an `inout` across `pthread_cond_wait`: the compiler may assume nobody
    // else changes an inout's memory and keep a stale copy in a register while we sleep.
    private struct State {
        var queue: [HTTPSJob] = []
        var head = 0
        var stopping = false
        var finished = false
    }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let done: UnsafeMutablePointer<pthread_cond_t>
    private let state: UnsafeMutablePointer<State>
    private let stoppingFlag = Atomic<Bool>(false)
    private var thread = pthread_t()

    /// Starts the thread; it owns `session` from now on.
    init(session: HTTPSSession, name: String) throws(HTTPSError) {
        state = .allocate(capacity: 1)
        state.initialize(to: State())
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        wake = .allocate(capacity: 1)
        pthread_cond_init(wake, nil)
        done = .allocate(capacity: 1)
        pthread_cond_init(done, nil)
        let start = HTTPSThreadStart(thread: self, session: session, name: name)
        let context = Unmanaged.passRetained(start).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { context in
                guard let context else { return nil }
                let start = Unmanaged<HTTPSThreadStart>.fromOpaque(context).takeRetainedValue()
                start.run()
                return nil
            }, context)
        guard result == 0 else {
            Unmanaged<HTTPSThreadStart>.fromOpaque(context).release()
            throw HTTPSError(.other, curlMessage: "cannot start the HTTPS thread: \(String(cString: strerror(result)))")
        }
        pthread_detach(thread)
    }

    deinit {
        pthread_cond_destroy(done)
        done.deallocate()
        pthread_cond_destroy(wake)
        wake.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Queues a POST; false once the thread is stopping (the job is then not run nor completed).
    func submit(_ job: HTTPSJob) -> Bool {
        locked { state in
            guard !state.stopping else { return false }
            state.queue.append(job)
            pthread_cond_signal(wake)
            return true
        }
    }

    /// Asks the thread to stop: a running POST is aborted, queued ones fail with `.shutDown`. With
    /// `wait`, returns once the thread has released the easy handle.
    func stop(wait: Bool) {
        stoppingFlag.store(true, ordering: .relaxed)
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        state.pointee.stopping = true
        pthread_cond_signal(wake)
        guard wait, pthread_equal(pthread_self(), thread) == 0 else { return }
        while !state.pointee.finished { pthread_cond_wait(done, mutex) }
    }

    /// Read by the transfer's progress callback, without the lock.
    var isStopping: Bool { stoppingFlag.load(ordering: .relaxed) }

    /// The thread's body: POSTs in order until told to stop.
    fileprivate func run(_ session: HTTPSSession) {
        while let job = next() {
            if job.cancellation.isCancelled {
                job.complete(.failure(HTTPSError(.cancelled)))
                continue
            }
            let result = session.post(body: job.body, idempotencyKey: job.idempotencyKey) { [self] in
                if isStopping { return .shutDown }
                return job.cancellation.isCancelled ? .cancelled : nil
            }
            job.complete(result)
        }
        let abandoned = locked { state in
            let rest = Array(state.queue[state.head...])
            state.queue = []
            state.head = 0
            return rest
        }
        for job in abandoned { job.complete(.failure(HTTPSError(.shutDown))) }
    }

    /// Called by the thread once the session is released.
    fileprivate func finish() {
        locked { state in
            state.finished = true
            pthread_cond_broadcast(done)
        }
    }

    /// The next job, waiting for one; nil once stopping.
    private func next() -> HTTPSJob? {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !state.pointee.stopping && state.pointee.head == state.pointee.queue.count {
            pthread_cond_wait(wake, mutex)
        }
        guard !state.pointee.stopping else { return nil }
        let job = state.pointee.queue[state.pointee.head]
        state.pointee.head += 1
        if state.pointee.head == state.pointee.queue.count {
            state.pointee.queue.removeAll(keepingCapacity: true)
            state.pointee.head = 0
        }
        return job
    }

    /// `body` on the state, under the mutex. It must not wait on a condition (see above).
    private func locked<Value>(_ body: (inout State) -> Value) -> Value {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body(&state.pointee)
    }
}

/// What `pthread_create` hands to the new thread.
private final class HTTPSThreadStart {
    let thread: HTTPSThread
    var session: HTTPSSession?
    let name: String

    init(thread: HTTPSThread, session: HTTPSSession, name: String) {
        self.thread = thread
        self.session = session
        self.name = name
    }

    func run() {
        OwnedThread.setName(name)
        if let session { thread.run(session) }
        // The easy handle is cleaned up here, on its own thread, before `stop(wait:)` returns.
        session = nil
        thread.finish()
    }
}

/// Where a blocking caller waits for its POST's result.
final class HTTPSOutcome: @unchecked Sendable {
    // @unchecked Sendable is safe: `result` is read and written only while `mutex` is held; the
    // mutex and condition live at fixed heap addresses for the life of the object.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let ready: UnsafeMutablePointer<pthread_cond_t>
    private var result: Result<HTTPSResponse, HTTPSError>?

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        ready = .allocate(capacity: 1)
        pthread_cond_init(ready, nil)
    }

    deinit {
        pthread_cond_destroy(ready)
        ready.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func deliver(_ value: Result<HTTPSResponse, HTTPSError>) {
        pthread_mutex_lock(mutex)
        result = value
        pthread_cond_signal(ready)
        pthread_mutex_unlock(mutex)
    }

    /// Blocks until `deliver`. The client's thread always delivers: each POST ends within the
    /// configured total timeout, and stopping fails the ones still queued.
    func wait() -> Result<HTTPSResponse, HTTPSError> {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if let result { return result }
            pthread_cond_wait(ready, mutex)
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A pthread the program owns, for loops that block in C calls or must keep their own time (the
/// engine, the sounder, GPIO edges, a Modbus bus, delivery): never on the Swift concurrency pool.
public enum OwnedThread {
    private final class Body: Sendable {
        let name: String?
        let run: @Sendable () -> Void
        init(_ name: String?, _ run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }

    /// Starts `run` on a new joinable thread named `name` (as `top -H` and /proc show it; Linux
    /// keeps 15 bytes); the pthread error number when it cannot start.
    public static func start(name: String? = nil, _ run: @escaping @Sendable () -> Void) -> Result<
        pthread_t, ThreadStartError
    > {
        let body = Unmanaged.passRetained(Body(name, run)).toOpaque()
        var id = pthread_t()
        let result = pthread_create(
            &id, nil,
            { context in
                guard let context else { return nil }
                let body = Unmanaged<Body>.fromOpaque(context).takeRetainedValue()
                if let name = body.name { OwnedThread.setName(name) }
                body.run()
                return nil
            }, body)
        guard result == 0 else {
            Unmanaged<Body>.fromOpaque(body).release()
            return .failure(ThreadStartError(code: result))
        }
        return .success(id)
    }

    /// Waits for the thread to end.
    public static func join(_ id: pthread_t) {
        _ = pthread_join(id, nil)
    }

    /// Lets the thread end without being joined (its resources go when it returns).
    public static func detach(_ id: pthread_t) {
        _ = pthread_detach(id)
    }

    /// Names the calling thread (pthread_setname_np is not visible from Swift's Glibc module).
    public static func setName(_ name: String) {
        #if os(Linux)
            let descriptor = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return }
            let bytes = Array(name.utf8.prefix(15))
            _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
        #endif
    }
}

/// pthread_create's error number (EAGAIN: too many threads or no memory).
public struct ThreadStartError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Int32
    public var description: String { String(cString: strerror(code)) }
}

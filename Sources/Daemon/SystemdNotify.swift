import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Tells systemd how the daemon is doing, as sd_notify(3) does, without libsystemd: one datagram
/// of `KEY=value` lines to the unix socket named by `NOTIFY_SOCKET`. The unit (Type=notify,
/// WatchdogSec=10s) waits for READY=1 and kills and restarts the daemon when WATCHDOG=1 stops.
///
/// The environment is read once, when the notifier is made. Without `NOTIFY_SOCKET` (run from a
/// terminal, or in tests) every call does nothing and returns false. A failed send never stops the
/// daemon: it returns false, and the first failure of a run of them is logged, as is the recovery.
public final class SystemdNotifier: Sendable {
    /// Where the datagrams go: a file system path or a name in the abstract namespace.
    public enum Socket: Sendable, Equatable, CustomStringConvertible {
        /// An absolute path, such as /run/systemd/notify.
        case path(String)
        /// A name in Linux's abstract namespace, written `@name` in `NOTIFY_SOCKET`.
        case abstract(String)

        /// `NOTIFY_SOCKET`'s value: "/path" or "@name"; anything else (empty, relative) is nil.
        public init?(environmentValue value: String) {
            if value.hasPrefix("/") {
                self = .path(value)
            } else if value.hasPrefix("@"), value.utf8.count > 1 {
                self = .abstract(String(value.dropFirst()))
            } else {
                return nil
            }
        }

        public var description: String {
            switch self {
            case .path(let path): path
            case .abstract(let name): "@" + name
            }
        }
    }

    /// Where datagrams go; nil when the daemon was not started by systemd with Type=notify.
    public let socket: Socket?
    /// The unit's WatchdogSec= (`WATCHDOG_USEC`), when the watchdog is on and meant for this
    /// process (`WATCHDOG_PID` unset or ours); nil otherwise.
    public let watchdogInterval: Duration?
    private let log: @Sendable (LogLevel, String) -> Void
    /// True while sends are failing, so a dead socket is logged once, not every ping.
    private let failing = Mutex(false)

    /// Whether there is anyone to tell.
    public var isEnabled: Bool { socket != nil }

    /// How often to send WATCHDOG=1 while the daemon's loops make progress: a quarter of the
    /// interval (2.5 s for WatchdogSec=10s), well inside sd_watchdog_enabled(3)'s "at least every
    /// half", so one late ping is not yet a restart.
    public var watchdogPingInterval: Duration? { watchdogInterval.map { $0 / 4 } }

    /// A notifier from an environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`), checked
    /// against `processID`. Tests pass their own; the daemon uses `fromProcessEnvironment()`.
    public init(
        environment: [String: String], processID: pid_t = getpid(),
        log: @escaping @Sendable (LogLevel, String) -> Void = Log.write
    ) {
        socket = environment["NOTIFY_SOCKET"].flatMap { Socket(environmentValue: $0) }
        watchdogInterval = Self.watchdogInterval(
            microseconds: environment["WATCHDOG_USEC"], pid: environment["WATCHDOG_PID"], processID: processID)
        self.log = log
    }

    /// A notifier for a given socket and watchdog interval.
    public init(
        socket: Socket?, watchdogInterval: Duration? = nil,
        log: @escaping @Sendable (LogLevel, String) -> Void = Log.write
    ) {
        self.socket = socket
        self.watchdogInterval = watchdogInterval
        self.log = log
    }

    /// The notifier for this process, from its environment as systemd set it.
    public static func fromProcessEnvironment() -> SystemdNotifier {
        var environment: [String: String] = [:]
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        return SystemdNotifier(environment: environment)
    }

    /// `WATCHDOG_USEC` as a duration when it is a positive integer and `WATCHDOG_PID` is unset or
    /// names `processID` (a child that inherited the variables must not ping for its parent).
    public static func watchdogInterval(microseconds: String?, pid: String?, processID: pid_t) -> Duration? {
        if let pid {
            guard let named = pid_t(pid), named == processID else { return nil }
        }
        guard let microseconds, let value = Int64(microseconds), value > 0 else { return nil }
        return .microseconds(value)
    }

    // MARK: - Messages

    /// Startup is done: GPIO, Modbus and the outbox are up. Also sent after a reload.
    @discardableResult public func ready(status: String? = nil) -> Bool {
        send(["READY=1"] + Self.statusLine(status))
    }

    /// A one-line status for `systemctl status` ("monitoring, 2 seats occupied").
    @discardableResult public func status(_ text: String) -> Bool {
        send(Self.statusLine(text))
    }

    /// The daemon's loops are making progress; see `watchdogPingInterval`.
    @discardableResult public func watchdog() -> Bool {
        send(["WATCHDOG=1"])
    }

    /// Shutdown has begun (outputs being silenced, the outbox flushed).
    @discardableResult public func stopping(status: String? = nil) -> Bool {
        send(["STOPPING=1"] + Self.statusLine(status))
    }

    /// A reload (SIGHUP) has begun; send `ready()` when it is done. MONOTONIC_USEC is what systemd
    /// 253's Type=notify-reload expects; systemd 252 ignores it.
    @discardableResult public func reloading(status: String? = nil) -> Bool {
        send(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"] + Self.statusLine(status))
    }

    /// The daemon's main process is `pid` (only if it ever hands over to another process).
    @discardableResult public func mainPID(_ pid: pid_t) -> Bool {
        send(["MAINPID=\(pid)"])
    }

    /// Sends `KEY=value` assignments as one datagram. True when the datagram went out.
    @discardableResult public func send(_ assignments: [String]) -> Bool {
        guard let socket else { return false }
        let message = assignments.joined(separator: "\n")
        let problem = Self.sendDatagram(Array(message.utf8), to: socket)
        let wasFailing = failing.withLock { failing in
            defer { failing = problem != nil }
            return failing
        }
        if let problem, !wasFailing {
            log(.warning, "systemd notify: cannot send to \(socket): \(problem) (further failures not logged)")
        } else if problem == nil, wasFailing {
            log(.notice, "systemd notify: sending to \(socket) again")
        }
        return problem == nil
    }

    // MARK: - The socket

    /// How long a send may block if systemd is slow to read: a watchdog ping is dropped rather
    /// than holding up the loop that sends it.
    private static let sendTimeoutMicroseconds = 500_000

    /// Sends one datagram; nil when sent, else what went wrong.
    private static func sendDatagram(_ message: [UInt8], to socket: Socket) -> String? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let pathBytes: [UInt8]
        switch socket {
        case .path(let path): pathBytes = Array(path.utf8)
        case .abstract(let name): pathBytes = [0] + Array(name.utf8)
        }
        guard pathBytes.count <= capacity, let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) else {
            return "socket address longer than \(capacity) bytes"
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        // A path is NUL-terminated when it fits; an abstract name is exactly its bytes.
        var length = pathOffset + pathBytes.count
        if case .path = socket, pathBytes.count < capacity { length += 1 }

        let descriptor = openDatagramSocket()
        guard descriptor >= 0 else { return "socket: \(errorText(errno))" }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 0, tv_usec: .init(sendTimeoutMicroseconds))
        _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        while true {
            let sent = message.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                        sendto(
                            descriptor, bytes.baseAddress, bytes.count, noSignal, socketAddress, socklen_t(length))
                    }
                }
            }
            if sent == message.count { return nil }
            if sent >= 0 { return "sent \(sent) of \(message.count) bytes" }
            let error = errno
            if error == EINTR { continue }
            return "sendto: \(errorText(error))"
        }
    }

    private static func openDatagramSocket() -> Int32 {
        #if canImport(Glibc)
            Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let descriptor = Darwin.socket(AF_UNIX, SOCK_DGRAM, 0)
            if descriptor >= 0 { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
            return descriptor
        #endif
    }

    #if canImport(Glibc)
        private static let noSignal = Int32(MSG_NOSIGNAL)
    #else
        private static let noSignal: Int32 = 0
    #endif

    private static func errorText(_ error: Int32) -> String {
        guard let text = strerror(error) else { return "errno \(error)" }
        return "\(String(cString: text)) (errno \(error))"
    }

    /// STATUS= as one line: a newline would start another assignment.
    private static func statusLine(_ status: String?) -> [String] {
        guard let status else { return [] }
        let flat = status.map { $0.isNewline ? " " : String($0) }.joined()
        return ["STATUS=" + flat]
    }

    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }
}

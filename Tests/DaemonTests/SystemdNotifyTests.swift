import Synchronization
import Testing

@testable import Daemon

#if canImport(Glibc)
    import Glibc
#endif

/// The receiving end of NOTIFY_SOCKET, as systemd holds it: a real AF_UNIX datagram socket bound to
/// a path in a fresh temporary folder, or to a name in the abstract namespace.
final class NotifyPeer {
    let socket: SystemdNotifier.Socket
    private let descriptor: Int32
    private let folder: String?

    enum Failure: Error, CustomStringConvertible {
        case system(String, Int32)
        var description: String {
            switch self {
            case .system(let call, let error): "\(call): \(String(cString: strerror(error)))"
            }
        }
    }

    /// A peer bound in a fresh temporary folder.
    convenience init() throws {
        var template = Array("/tmp/headcount-notify-XXXXXX".utf8CString)
        let folder = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, let made = mkdtemp(base) else { return nil }
            return String(cString: made)
        }
        guard let folder else { throw Failure.system("mkdtemp", errno) }
        try self.init(socket: .path(folder + "/notify"), folder: folder)
    }

    /// A peer bound to a unique name in the abstract namespace.
    convenience init(abstract: Void) throws {
        let name = "headcount-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try self.init(socket: .abstract(name), folder: nil)
    }

    /// A peer bound to `socket`; `folder`, if given, is removed with it.
    init(socket: SystemdNotifier.Socket, folder: String?) throws {
        self.socket = socket
        self.folder = folder
        descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw Failure.system("socket", errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes: [UInt8]
        switch socket {
        case .path(let path): bytes = Array(path.utf8)
        case .abstract(let name): bytes = [0] + Array(name.utf8)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else {
            let error = errno
            close(descriptor)
            throw Failure.system("bind", error)
        }
        // A test waits at most 2 s for a datagram that should be there at once.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(descriptor)
        if case .path(let path) = socket { unlink(path) }
        if let folder { rmdir(folder) }
    }

    /// The next datagram, or nil after the timeout.
    func receive(timeoutMicroseconds: Int = 2_000_000) -> String? {
        var timeout = timeval(tv_sec: timeoutMicroseconds / 1_000_000, tv_usec: .init(timeoutMicroseconds % 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }
}

/// What a notifier logged, for the tests to look at.
final class LogLines: Sendable {
    private let lines = Mutex<[(LogLevel, String)]>([])
    var all: [(LogLevel, String)] { lines.withLock { $0 } }
    var sink: @Sendable (LogLevel, String) -> Void {
        { level, text in self.lines.withLock { $0.append((level, text)) } }
    }
}

@Suite("sd_notify over a real unix datagram socket")
struct SystemdNotifyTests {
    @Test func readyStatusWatchdogAndStoppingArriveAsSent() throws {
        let peer = try NotifyPeer()
        let notifier = SystemdNotifier(socket: peer.socket)
        #expect(notifier.isEnabled)

        #expect(notifier.ready(status: "monitoring: 4 seats, 1 radar"))
        #expect(peer.receive() == "READY=1\nSTATUS=monitoring: 4 seats, 1 radar")
        #expect(notifier.status("ignition off, check window open"))
        #expect(peer.receive() == "STATUS=ignition off, check window open")
        #expect(notifier.watchdog())
        #expect(peer.receive() == "WATCHDOG=1")
        #expect(notifier.stopping(status: "silencing outputs"))
        #expect(peer.receive() == "STOPPING=1\nSTATUS=silencing outputs")
        #expect(notifier.stopping())
        #expect(peer.receive() == "STOPPING=1")
        #expect(notifier.mainPID(4242))
        #expect(peer.receive() == "MAINPID=4242")
        #expect(notifier.ready())
        #expect(peer.receive() == "READY=1")
    }

    @Test func reloadingCarriesTheMonotonicClock() throws {
        let peer = try NotifyPeer()
        let notifier = SystemdNotifier(socket: peer.socket)
        let before = SystemdNotifier.monotonicMicroseconds()
        #expect(notifier.reloading())
        let after = SystemdNotifier.monotonicMicroseconds()
        let lines = try #require(peer.receive()).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first == "RELOADING=1")
        let stamp = try #require(lines.last.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) })
        #expect(lines.last?.hasPrefix("MONOTONIC_USEC=") == true)
        #expect(stamp >= before && stamp <= after)
    }

    @Test func theAbstractNamespaceIsReachedThroughAnAtName() throws {
        let peer = try NotifyPeer(abstract: ())
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": peer.socket.description])
        #expect(peer.socket.description.hasPrefix("@"))
        #expect(notifier.socket == peer.socket)
        #expect(notifier.ready(status: "up"))
        #expect(peer.receive() == "READY=1\nSTATUS=up")
        #expect(notifier.watchdog())
        #expect(peer.receive() == "WATCHDOG=1")
    }

    @Test func aPathFromTheEnvironmentIsUsedAsIs() throws {
        let peer = try NotifyPeer()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": peer.socket.description])
        #expect(notifier.socket == peer.socket)
        #expect(notifier.watchdog())
        #expect(peer.receive() == "WATCHDOG=1")
    }

    @Test func aNewlineInAStatusCannotStartAnotherAssignment() throws {
        let peer = try NotifyPeer()
        let notifier = SystemdNotifier(socket: peer.socket)
        #expect(notifier.status("seat 3 faulty\nREADY=1"))
        #expect(peer.receive() == "STATUS=seat 3 faulty READY=1")
    }

    @Test func withoutNotifySocketEveryCallIsANoOp() {
        let lines = LogLines()
        let notifier = SystemdNotifier(environment: [:], log: lines.sink)
        #expect(!notifier.isEnabled)
        #expect(notifier.socket == nil)
        #expect(notifier.watchdogInterval == nil)
        #expect(!notifier.ready(status: "up"))
        #expect(!notifier.watchdog())
        #expect(!notifier.stopping())
        #expect(lines.all.isEmpty)
    }

    @Test(arguments: ["", "relative/notify", "@", "vsock:2:1234"])
    func aValueThatIsNeitherAPathNorAnAtNameDisablesIt(value: String) {
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": value]).socket == nil)
    }

    @Test func aMissingSocketFailsWithoutCrashingAndIsLoggedOnceUntilItWorks() throws {
        let peer = try NotifyPeer()
        guard case .path(let path) = peer.socket else { return }
        let lines = LogLines()
        let notifier = SystemdNotifier(socket: .path(path + ".missing"), log: lines.sink)
        #expect(!notifier.ready())
        #expect(!notifier.watchdog())
        #expect(!notifier.watchdog())
        #expect(lines.all.count == 1)
        #expect(lines.all.first?.0 == .warning)
        #expect(lines.all.first?.1.contains(path + ".missing") == true)
    }

    @Test func anAbstractNameNobodyHoldsFailsWithoutCrashing() {
        let lines = LogLines()
        let notifier = SystemdNotifier(socket: .abstract("headcount-nobody-\(getpid())"), log: lines.sink)
        #expect(!notifier.ready())
        #expect(lines.all.count == 1)
    }

    @Test func aSocketThatComesBackIsLoggedAsRecovered() throws {
        var template = Array("/tmp/headcount-notify-XXXXXX".utf8CString)
        let folder = try #require(
            template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
                .map { String(cString: $0) })
        defer {
            unlink(folder + "/later")
            rmdir(folder)
        }
        let lines = LogLines()
        // Fails while nothing is bound there yet...
        let notifier = SystemdNotifier(socket: .path(folder + "/later"), log: lines.sink)
        #expect(!notifier.watchdog())
        // ...then a peer binds the same path: the next ping goes through and the recovery is noted.
        let peer = try NotifyPeer(socket: .path(folder + "/later"), folder: nil)
        #expect(notifier.watchdog())
        #expect(peer.receive() == "WATCHDOG=1")
        #expect(lines.all.map(\.0) == [.warning, .notice])
    }

    @Test func aPathTooLongForSockaddrUnIsRefused() {
        let lines = LogLines()
        let notifier = SystemdNotifier(socket: .path("/" + String(repeating: "x", count: 200)), log: lines.sink)
        #expect(!notifier.watchdog())
        #expect(lines.all.first?.1.contains("longer than") == true)
    }

    // MARK: - WATCHDOG_USEC and WATCHDOG_PID

    @Test func theWatchdogIntervalIsForThisProcessOnly() {
        let ours = SystemdNotifier(
            environment: ["WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1234"], processID: 1234)
        #expect(ours.watchdogInterval == .seconds(10))
        #expect(ours.watchdogPingInterval == .milliseconds(2500))

        let someoneElses = SystemdNotifier(
            environment: ["WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"], processID: 1234)
        #expect(someoneElses.watchdogInterval == nil)
        #expect(someoneElses.watchdogPingInterval == nil)

        let noPid = SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000"], processID: 1234)
        #expect(noPid.watchdogInterval == .seconds(3))
    }

    @Test func theRealProcessIDIsTheDefault() {
        let notifier = SystemdNotifier(environment: ["WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "\(getpid())"])
        #expect(notifier.watchdogInterval == .seconds(10))
    }

    @Test(
        arguments: [
            (nil, nil), ("0", nil), ("-5", nil), ("ten", nil), ("", nil), ("10000000", "abc"), ("10000000", ""),
        ] as [(String?, String?)])
    func aMissingOrMalformedWatchdogIsOff(microseconds: String?, pid: String?) {
        #expect(SystemdNotifier.watchdogInterval(microseconds: microseconds, pid: pid, processID: 1234) == nil)
    }
}

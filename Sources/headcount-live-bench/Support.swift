import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

// MARK: - Time and figures

/// CLOCK_MONOTONIC, the clock of the simulator's edge and output timestamps.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

func sleep(seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) == -1 && errno == EINTR { request = remaining }
}

/// Sorted samples, in milliseconds, with nearest-rank percentiles.
struct Figures {
    let sorted: [Double]

    init(_ samples: [Double]) { sorted = samples.sorted() }

    var count: Int { sorted.count }

    func percentile(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((Double(sorted.count) * p / 100).rounded(.up))
        return sorted[Swift.min(Swift.max(rank, 1), sorted.count) - 1]
    }

    var p50: Double { percentile(50) }
    var p99: Double { percentile(99) }
    var max: Double { sorted.last ?? .nan }
    var min: Double { sorted.first ?? .nan }

    /// "n 200, p50 0.412 ms, p99 0.870 ms, max 1.204 ms".
    var summary: String {
        guard !sorted.isEmpty else { return "no samples" }
        return "n \(count), p50 \(ms(p50)), p99 \(ms(p99)), max \(ms(max))"
    }
}

func ms(_ value: Double) -> String { value.isNaN ? "n/a" : String(format: "%.3f ms", value) }

func verdict(_ met: Bool) -> String { met ? "met" : "MISSED" }

func padded(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// The file system type of the mount holding `path` (the longest mount point that prefixes it).
func fileSystemType(_ path: String) -> String {
    let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return "unknown" }
    var best: (point: String, type: String)?
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { continue }
        let point = fields[1].replacingOccurrences(of: "\\040", with: " ")
        let inside = point == "/" || real == point || real.hasPrefix(point + "/")
        if inside && point.count >= (best?.point.count ?? -1) { best = (point, String(fields[2])) }
    }
    return best.map { "\($0.type) on \($0.point)" } ?? "unknown"
}

// MARK: - What the bench started, and stopping it whatever happens

/// Every child process still running and every temporary folder, so that any way out of the bench
/// (the end, an error, SIGINT/SIGTERM/SIGHUP, exit) stops and removes them.
enum Cleanup {
    private static let children = Mutex<[pid_t: String]>([:])
    private static let folders = Mutex<[String]>([])
    /// Touched only by `installSignalHandlers`, on the main thread, before anything else runs.
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func adopt(_ pid: pid_t, _ name: String) { children.withLock { $0[pid] = name } }
    static func release(_ pid: pid_t) { _ = children.withLock { $0.removeValue(forKey: pid) } }
    static func adoptFolder(_ path: String) { folders.withLock { $0.append(path) } }

    /// Makes a fresh folder under `parent`, removed at the end.
    static func makeFolder(under parent: String, _ name: String) throws -> String {
        var template = Array("\(parent)/headcount-live-bench-\(name).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> UnsafeMutablePointer<CChar>? in
            guard let base = buffer.baseAddress else { return nil }
            return mkdtemp(base)
        }
        guard let made else {
            throw BenchError(description: "cannot make a folder under \(parent): \(String(cString: strerror(errno)))")
        }
        let path = String(cString: made)
        adoptFolder(path)
        return path
    }

    /// SIGINT, SIGTERM and SIGHUP stop everything and exit; SIGPIPE is ignored (a peer that died).
    static func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(Data("headcount-live-bench: signal \(number): stopping\n".utf8))
                stopEverything()
                exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
        atexit { Cleanup.killAllNow() }
    }

    /// SIGTERM to every child, up to 3 s to go, then SIGKILL; reaps them; removes the folders.
    static func stopEverything() {
        let running = children.withLock { $0 }
        for pid in running.keys { kill(pid, SIGTERM) }
        let deadline = monotonicNanoseconds() + 3_000_000_000
        var left = Set(running.keys)
        while !left.isEmpty && monotonicNanoseconds() < deadline {
            for pid in left where waitpid(pid, nil, WNOHANG) != 0 { left.remove(pid) }
            if !left.isEmpty { sleep(seconds: 0.01) }
        }
        for pid in left {
            kill(pid, SIGKILL)
            _ = waitpid(pid, nil, 0)
        }
        children.withLock { $0.removeAll() }
        for folder in folders.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: folder) }
        folders.withLock { $0.removeAll() }
    }

    /// The last resort at exit: SIGKILL to anything still registered.
    static func killAllNow() {
        for pid in children.withLock({ $0.keys }) { kill(pid, SIGKILL) }
    }
}

// MARK: - Child processes

/// A pipe whose both ends are close-on-exec (a spawned child gets its end through dup2).
func makePipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw BenchError(description: "pipe: \(String(cString: strerror(errno)))") }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return (fds[0], fds[1])
}

/// posix_spawn with the given standard descriptors (nil: /dev/null), the bench's environment plus
/// `environment` (NOTIFY_SOCKET and the watchdog variables of the bench's own parent removed), and
/// the default disposition for the signals the bench ignores. The child is registered for cleanup.
func spawn(
    _ path: String, _ arguments: [String], name: String, environment: [String: String] = [:],
    stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil
) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for (fd, target) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] {
        if let fd {
            posix_spawn_file_actions_adddup2(&actions, fd, target)
        } else {
            posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
        }
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for number in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, number) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var mask = sigset_t()
    sigemptyset(&mask)
    posix_spawnattr_setsigmask(&attributes, &mask)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

    var variables = ProcessInfo.processInfo.environment
    for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"] {
        variables.removeValue(forKey: key)
    }
    variables.merge(environment) { _, new in new }
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid = pid_t()
    let result = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
    guard result == 0 else {
        throw BenchError(description: "cannot start \(path): \(String(cString: strerror(result)))")
    }
    Cleanup.adopt(pid, name)
    return pid
}

/// The exit status as a shell shows it (128 + signal for a signal), or nil while it runs.
func reap(_ pid: pid_t, block: Bool) -> Int32? {
    var status: Int32 = 0
    var result: pid_t
    repeat { result = waitpid(pid, &status, block ? 0 : WNOHANG) } while result == -1 && errno == EINTR
    guard result == pid else { return result == -1 ? -1 : nil }
    Cleanup.release(pid)
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// Sends `signal`, waits up to `seconds` for the exit, then SIGKILL. Returns the status and the
/// time it took to go.
@discardableResult
func stop(_ pid: pid_t, signal number: Int32 = SIGTERM, seconds: Double = 5) -> (status: Int32, seconds: Double) {
    let start = monotonicNanoseconds()
    kill(pid, number)
    let deadline = start + UInt64(seconds * 1e9)
    while monotonicNanoseconds() < deadline {
        if let status = reap(pid, block: false) { return (status, Double(monotonicNanoseconds() - start) / 1e9) }
        sleep(seconds: 0.002)
    }
    kill(pid, SIGKILL)
    let status = reap(pid, block: true) ?? -1
    return (status, Double(monotonicNanoseconds() - start) / 1e9)
}

// MARK: - The systemd notification socket

/// A datagram socket bound at `path`, standing in for systemd's NOTIFY_SOCKET.
final class NotifySocket {
    let path: String
    let fd: Int32

    init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw BenchError(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let problem = String(cString: strerror(errno))
            close(fd)
            throw BenchError(description: "bind \(path): \(problem)")
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }

    /// The next datagram within `seconds`, or nil.
    func receive(within seconds: Double) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, Int32(max(0, seconds) * 1000))
        guard ready > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count], as: UTF8.self)
    }

    /// Reads every datagram waiting; returns them.
    func drain() -> [String] {
        var all: [String] = []
        while let message = receive(within: 0) { all.append(message) }
        return all
    }

    /// Waits for a datagram with a READY=1 line; returns the monotonic time it was read.
    func waitForReady(within seconds: Double, while alive: () -> Bool) -> UInt64? {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        while monotonicNanoseconds() < deadline {
            if let message = receive(within: 0.05) {
                let now = monotonicNanoseconds()
                if message.split(separator: "\n").contains("READY=1") { return now }
            } else if !alive() {
                return nil
            }
        }
        return nil
    }
}

// MARK: - /proc

/// What /proc says about one process.
struct ProcSample {
    var cpuTicks: UInt64  // utime + stime
    var threads: Int
    var rssKB: Int
    var hwmKB: Int
    var anonKB: Int
    var fileKB: Int
    /// Proportional set size: shared library pages divided among the processes mapping them.
    var pssKB: Int
    var writeCalls: UInt64
    var readCalls: UInt64

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    init?(pid: pid_t) {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")"),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command's ")": field 3 (state) is index 0, so utime (14) is 11, stime (15) 12,
        // num_threads (20) 17.
        guard fields.count > 17, let user = UInt64(fields[11]), let system = UInt64(fields[12]),
            let threads = Int(fields[17])
        else { return nil }
        cpuTicks = user + system
        self.threads = threads
        func kilobytes(_ key: String) -> Int {
            for line in status.split(separator: "\n") where line.hasPrefix(key + ":") {
                let words = line.dropFirst(key.count + 1).split { $0 == " " || $0 == "\t" }
                return Int(words.first ?? "") ?? 0
            }
            return 0
        }
        rssKB = kilobytes("VmRSS")
        hwmKB = kilobytes("VmHWM")
        anonKB = kilobytes("RssAnon")
        fileKB = kilobytes("RssFile")
        pssKB = 0
        if let rollup = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) {
            for line in rollup.split(separator: "\n") where line.hasPrefix("Pss:") {
                pssKB = Int(line.dropFirst(4).split { $0 == " " || $0 == "\t" }.first ?? "") ?? 0
            }
        }
        var counters: [String: UInt64] = [:]
        if let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) {
            for line in io.split(separator: "\n") {
                let parts = line.split(separator: ":")
                if parts.count == 2 {
                    counters[String(parts[0])] = UInt64(parts[1].trimmingCharacters(in: .whitespaces))
                }
            }
        }
        writeCalls = counters["syscw"] ?? 0
        readCalls = counters["syscr"] ?? 0
    }
}

/// CPU time of each live thread, by thread id: its name, utime+stime in ticks, and its on-CPU
/// nanoseconds from /proc/PID/task/TID/schedstat (exact, where ticks are 10 ms).
func threadTicks(pid: pid_t) -> [Int: (name: String, ticks: UInt64, nanoseconds: UInt64)] {
    var result: [Int: (String, UInt64, UInt64)] = [:]
    guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return [:] }
    for task in tasks {
        guard let id = Int(task),
            let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/stat", encoding: .utf8),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
        else { continue }
        let name = String(stat[stat.index(after: open)..<close])
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { continue }
        let schedstat = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8)) ?? ""
        let nanoseconds = UInt64(schedstat.split(separator: " ").first ?? "") ?? 0
        result[id] = (name, user + system, nanoseconds)
    }
    return result
}

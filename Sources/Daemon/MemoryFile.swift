import Detection
import Formats

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The detection machine's memory on disk, written atomically (a temporary file, fsync, rename,
/// fsync of the folder) on every transition, so a restart finds the last one whole or the one
/// before it, never half of one.
///
/// To know how long the daemon was down it keeps the boot id and CLOCK_BOOTTIME: exact across a
/// crash or a watchdog restart. Across a reboot it falls back on the wall clock, which a board with
/// no real-time clock may have wrong, so that gap is clamped to 0…4 h.
public struct MemoryFile: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// What a restart finds.
    public struct Saved: Sendable {
        public var memory: MachineMemory
        /// The engine's clock when it was written.
        public var engineTime: Seconds
        /// Seconds since it was written, as well as can be told.
        public var elapsed: Seconds
    }

    public func write(_ memory: MachineMemory, engineTime: Seconds) throws(DaemonError) {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("boot_id", MemoryFile.bootID())
        writer.field("boottime_ns", Double(MemoryFile.clock(CLOCK_BOOTTIME)))
        writer.field("wall_ns", Double(MemoryFile.clock(CLOCK_REALTIME)))
        writer.field("engine_time", engineTime)
        writer.endObject()
        let text = writer.text + "\n" + memory.json + "\n"
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DaemonError.file(path: temporary, what: "cannot create", errno: errno) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                Glibc.write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                let error = errno
                close(fd)
                throw DaemonError.file(path: temporary, what: "cannot write", errno: error)
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            let error = errno
            close(fd)
            throw DaemonError.file(path: temporary, what: "cannot fsync", errno: error)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            throw DaemonError.file(path: path, what: "cannot rename into", errno: errno)
        }
        let folder = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let directory = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    /// The memory, or nil when there is none or it cannot be trusted.
    public func read() -> Saved? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var lines: [String] = []
        var buffer = [CChar](repeating: 0, count: 8192)
        while lines.count < 2, fgets(&buffer, Int32(buffer.count), file) != nil {
            lines.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        guard lines.count == 2, case .object(let header)? = try? JSON.parse(lines[0]),
            let memory = MachineMemory(json: lines[1]), case .number(let engineTime)? = header["engine_time"],
            engineTime.isFinite
        else { return nil }
        var elapsed: Double = 0
        // An unreadable boot id (empty) never counts as "the same boot".
        if case .string(let boot)? = header["boot_id"], !boot.isEmpty, boot == MemoryFile.bootID(),
            case .number(let then)? = header["boottime_ns"]
        {
            elapsed = (Double(MemoryFile.clock(CLOCK_BOOTTIME)) - then) / 1e9
        } else if case .number(let then)? = header["wall_ns"] {
            elapsed = min(max((Double(MemoryFile.clock(CLOCK_REALTIME)) - then) / 1e9, 0), 4 * 3600)
        }
        return Saved(memory: memory, engineTime: engineTime, elapsed: max(elapsed, 0))
    }

    static func clock(_ id: clockid_t) -> UInt64 {
        var now = timespec()
        clock_gettime(id, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static func bootID() -> String {
        guard let file = fopen("/proc/sys/kernel/random/boot_id", "r") else { return "" }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why the daemon cannot go on, with what a technician needs to know.
public enum DaemonError: Error, CustomStringConvertible, Sendable {
    case file(path: String, what: String, errno: Int32)
    case hardware(String)
    case config(String)

    public var description: String {
        switch self {
        case .file(let path, let what, let code): "\(what) \(path): \(String(cString: strerror(code)))"
        case .hardware(let text): text
        case .config(let text): text
        }
    }
}

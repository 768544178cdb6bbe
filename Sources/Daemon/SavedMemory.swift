import Detection
import Formats

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The detection machine's memory as the daemon saves it: in the outbox's database, in the same
/// transaction as the alerts of the transition that changed it (`Outbox.enqueue(_:savingState:)`),
/// so a restart finds the last transition whole, its alerts and its state together, never one
/// without the other.
///
/// To know how long the daemon was down it keeps the boot id and CLOCK_BOOTTIME: exact across a
/// crash or a watchdog restart. Across a reboot it falls back on the wall clock, which a board with
/// no real-time clock may have wrong, so that gap is clamped to 0…4 h.
public enum SavedMemory {
    /// What a restart finds.
    public struct Saved: Sendable {
        public var memory: MachineMemory
        /// The engine's clock when it was written.
        public var engineTime: Seconds
        /// Seconds since it was written, as well as can be told.
        public var elapsed: Seconds
    }

    /// Two lines: when (boot id, boot time, wall time, engine time), then the memory.
    public static func encode(_ memory: MachineMemory, engineTime: Seconds) -> String {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("boot_id", bootID())
        writer.field("boottime_ns", Double(clock(CLOCK_BOOTTIME)))
        writer.field("wall_ns", Double(clock(CLOCK_REALTIME)))
        writer.field("engine_time", engineTime)
        writer.endObject()
        return writer.text + "\n" + memory.json + "\n"
    }

    /// The memory in `text`, or nil when it cannot be trusted.
    public static func decode(_ text: String) -> Saved? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard lines.count == 2, case .object(let header)? = try? JSON.parse(lines[0]),
            let memory = MachineMemory(json: lines[1]), case .number(let engineTime)? = header["engine_time"],
            engineTime.isFinite
        else { return nil }
        var elapsed: Double = 0
        // An unreadable boot id (empty) never counts as "the same boot".
        if case .string(let boot)? = header["boot_id"], !boot.isEmpty, boot == bootID(),
            case .number(let then)? = header["boottime_ns"]
        {
            elapsed = (Double(clock(CLOCK_BOOTTIME)) - then) / 1e9
        } else if case .number(let then)? = header["wall_ns"] {
            elapsed = min(max((Double(clock(CLOCK_REALTIME)) - then) / 1e9, 0), 4 * 3600)
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

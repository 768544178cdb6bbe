import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The daemon's log: one line per message on stderr, which systemd connects to the journal. Each
/// line starts with sd-daemon(3)'s priority prefix (`<3>` error … `<7>` debug), so `journalctl -p
/// warning` finds the warnings. Lines are never interleaved: one lock, one write(2) per line (more
/// only if the kernel takes part of it), and a newline inside a message is written as `\n`, so a
/// message is always one journal entry.
///
/// Run from a terminal (stderr is not the journal stream systemd names in `JOURNAL_STREAM`), the
/// prefix becomes a word ("warning: …") a technician can read.
public enum Log {
    /// How a line is written.
    public enum Style: Sendable {
        /// `<4>message`: the sd-daemon prefix, for the journal.
        case journal
        /// `warning: message`: for a terminal.
        case plain
    }

    public static func error(_ message: String) { write(.error, message) }
    public static func warning(_ message: String) { write(.warning, message) }
    public static func notice(_ message: String) { write(.notice, message) }
    public static func info(_ message: String) { write(.info, message) }
    public static func debug(_ message: String) { write(.debug, message) }

    /// Writes one line to stderr. Has the shape of the `log` closures the daemon passes around.
    public static func write(_ level: LogLevel, _ message: String) {
        write(line(level, message, style: style), to: STDERR_FILENO)
    }

    /// This process's style, decided once: `.journal` when stderr is the stream systemd set up for
    /// the journal, `.plain` otherwise.
    public static let style: Style = stderrIsJournal() ? .journal : .plain

    /// The bytes of one line: prefix, the message with control characters escaped, a newline.
    public static func line(_ level: LogLevel, _ message: String, style: Style = .journal) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(message.utf8.count + 12)
        switch style {
        case .journal:
            bytes.append(contentsOf: "<\(level.rawValue)>".utf8)
        case .plain:
            bytes.append(contentsOf: plainLabel(level).utf8)
        }
        for byte in message.utf8 {
            switch byte {
            case 0x0A: bytes.append(contentsOf: #"\n"#.utf8)
            case 0x0D: bytes.append(contentsOf: #"\r"#.utf8)
            case 0x00: bytes.append(contentsOf: #"\0"#.utf8)
            case 0x09: bytes.append(byte)
            case 0x01...0x1F, 0x7F:
                bytes.append(contentsOf: #"\x"#.utf8)
                bytes.append(hexDigit(byte >> 4))
                bytes.append(hexDigit(byte & 0x0F))
            default: bytes.append(byte)
            }
        }
        bytes.append(0x0A)
        return bytes
    }

    /// Held while a line is written, so two threads' lines never mix.
    private static let output = Mutex(())

    /// Writes the whole line under the lock. A log line must never stop the daemon: on an error
    /// (the journal restarted: EPIPE, which systemd's IgnoreSIGPIPE=yes keeps from killing us) the
    /// line is dropped.
    static func write(_ bytes: [UInt8], to descriptor: Int32) {
        output.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                guard let base = buffer.baseAddress else { return }
                var offset = 0
                var stalls = 0
                while offset < buffer.count {
                    let written = systemWrite(descriptor, base + offset, buffer.count - offset)
                    if written > 0 {
                        offset += written
                        continue
                    }
                    let error = errno
                    if written < 0 && error == EINTR { continue }
                    // A non-blocking stderr that is full: wait a little, a few times, then drop.
                    if written < 0 && (error == EAGAIN || error == EWOULDBLOCK) && stalls < 10 {
                        stalls += 1
                        var ready = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&ready, 1, 100)
                        continue
                    }
                    return
                }
            }
        }
    }

    private static func plainLabel(_ level: LogLevel) -> String {
        switch level {
        case .error: "error: "
        case .warning: "warning: "
        case .notice: "notice: "
        case .info: ""
        case .debug: "debug: "
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 + value : 0x61 + value - 10
    }

    /// systemd sets `JOURNAL_STREAM=<device>:<inode>` to stderr's when it connects stderr to the
    /// journal; a child that inherited the variable but not the stream sees other numbers.
    private static func stderrIsJournal() -> Bool {
        guard let pointer = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: pointer).split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(STDERR_FILENO, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}

/// write(2), named apart from `Log.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.write(descriptor, bytes, count)
    #elseif canImport(Darwin)
        Darwin.write(descriptor, bytes, count)
    #endif
}

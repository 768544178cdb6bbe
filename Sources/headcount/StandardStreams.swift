#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Standard output, error and input through write(2) and read(2). Not Foundation's FileHandle:
/// the program links FoundationEssentials only, which keeps the daemon's resident memory down.
enum Standard {
    /// Writes `text` whole to standard error.
    static func error(_ text: String) { writeAll(text, to: STDERR_FILENO) }

    /// Writes `text` whole to standard output.
    static func output(_ text: String) { writeAll(text, to: STDOUT_FILENO) }

    /// Writes every byte, through short writes and signals; gives up on any other error (a closed
    /// pipe: nobody is reading).
    private static func writeAll(_ text: String, to descriptor: Int32) {
        var text = text
        text.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                let written = write(descriptor, base + offset, bytes.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }

    /// Everything on standard input, to its end.
    static func readInput() -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if count > 0 {
                bytes += chunk[..<count]
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return bytes
            }
        }
    }
}

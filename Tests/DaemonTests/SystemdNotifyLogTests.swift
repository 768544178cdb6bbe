import Testing

@testable import Daemon

#if canImport(Glibc)
    import Glibc
#endif

@Suite("journal lines: sd-daemon priority prefixes, one line per message")
struct SystemdNotifyLogTests {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test(arguments: [
        (LogLevel.error, "<3>"), (.warning, "<4>"), (.notice, "<5>"), (.info, "<6>"), (.debug, "<7>"),
    ])
    func eachLevelHasItsJournalPrefix(level: LogLevel, prefix: String) {
        #expect(text(Log.line(level, "outbox opened")) == prefix + "outbox opened\n")
    }

    @Test func aNewlineInsideAMessageIsEscapedSoItStaysOneEntry() {
        #expect(
            text(Log.line(.error, "center refused:\n400 bad request\r\n"))
                == #"<3>center refused:\n400 bad request\r\n"# + "\n")
    }

    @Test func otherControlCharactersAreEscapedAndTextIsKept() {
        #expect(text(Log.line(.warning, "a\u{0}b\u{1B}[31mc\u{7F}\td")) == #"<4>a\0b\x1b[31mc\x7f"# + "\td\n")
        #expect(text(Log.line(.info, "ห้องโดยสาร 36.5 °C — seat.1")) == "<6>ห้องโดยสาร 36.5 °C — seat.1\n")
        #expect(text(Log.line(.info, "")) == "<6>\n")
    }

    @Test func theTerminalStyleNamesTheLevelInWords() {
        #expect(text(Log.line(.error, "no such chip", style: .plain)) == "error: no such chip\n")
        #expect(text(Log.line(.warning, "x", style: .plain)) == "warning: x\n")
        #expect(text(Log.line(.notice, "x", style: .plain)) == "notice: x\n")
        #expect(text(Log.line(.info, "x", style: .plain)) == "x\n")
        #expect(text(Log.line(.debug, "x\ny", style: .plain)) == #"debug: x\ny"# + "\n")
    }

    /// Threads writing long lines at once into a pipe (as into journald's stream socket): each line
    /// is longer than PIPE_BUF and the pipe fills, so a writer is made to wait in the middle of a
    /// line; without the lock another thread's line would land inside it.
    @Test func linesFromManyThreadsNeverInterleave() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        let (readEnd, writeEnd) = (ends[0], ends[1])
        // The smallest pipe (one page), so every line fills it more than once. F_SETPIPE_SZ is
        // 1031 (F_LINUX_SPECIFIC_BASE + 7); Glibc's module leaves it out.
        _ = fcntl(writeEnd, 1031, 4096)
        defer {
            close(readEnd)
            close(writeEnd)
        }
        let writers = 6
        let linesEach = 30
        let lineFor = { @Sendable (writer: Int, index: Int) -> [UInt8] in
            let padding = String(repeating: "\(writer)", count: 6000 + (index * 37) % 4000)
            return Log.line(.notice, "writer \(writer) line \(index) \(padding) end")
        }
        var expectedBytes = 0
        for writer in 0..<writers {
            for index in 0..<linesEach { expectedBytes += lineFor(writer, index).count }
        }
        let threads = try (0..<writers).map { writer in
            try startThread {
                for index in 0..<linesEach { Log.write(lineFor(writer, index), to: writeEnd) }
            }
        }
        var contents: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while contents.count < expectedBytes {
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            contents.append(contentsOf: buffer[..<count])
        }
        for thread in threads { pthread_join(thread, nil) }

        let lines = text(contents).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == writers * linesEach)
        let whole = lines.filter { line in
            let words = line.split(separator: " ")
            guard words.count == 6, words[0] == "<5>writer", words[5] == "end",
                let writer = Int(words[1]), let index = Int(words[3])
            else { return false }
            return Array(line.utf8) + [0x0A] == lineFor(writer, index)
        }
        #expect(whole.count == writers * linesEach)
    }
}

/// Runs `body` on a new thread of its own (not the concurrency pool: these threads block).
private func startThread(_ body: @escaping @Sendable () -> Void) throws -> pthread_t {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(
        &thread, nil,
        { argument in
            guard let argument else { return nil }
            Unmanaged<Box>.fromOpaque(argument).takeRetainedValue().body()
            return nil
        }, box)
    guard status == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        throw ThreadFailure(status: status)
    }
    return thread
}

private struct ThreadFailure: Error {
    let status: Int32
}

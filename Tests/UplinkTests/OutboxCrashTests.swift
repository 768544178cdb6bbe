import Detection
import TestSupport
import Testing
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The kill -9 test of SPEC.md's reliability list, for the outbox: a child process
/// (`headcount-outbox-bench --crash-writer PATH N`) enqueues alerts and prints "seq id" after each
/// commit; the test SIGKILLs it at random points, reopens the database and checks that every
/// acknowledged alert is there, seqs strictly increase across runs, nothing is duplicated, and
/// `integrity_check` is clean.
@Suite("Outbox under kill -9")
struct OutboxCrashTests {
    /// The bench executable beside the test bundle (SwiftPM builds every product before testing), or
    /// HEADCOUNT_OUTBOX_BENCH.
    static func writerPath() -> String? {
        if let override = getenv("HEADCOUNT_OUTBOX_BENCH") { return String(cString: override) }
        var buffer = [CChar](repeating: 0, count: 4_096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        var executable = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // macOS-style bundles keep the binary deeper; walk up to the directory holding the bundle.
        while let slash = executable.lastIndex(of: "/") {
            executable = String(executable[..<slash])
            let candidate = executable + "/headcount-outbox-bench"
            if access(candidate, X_OK) == 0 { return candidate }
            if executable.hasSuffix("/.build") || executable.isEmpty { break }
        }
        return nil
    }

    /// A running writer with the read end of its stdout.
    struct Writer {
        let pid: pid_t
        let output: Int32
    }

    static func spawnWriter(_ executable: String, database: String, count: Int) throws -> Writer {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw CrashTestFailure(message: "pipe failed, errno \(errno)") }
        // Close-on-exec, so other tests' children do not keep the pipe; the drain after the kill does not
        // wait for end of file anyway (another process spawned in between may still hold the write end).
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
        let arguments = [executable, "--crash-writer", database, String(count)]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, &argv, environ)
        close(ends[1])
        guard result == 0 else {
            close(ends[0])
            throw CrashTestFailure(message: "posix_spawn \(executable) failed: \(result)")
        }
        return Writer(pid: pid, output: ends[0])
    }

    struct CrashTestFailure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Reads what is available within `timeout` seconds; false at end of file.
    static func read(_ fd: Int32, into buffer: inout [UInt8], timeout: Double) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(max(timeout, 0) * 1000))
        guard ready > 0 else { return true }
        var chunk = [UInt8](repeating: 0, count: 4_096)
        let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
        return count < 0 && errno == EINTR
    }

    /// True when a read would not block (data, or end of file).
    static func hasData(_ fd: Int32) -> Bool {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    /// The complete "seq id" lines in `buffer`.
    static func acknowledged(_ buffer: [UInt8]) throws -> [(seq: Int, id: String)] {
        var result: [(seq: Int, id: String)] = []
        let text = String(decoding: buffer, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        lines.removeLast()  // the part after the last newline: not a complete line
        for line in lines {
            let fields = line.split(separator: " ")
            let seq = try #require(fields.count == 2 ? Int(fields[0]) : nil, "bad writer line \(line)")
            result.append((seq, String(fields[1])))
        }
        return result
    }

    @Test("every alert acknowledged before a SIGKILL is there after reopen", .timeLimit(.budget(minutes: 3)))
    func killNine() throws {
        let executable = try #require(
            Self.writerPath(), "headcount-outbox-bench not found beside the tests; run `swift build` first")
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let database = scratch.file()
        var system = SystemRandomNumberGenerator()
        var seed = system.next()
        let firstSeed = seed
        func random(_ range: ClosedRange<Int>) -> Int {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return range.lowerBound + Int(z % UInt64(range.count))
        }

        let rounds = 24
        let perWriter = 80
        var everAcknowledged: [Int: String] = [:]
        var highestSeq = 0
        var killedMidway = 0
        let testDeadline = outboxMonotonicNow() + 150

        for round in 0..<rounds {
            #expect(outboxMonotonicNow() < testDeadline, "out of time at round \(round); seed \(firstSeed)")
            guard outboxMonotonicNow() < testDeadline else { break }
            let writer = try Self.spawnWriter(executable, database: database, count: perWriter)
            defer { close(writer.output) }
            // Half the rounds kill after a number of acknowledged lines, half after a random delay
            // (which lands anywhere, including inside a transaction or during the open).
            let killAfterLines = round % 2 == 0 ? random(0...(perWriter - 1)) : nil
            let killAt = outboxMonotonicNow() + Double(random(0...60)) / 1000
            var buffer: [UInt8] = []
            var open = true
            let roundDeadline = outboxMonotonicNow() + 20
            while open, outboxMonotonicNow() < roundDeadline {
                if let killAfterLines {
                    if buffer.lazy.filter({ $0 == UInt8(ascii: "\n") }).count >= killAfterLines { break }
                } else if outboxMonotonicNow() >= killAt {
                    break
                }
                open = Self.read(writer.output, into: &buffer, timeout: 0.002)
            }
            kill(writer.pid, SIGKILL)
            var status: Int32 = 0
            waitpid(writer.pid, &status, 0)
            // The writer is gone: every line it wrote before dying is in the pipe and is an
            // acknowledgement too. Drain what is there (end of file, or nothing more to read).
            var drained = 0
            while open, drained < 10_000, Self.hasData(writer.output) {
                open = Self.read(writer.output, into: &buffer, timeout: 0)
                drained += 1
            }
            let signalled = (status & 0x7F) != 0
            #expect(signalled || status == 0, "writer exited with status \(status >> 8); seed \(firstSeed)")
            if signalled { killedMidway += 1 }

            let acknowledged = try Self.acknowledged(buffer)
            for (offset, line) in acknowledged.enumerated() {
                #expect(line.seq > highestSeq, "seq \(line.seq) not above \(highestSeq); seed \(firstSeed)")
                if offset > 0 { #expect(line.seq > acknowledged[offset - 1].seq) }
                #expect(everAcknowledged[line.seq] == nil, "seq \(line.seq) given twice; seed \(firstSeed)")
                everAcknowledged[line.seq] = line.id
            }

            // Reopen as the daemon would after the crash.
            let outbox = try Outbox(path: database, configuration: OutboxSamples.configuration(maxRows: 1_000_000))
            defer { outbox.close() }
            #expect(try outbox.integrityProblems(full: true) == [], "seed \(firstSeed)")
            let stored = try outbox.entries(limit: rounds * perWriter + 10)
            #expect(stored.count == outbox.depth)
            var storedByID: [String: Int] = [:]
            for entry in stored {
                #expect(storedByID[entry.id] == nil, "id \(entry.id) stored twice; seed \(firstSeed)")
                storedByID[entry.id] = entry.seq
                #expect(try entry.alert().seq == entry.seq)
            }
            #expect(Set(stored.map(\.seq)).count == stored.count)
            for (seq, id) in everAcknowledged {
                #expect(storedByID[id] == seq, "acknowledged seq \(seq) missing after kill; seed \(firstSeed)")
            }
            let maxStored = stored.map(\.seq).max() ?? 0
            #expect(outbox.lastSeq >= maxStored)
            #expect(maxStored >= highestSeq)
            highestSeq = max(highestSeq, outbox.lastSeq)
        }
        #expect(everAcknowledged.count > 0)
        #expect(killedMidway >= rounds / 2, "too few rounds were killed midway; seed \(firstSeed)")
    }
}

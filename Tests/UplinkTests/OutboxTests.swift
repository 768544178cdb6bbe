import CSQLite
import Detection
import TestSupport
import Testing
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("Outbox: the durable SQLite queue of alerts")
struct OutboxTests {
    let now = OutboxSamples.base

    /// Opens an outbox in a fresh directory, runs `body`, removes the directory.
    func withOutbox(
        maxRows: Int = 10_000, _ body: (Outbox, OutboxScratch) throws -> Void
    ) throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file(), configuration: OutboxSamples.configuration(maxRows: maxRows))
        defer { outbox.close() }
        try body(outbox, scratch)
    }

    @Test("enqueue assigns increasing seqs and stores the alert's JSON with its seq")
    func seqIncreases() throws {
        try withOutbox { outbox, _ in
            var previous = 0
            for offset in 0..<20 {
                let stored = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm, at: offset), now: now)
                #expect(stored.seq == previous + 1)
                previous = stored.seq
            }
            #expect(outbox.lastSeq == 20)
            #expect(outbox.depth == 20)
            let head = try #require(try outbox.nextDue(now: now))
            #expect(head.seq == 1)
            let decoded = try head.alert()
            #expect(decoded.seq == 1)
            #expect(decoded.id == head.id)
            #expect(head.body.contains(#""seq":1,"#))
        }
    }

    @Test("seq survives reopening, also after every row was delivered")
    func seqSurvivesReopen() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        do {
            let outbox = try Outbox(path: scratch.file())
            for offset in 0..<5 { try outbox.enqueue(OutboxSamples.alert(.checkMissed, at: offset), now: now) }
            outbox.close()
        }
        do {
            let outbox = try Outbox(path: scratch.file())
            #expect(outbox.lastSeq == 5)
            #expect(outbox.depth == 5)
            #expect(try outbox.enqueue(OutboxSamples.alert(.sensorFault), now: now).seq == 6)
            var delivered = 0
            while delivered < 10, let entry = try outbox.nextDue(now: now) {
                #expect(try outbox.markDelivered(id: entry.id))
                delivered += 1
            }
            #expect(delivered == 6)
            #expect(outbox.depth == 0)
            outbox.close()
        }
        do {
            let outbox = try Outbox(path: scratch.file())
            defer { outbox.close() }
            #expect(outbox.depth == 0)
            #expect(outbox.lastSeq == 6)
            #expect(try outbox.enqueue(OutboxSamples.alert(.heartbeat), now: now).seq == 7)
        }
    }

    @Test("alarms go before everything else, heartbeats last, by seq within a priority")
    func priorityOrder() throws {
        try withOutbox { outbox, _ in
            let types: [AlertType] = [
                .heartbeat, .sensorFault, .presenceAlarm, .tripClosed, .heartbeat, .alarmCleared, .sensorRecovered,
                .checkMissed,
            ]
            for (offset, type) in types.enumerated() {
                try outbox.enqueue(OutboxSamples.alert(type, at: offset), now: now)
            }
            var order: [AlertType] = []
            var seqs: [Int] = []
            while order.count < 20, let entry = try outbox.nextDue(now: now) {
                order.append(try #require(entry.type))
                seqs.append(entry.seq)
                try outbox.markDelivered(id: entry.id)
            }
            #expect(
                order == [
                    .presenceAlarm, .alarmCleared, .checkMissed, .sensorFault, .tripClosed, .sensorRecovered,
                    .heartbeat, .heartbeat,
                ])
            #expect(seqs == [3, 6, 8, 2, 4, 7, 1, 5])
            #expect(try outbox.markDelivered(id: AlertID.random()) == false)
        }
    }

    @Test("deferRetry counts the attempt and holds the row back; a deferral past the clamp counts as due")
    func deferral() throws {
        try withOutbox { outbox, _ in
            let alarm = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm), now: now)
            let heartbeat = try outbox.enqueue(OutboxSamples.alert(.heartbeat), now: now)
            #expect(try outbox.deferRetry(id: alarm.id, until: now.adding(seconds: 30)))
            // The alarm waits; the heartbeat is due meanwhile.
            #expect(try outbox.nextDue(now: now)?.id == heartbeat.id)
            #expect(try outbox.nextDue(now: now.adding(seconds: 29.999))?.id == heartbeat.id)
            let due = try #require(try outbox.nextDue(now: now.adding(seconds: 30)))
            #expect(due.id == alarm.id)
            #expect(due.attempts == 1)
            #expect(due.nextAttemptAt == now.adding(seconds: 30))
            // The wall clock went back a day (NTP after a boot without RTC): still due, not a day later.
            #expect(try outbox.deferRetry(id: alarm.id, until: now.adding(seconds: 86_400)))
            #expect(try outbox.nextDue(now: now)?.id == alarm.id)
            #expect(try outbox.nextDue(now: now)?.attempts == 2)
            #expect(try outbox.deferRetry(id: AlertID.random(), until: now) == false)
        }
    }

    @Test("a heartbeat carries the depth of the outbox when it was stored")
    func heartbeatDepth() throws {
        try withOutbox { outbox, _ in
            for offset in 0..<3 { try outbox.enqueue(OutboxSamples.alert(.checkMissed, at: offset), now: now) }
            let heartbeat = try outbox.enqueue(OutboxSamples.alert(.heartbeat), now: now)
            #expect(heartbeat.heartbeat?.outboxDepth == 3)
            let stored = try #require(try outbox.entries(limit: 10).last)
            #expect(try stored.alert().heartbeat?.outboxDepth == 3)
        }
    }

    @Test("the bound evicts the oldest heartbeats first and never an alarm, fault or trip summary")
    func boundEvictsHeartbeatsOnly() throws {
        try withOutbox(maxRows: 6) { outbox, _ in
            var heartbeatSeqs: [Int] = []
            var protectedIDs: [String] = []
            for offset in 0..<3 {
                heartbeatSeqs.append(try outbox.enqueue(OutboxSamples.alert(.heartbeat, at: offset), now: now).seq)
            }
            for type in [AlertType.presenceAlarm, .sensorFault, .tripClosed] {
                protectedIDs.append(try outbox.enqueue(OutboxSamples.alert(type), now: now).id)
            }
            #expect(outbox.depth == 6)
            #expect(outbox.evictionsSinceOpen == 0)

            // Full: each new alert evicts the oldest heartbeat.
            protectedIDs.append(try outbox.enqueue(OutboxSamples.alert(.checkMissed), now: now).id)
            #expect(outbox.depth == 6)
            #expect(outbox.evictionsSinceOpen == 1)
            var stored = try outbox.entries(limit: 100)
            #expect(stored.filter { $0.type == .heartbeat }.map(\.seq) == Array(heartbeatSeqs.dropFirst()))

            for type in [AlertType.alarmEscalated, .sensorRecovered] {
                protectedIDs.append(try outbox.enqueue(OutboxSamples.alert(type), now: now).id)
            }
            #expect(outbox.heartbeatCount == 0)
            #expect(outbox.evictionsSinceOpen == 3)
            #expect(!outbox.isOverBound)

            // Only protected rows left: accepted anyway, past the bound.
            for type in [AlertType.alarmAcknowledged, .alarmCleared, .presenceAlarm] {
                protectedIDs.append(try outbox.enqueue(OutboxSamples.alert(type), now: now).id)
            }
            #expect(outbox.depth == 9)
            #expect(outbox.isOverBound)
            #expect(outbox.evictionsSinceOpen == 3)

            // A heartbeat is still stored (never evicting itself); the next one replaces it.
            let first = try outbox.enqueue(OutboxSamples.alert(.heartbeat, at: 10), now: now)
            #expect(outbox.depth == 10)
            let second = try outbox.enqueue(OutboxSamples.alert(.heartbeat, at: 11), now: now)
            #expect(outbox.depth == 10)
            #expect(outbox.evictionsSinceOpen == 4)
            stored = try outbox.entries(limit: 100)
            #expect(Set(stored.map(\.id)) == Set(protectedIDs + [second.id]))
            #expect(!stored.contains { $0.id == first.id })
            #expect(outbox.evictedTotal == 4)
        }
    }

    @Test("the eviction count is kept in the file across restarts")
    func evictedTotalSurvives() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let configuration = OutboxSamples.configuration(maxRows: 2)
        do {
            let outbox = try Outbox(path: scratch.file(), configuration: configuration)
            for offset in 0..<5 { try outbox.enqueue(OutboxSamples.alert(.heartbeat, at: offset), now: now) }
            #expect(outbox.evictionsSinceOpen == 3)
            outbox.close()
        }
        let outbox = try Outbox(path: scratch.file(), configuration: configuration)
        defer { outbox.close() }
        #expect(outbox.evictionsSinceOpen == 0)
        #expect(outbox.evictedTotal == 3)
        #expect(outbox.heartbeatCount == 2)
    }

    @Test("dead-letter moves the row with status and the answer cut to the limit, in one transaction")
    func deadLetter() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        var configuration = Outbox.Configuration()
        configuration.answerLimitBytes = 10
        configuration.maxDeadLetters = 2
        let outbox = try Outbox(path: scratch.file(), configuration: configuration)
        defer { outbox.close() }
        let refused = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm), now: now)
        let kept = try outbox.enqueue(OutboxSamples.alert(.sensorFault), now: now)
        try outbox.deferRetry(id: refused.id, until: now)
        #expect(try outbox.deadLetter(id: refused.id, status: 422, answer: "bad field ไทย extra", now: now))
        #expect(outbox.depth == 1)
        #expect(outbox.deadLetterCount == 1)
        #expect(try outbox.nextDue(now: now)?.id == kept.id)
        let letter = try #require(try outbox.deadLetters(limit: 10).first)
        #expect(letter.id == refused.id)
        #expect(letter.seq == refused.seq)
        #expect(letter.httpStatus == 422)
        #expect(letter.answer == "bad field ")
        #expect(letter.attempts == 2)
        #expect(letter.deadAt == now)
        #expect(try CenterAlert(json: letter.body) == refused)
        #expect(try outbox.deadLetter(id: refused.id, status: 400, answer: "", now: now) == false)

        // Injected failure at the DELETE: the row stays in the outbox and no dead letter appears.
        outbox.inject(SQLiteFault(.step, sqlContaining: "DELETE FROM outbox WHERE id", code: SQLITE_IOERR))
        #expect(throws: OutboxError.self) {
            try outbox.deadLetter(id: kept.id, status: 400, answer: "no", now: now)
        }
        #expect(outbox.depth == 1)
        #expect(outbox.deadLetterCount == 1)
        #expect(try outbox.entries(limit: 10).map(\.id) == [kept.id])
        #expect(try outbox.deadLetters(limit: 10).map(\.id) == [refused.id])
        #expect(try outbox.integrityProblems() == [])

        // The dead-letter table keeps the newest `maxDeadLetters`.
        for offset in 0..<3 {
            let alert = try outbox.enqueue(OutboxSamples.alert(.checkMissed, at: offset), now: now)
            try outbox.deadLetter(id: alert.id, status: 400, answer: "", now: now.adding(seconds: Double(offset + 1)))
        }
        #expect(outbox.deadLetterCount == 2)
        #expect(try outbox.deadLetters(limit: 10).count == 2)
        #expect(try outbox.deadLetters(limit: 1).count == 1)
    }

    @Test("alerts and the saved state commit together: both or neither")
    func alertsAndStateTogether() throws {
        try withOutbox { outbox, _ in
            #expect(try outbox.savedState() == nil)
            let stored = try outbox.enqueue(
                [OutboxSamples.alert(.checkMissed), OutboxSamples.alert(.presenceAlarm)], savingState: "window ran out",
                now: now)
            #expect(stored.map(\.seq) == [1, 2])
            #expect(try outbox.savedState() == "window ran out")
            // A state change with no alert of its own.
            try outbox.enqueue([], savingState: "checked", now: now)
            #expect(try outbox.savedState() == "checked")
            #expect(outbox.depth == 2 && outbox.lastSeq == 2)
            // The second alert's insert fails: neither the first alert nor the state is kept.
            outbox.inject(SQLiteFault(.step, sqlContaining: "INSERT INTO outbox", code: SQLITE_FULL, skip: 1))
            var failed = false
            do {
                try outbox.enqueue(
                    [OutboxSamples.alert(.alarmEscalated), OutboxSamples.alert(.alarmCleared)],
                    savingState: "escalated",
                    now: now)
            } catch {
                failed = true
            }
            #expect(failed)
            #expect(try outbox.savedState() == "checked")
            #expect(outbox.depth == 2 && outbox.lastSeq == 2)
        }
    }

    @Test("SQLITE_FULL injected at the insert is a typed error and leaves the outbox as it was")
    func injectedDiskFullAtInsert() throws {
        try withOutbox { outbox, scratch in
            let first = try outbox.enqueue(OutboxSamples.alert(.checkMissed), now: now)
            outbox.inject(SQLiteFault(.step, sqlContaining: "INSERT INTO outbox", code: SQLITE_FULL))
            var caught: OutboxError?
            do {
                try outbox.enqueue(OutboxSamples.alert(.presenceAlarm), now: now)
            } catch let error as OutboxError {
                caught = error
            }
            guard case .sqlite(let failure) = try #require(caught) else {
                Issue.record("expected a SQLite error, got \(String(describing: caught))")
                return
            }
            #expect(failure.code == SQLITE_FULL)
            #expect(failure.isDiskFull)
            #expect(failure.codeName == "SQLITE_FULL")
            #expect(failure.operation == "step")
            #expect(failure.sql?.contains("INSERT INTO outbox") == true)
            #expect(failure.path == scratch.file())
            #expect(failure.injected)
            #expect(failure.description.contains("SQLITE_FULL"))

            #expect(outbox.depth == 1)
            #expect(outbox.lastSeq == first.seq)
            #expect(try outbox.entries(limit: 10).map(\.id) == [first.id])
            #expect(try outbox.integrityProblems() == [])
            // The seq was not used up, and the outbox works on.
            #expect(try outbox.enqueue(OutboxSamples.alert(.presenceAlarm), now: now).seq == first.seq + 1)
            #expect(outbox.depth == 2)
        }
    }

    @Test("a failure at COMMIT or at the eviction rolls the whole enqueue back")
    func injectedFailureLaterInTheTransaction() throws {
        try withOutbox(maxRows: 2) { outbox, scratch in
            let heartbeat = try outbox.enqueue(OutboxSamples.alert(.heartbeat), now: now)
            let alarm = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm), now: now)

            outbox.inject(SQLiteFault(.step, sqlContaining: "DELETE FROM outbox WHERE seq IN", code: SQLITE_IOERR))
            #expect(throws: OutboxError.self) { try outbox.enqueue(OutboxSamples.alert(.checkMissed), now: now) }
            outbox.inject(SQLiteFault(.step, sqlContaining: "COMMIT", code: SQLITE_FULL))
            #expect(throws: OutboxError.self) { try outbox.enqueue(OutboxSamples.alert(.checkMissed), now: now) }

            #expect(try outbox.entries(limit: 10).map(\.id) == [alarm.id, heartbeat.id])
            #expect(outbox.depth == 2)
            #expect(outbox.evictionsSinceOpen == 0)
            #expect(outbox.lastSeq == alarm.seq)
            outbox.close()

            let reopened = try Outbox(path: scratch.file(), configuration: OutboxSamples.configuration(maxRows: 2))
            defer { reopened.close() }
            #expect(try reopened.integrityProblems() == [])
            #expect(reopened.depth == 2)
            #expect(reopened.lastSeq == alarm.seq)
            #expect(try reopened.enqueue(OutboxSamples.alert(.checkMissed), now: now).seq == alarm.seq + 1)
            #expect(reopened.evictionsSinceOpen == 1)
        }
    }

    @Test("a failure on open and a failed prepare are typed errors too")
    func injectedOpenFailure() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        var configuration = Outbox.Configuration()
        configuration.faults = [SQLiteFault(.open, code: SQLITE_CANTOPEN)]
        #expect {
            try Outbox(path: scratch.file(), configuration: configuration)
        } throws: { error in
            guard case .sqlite(let failure) = error as? OutboxError else { return false }
            return failure.operation == "open" && failure.code == SQLITE_CANTOPEN && failure.path == scratch.file()
        }
        configuration.faults = [SQLiteFault(.prepare, sqlContaining: "journal_mode", code: SQLITE_NOMEM)]
        #expect(throws: OutboxError.self) { try Outbox(path: scratch.file(), configuration: configuration) }
        // Nothing was half-created that a clean open would choke on.
        let outbox = try Outbox(path: scratch.file())
        defer { outbox.close() }
        #expect(outbox.depth == 0)
    }

    @Test("the file is private (0600), in WAL mode, and a second open sees the same rows")
    func fileModeAndWAL() throws {
        try withOutbox { outbox, scratch in
            try outbox.enqueue(OutboxSamples.alert(.presenceAlarm), now: now)
            for suffix in ["", "-wal"] {
                var info = stat()
                #expect(stat(scratch.file() + suffix, &info) == 0, "no \(scratch.file() + suffix)")
                #expect(info.st_mode & 0o777 == 0o600, "mode of \(suffix.isEmpty ? "database" : suffix)")
            }
            let reader = try Outbox(path: scratch.file())
            defer { reader.close() }
            #expect(reader.depth == 1)
        }
    }

    @Test("an existing file with a wide mode is tightened to 0600")
    func tightensMode() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let descriptor = open(scratch.file(), O_CREAT | O_WRONLY, 0o644)
        #expect(descriptor >= 0)
        fchmod(descriptor, 0o644)
        close(descriptor)
        let outbox = try Outbox(path: scratch.file())
        defer { outbox.close() }
        var info = stat()
        #expect(stat(scratch.file(), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
    }

    @Test("a file that is not a database, or a damaged one, is reported clearly, never replaced")
    func damagedFile() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let garbage = String(repeating: "this is not an outbox ", count: 400)
        let descriptor = open(scratch.file(), O_CREAT | O_WRONLY, 0o600)
        #expect(descriptor >= 0)
        _ = garbage.withCString { write(descriptor, $0, strlen($0)) }
        close(descriptor)
        #expect {
            try Outbox(path: scratch.file())
        } throws: { error in
            guard case .damaged(let path, let problems) = error as? OutboxError else { return false }
            return path == scratch.file() && !problems.isEmpty
                && (error as? OutboxError)?.description.contains("damaged") == true
        }
        var info = stat()
        #expect(stat(scratch.file(), &info) == 0)
        #expect(Int(info.st_size) == garbage.utf8.count)

        // A real database whose index page is overwritten: quick_check on open catches it.
        let damaged = scratch.file("damaged.sqlite")
        do {
            let outbox = try Outbox(path: damaged)
            for offset in 0..<300 { try outbox.enqueue(OutboxSamples.alert(.checkMissed, at: offset), now: now) }
            outbox.close()
        }
        let pageSize = 4_096
        let handle = open(damaged, O_WRONLY)
        #expect(handle >= 0)
        let junk = [UInt8](repeating: 0x5A, count: pageSize)
        // Page 1 is the schema; pages after it hold the tables and indices. Smash a few in the middle.
        for page in [3, 5, 8] {
            _ = junk.withUnsafeBytes { pwrite(handle, $0.baseAddress, pageSize, off_t(page * pageSize)) }
        }
        close(handle)
        #expect(throws: OutboxError.self) { try Outbox(path: damaged) }
    }

    @Test("a schema from a newer build is refused; bad configuration is refused")
    func refusals() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        var db: OpaquePointer?
        #expect(sqlite3_open(scratch.file(), &db) == SQLITE_OK)
        #expect(sqlite3_exec(db, "PRAGMA user_version = 99", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(db)
        #expect(throws: OutboxError.unsupportedSchema(path: scratch.file(), version: 99, supported: 1)) {
            try Outbox(path: scratch.file())
        }
        var configuration = Outbox.Configuration()
        configuration.maxRows = 0
        #expect(throws: OutboxError.self) {
            try Outbox(path: scratch.file("other.sqlite"), configuration: configuration)
        }
    }

    @Test("a duplicate id is a constraint error; a closed outbox says so")
    func duplicateAndClosed() throws {
        try withOutbox { outbox, scratch in
            let alert = try outbox.enqueue(OutboxSamples.alert(.checkMissed), now: now)
            #expect {
                try outbox.enqueue(alert, now: now)
            } throws: { error in
                guard case .sqlite(let failure) = error as? OutboxError else { return false }
                return failure.isConstraintViolation
            }
            #expect(outbox.depth == 1)
            outbox.close()
            #expect(throws: OutboxError.closed(path: scratch.file())) { try outbox.nextDue(now: now) }
        }
    }

    @Test("enqueue and delivery from two threads at once keep the counts right")
    func concurrentUse() async throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file())
        defer { outbox.close() }
        let total = 200
        let start = now
        async let produced: Int = Task.detached {
            var count = 0
            for offset in 0..<total {
                if (try? outbox.enqueue(OutboxSamples.alert(.presenceAlarm, at: offset), now: start)) != nil {
                    count += 1
                }
            }
            return count
        }.value
        async let consumed: Int = Task.detached {
            var count = 0
            var rounds = 0
            // Both tasks share the concurrency pool with the rest of the suite: under a sanitizer the
            // producer may start seconds after this loop does.
            let deadline = outboxMonotonicNow() + budget(seconds: 30)
            while count < total, rounds < 100_000 * sanitizerSlowdown, outboxMonotonicNow() < deadline {
                rounds += 1
                if let entry = try? outbox.nextDue(now: start), (try? outbox.markDelivered(id: entry.id)) == true {
                    count += 1
                }
            }
            return count
        }.value
        let (made, delivered) = await (produced, consumed)
        #expect(made == total)
        #expect(delivered == total)
        #expect(outbox.depth == 0)
        #expect(outbox.lastSeq == total)
    }
}

func outboxMonotonicNow() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

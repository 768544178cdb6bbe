import Detection
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The durable outbox of SPEC.md's push protocol: every alert is committed here before anything is
/// sounded or sent, and deleted only after the center took it (2xx, or 409 duplicate).
///
/// A SQLite database in write-ahead-log mode with `synchronous=FULL`. Why FULL: in WAL mode,
/// `synchronous=NORMAL` syncs the WAL only at checkpoints, so a commit that `enqueue` already reported
/// can vanish if the power goes before the next checkpoint (the van's battery is cut, a power dip).
/// FULL fsyncs the WAL on every commit, which is what SPEC.md's "survives kill -9 and power loss"
/// needs: once `enqueue` returns, the alert is on the storage device. `headcount-outbox-bench` measures
/// the cost on the board's disk (it reports both, NORMAL labelled as not what the daemon uses).
///
/// Schema (version 1, in `PRAGMA user_version`):
/// ```
/// outbox(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, type TEXT, priority INTEGER, body TEXT,
///        created_at INTEGER, attempts INTEGER, next_attempt_at INTEGER)   -- index (priority, seq)
/// dead_letter(seq INTEGER PRIMARY KEY, id TEXT UNIQUE, type TEXT, body TEXT, created_at INTEGER,
///             attempts INTEGER, http_status INTEGER, answer TEXT, dead_at INTEGER)
/// meta(key TEXT PRIMARY KEY, value INTEGER)   -- 'last_seq', 'evicted_total'
/// saved_state(key TEXT PRIMARY KEY, value TEXT) -- 'detection': the daemon's memory, see enqueue(_:savingState:)
/// ```
/// Times are milliseconds since the epoch. `seq` is taken from `meta.last_seq` inside the transaction
/// that stores the alert, so it keeps increasing across restarts even when every row was delivered.
///
/// The size bound (`Configuration.maxRows`) evicts only heartbeats, oldest first, never the one being
/// stored. Every other type (the alarms, sensor_fault, sensor_recovered, trip_closed) is protected:
/// when only protected rows remain, the outbox accepts the alert anyway and grows past the bound
/// (`isOverBound`), because losing an alarm is worse than a bigger file. `evictionsSinceOpen` and
/// `evictedTotal` let the daemon log "outbox full: evicted N heartbeats".
///
/// The file is created with mode 0600 (SQLite gives its -wal and -shm files the same mode), checked
/// with `PRAGMA quick_check` on open, and a damaged file is reported (`OutboxError.damaged`), never
/// silently replaced.
///
/// All calls are synchronous and may block on an fsync: call them from a thread the caller owns, not
/// from the Swift concurrency pool. The outbox is `Sendable`: a lock serialises its calls, so the engine
/// thread may enqueue while the delivery thread marks rows delivered. One process writes the file (the
/// daemon): `depth` and the other counts are kept in memory, loaded on open and after a failed call;
/// `seq` is read from the file in every enqueue, so even a second writer could never reuse one.
public final class Outbox: Sendable {
    /// The schema version this build writes and reads.
    public static let schemaVersion = 1

    public let path: String
    public let configuration: Configuration
    private let state: Mutex<State>

    private struct State {
        var db: SQLiteConnection?
        var lastSeq = 0
        var depth = 0
        var heartbeats = 0
        var deadLetters = 0
        var evictedTotal = 0
        var evictionsSinceOpen = 0
        /// A transaction failed: reload the counters from the file before trusting them again.
        var stale = false
    }

    /// Opens the outbox at `path`, creating it (mode 0600) if needed, and checks it.
    ///
    /// The directory must exist (the systemd unit's `StateDirectory=` makes /var/lib/headcount).
    public init(path: String, configuration: Configuration = Configuration()) throws(OutboxError) {
        guard configuration.maxRows >= 1, configuration.maxDeadLetters >= 1, configuration.answerLimitBytes >= 0,
            configuration.maxDeferralSeconds > 0
        else {
            throw .invalidConfiguration("maxRows and maxDeadLetters must be at least 1, maxDeferralSeconds above 0")
        }
        self.path = path
        self.configuration = configuration
        try Self.prepareFile(path)
        let db = try Self.sqlite(path) { () throws(SQLiteError) in
            try SQLiteConnection(path: path, faults: configuration.faults)
        }
        var opened = State()
        opened.db = db
        do throws(OutboxError) {
            db.setBusyTimeout(milliseconds: configuration.busyTimeoutMilliseconds)
            try Self.check(db, path: path, full: configuration.fullIntegrityCheckOnOpen)
            try Self.configure(db, path: path, normal: configuration.synchronousNormalForBenchmarkOnly)
            try Self.migrate(db, path: path)
            try Self.sqlite(path) { () throws(SQLiteError) in try Self.load(db, into: &opened) }
        } catch {
            db.close()
            throw error
        }
        // The -wal file now exists; make its directory entry durable with the database's.
        Self.syncDirectory(of: path)
        state = Mutex(opened)
    }

    // MARK: The API

    /// Stores `alert` durably and returns it with its `seq`; returns only after the commit is on disk.
    ///
    /// One transaction: the next seq from `meta`, the row, the new `last_seq`, and the eviction of the
    /// oldest heartbeats if the bound is exceeded. A heartbeat gets `outbox_depth` filled in with the
    /// rows waiting before it. On error nothing is stored (the seq is not used up); the caller still
    /// has the alert and must not withhold the alarm's sound because the disk failed.
    @discardableResult
    public func enqueue(_ alert: CenterAlert, now: WallClockTime = .now()) throws(OutboxError) -> CenterAlert {
        try enqueue([alert], savingState: nil, now: now)[0]
    }

    /// Stores `alerts` and, in the same transaction, `savedState` (the daemon's detection memory), so
    /// that a crash leaves both or neither: after a restart the daemon never raises again an alarm
    /// whose alert it had already stored, nor forgets one it had raised. Returns the alerts with their
    /// seqs, after the commit.
    @discardableResult
    public func enqueue(_ alerts: [CenterAlert], savingState savedState: String?, now: WallClockTime = .now())
        throws(OutboxError) -> [CenterAlert]
    {
        let maxRows = configuration.maxRows
        return try withDatabase { (db, state) throws(SQLiteError) -> [CenterAlert] in
            var stored: [CenterAlert] = []
            var evicted = 0
            var heartbeats = 0
            var seq = state.lastSeq
            var depth = state.depth
            try Self.transaction(db) { () throws(SQLiteError) in
                let last = try db.integer("SELECT value FROM meta WHERE key = 'last_seq'") ?? 0
                seq = max(last, state.lastSeq)
                for alert in alerts {
                    var row = alert
                    seq += 1
                    row.seq = seq
                    let priority = Priority(alert.type)
                    if row.heartbeat != nil { row.heartbeat?.outboxDepth = depth }
                    try db.run(
                        """
                        INSERT INTO outbox (seq, id, type, priority, body, created_at, attempts, next_attempt_at)
                        VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)
                        """,
                        [
                            .int(row.seq), .text(row.id), .text(row.type.rawValue), .int(priority.rawValue),
                            .text(row.json), .int(Int(now.millisecondsSinceEpoch)),
                        ])
                    depth += 1
                    if priority == .heartbeat { heartbeats += 1 }
                    let excess = depth - maxRows
                    if excess > 0 {
                        let removed = try db.run(
                            """
                            DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE priority = 2 AND seq <> ?1
                            ORDER BY seq LIMIT ?2)
                            """, [.int(row.seq), .int(excess)])
                        if removed > 0 {
                            try db.run(
                                "UPDATE meta SET value = value + ?1 WHERE key = 'evicted_total'", [.int(removed)])
                        }
                        evicted += removed
                        depth -= removed
                    }
                    stored.append(row)
                }
                if !alerts.isEmpty { try db.run("UPDATE meta SET value = ?1 WHERE key = 'last_seq'", [.int(seq)]) }
                if let savedState {
                    try db.run(
                        "INSERT OR REPLACE INTO saved_state (key, value) VALUES ('detection', ?1)", [.text(savedState)])
                }
            }
            state.lastSeq = seq
            state.depth = depth
            state.heartbeats += heartbeats - evicted
            state.evictedTotal += evicted
            state.evictionsSinceOpen += evicted
            return stored
        }
    }

    /// What `enqueue(_:savingState:)` last saved, if anything.
    public func savedState() throws(OutboxError) -> String? {
        try withDatabase { (db, _) throws(SQLiteError) -> String? in
            try db.texts("SELECT value FROM saved_state WHERE key = 'detection'", limit: 1).first
        }
    }

    /// The entry to deliver next: the lowest (priority, seq) among the rows due at `now`, so alarms go
    /// before everything else and heartbeats last. A row deferred more than `maxDeferralSeconds` past
    /// `now` counts as due (the wall clock went back).
    public func nextDue(now: WallClockTime) throws(OutboxError) -> Entry? {
        let horizon = now.adding(seconds: configuration.maxDeferralSeconds)
        return try withDatabase { (db, _) throws(SQLiteError) -> Entry? in
            let statement = try db.statement(
                """
                SELECT seq, id, type, priority, body, created_at, attempts, next_attempt_at FROM outbox
                WHERE next_attempt_at <= ?1 OR next_attempt_at > ?2 ORDER BY priority, seq LIMIT 1
                """)
            defer { statement.reset() }
            try statement.bind([.int(Int(now.millisecondsSinceEpoch)), .int(Int(horizon.millisecondsSinceEpoch))])
            guard try statement.step() else { return nil }
            return Self.entry(statement)
        }
    }

    /// The waiting entries in delivery order (priority, then seq), due or not: for `diagnose` and tests.
    public func entries(limit: Int) throws(OutboxError) -> [Entry] {
        try withDatabase { (db, _) throws(SQLiteError) -> [Entry] in
            let statement = try db.statement(
                """
                SELECT seq, id, type, priority, body, created_at, attempts, next_attempt_at FROM outbox
                ORDER BY priority, seq LIMIT ?1
                """)
            defer { statement.reset() }
            try statement.bind([.int(max(limit, 0))])
            var entries: [Entry] = []
            while entries.count < limit, try statement.step() { entries.append(Self.entry(statement)) }
            return entries
        }
    }

    /// Deletes a delivered alert (the center answered 2xx or 409). False when no row has this id.
    @discardableResult
    public func markDelivered(id: String) throws(OutboxError) -> Bool {
        try withDatabase { (db, state) throws(SQLiteError) -> Bool in
            let heartbeat = try db.integer("SELECT priority = 2 FROM outbox WHERE id = ?1", [.text(id)]) == 1
            let deleted = try db.run("DELETE FROM outbox WHERE id = ?1", [.text(id)])
            state.depth -= deleted
            if heartbeat { state.heartbeats -= deleted }
            return deleted > 0
        }
    }

    /// Counts a failed attempt and makes the row wait until `until`. False when no row has this id.
    @discardableResult
    public func deferRetry(id: String, until: WallClockTime) throws(OutboxError) -> Bool {
        try withDatabase { (db, _) throws(SQLiteError) -> Bool in
            let changed = try db.run(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2 WHERE id = ?1",
                [.text(id), .int(Int(until.millisecondsSinceEpoch))])
            return changed > 0
        }
    }

    /// Moves a refused alert to the dead-letter table with the HTTP status and the server's answer (cut to
    /// `answerLimitBytes`), in one transaction. False when no row has this id.
    @discardableResult
    public func deadLetter(id: String, status: Int, answer: String, now: WallClockTime = .now()) throws(OutboxError)
        -> Bool
    {
        let answer = Self.truncate(answer, toUTF8Bytes: configuration.answerLimitBytes)
        let maxDeadLetters = configuration.maxDeadLetters
        return try withDatabase { (db, state) throws(SQLiteError) -> Bool in
            var moved = false
            var heartbeat = false
            var deadLetters = state.deadLetters
            try Self.transaction(db) { () throws(SQLiteError) in
                heartbeat = try db.integer("SELECT priority = 2 FROM outbox WHERE id = ?1", [.text(id)]) == 1
                let inserted = try db.run(
                    """
                    INSERT OR REPLACE INTO dead_letter
                    (seq, id, type, body, created_at, attempts, http_status, answer, dead_at)
                    SELECT seq, id, type, body, created_at, attempts + 1, ?2, ?3, ?4 FROM outbox WHERE id = ?1
                    """,
                    [.text(id), .int(status), .text(answer), .int(Int(now.millisecondsSinceEpoch))])
                guard inserted > 0 else { return }
                try db.run("DELETE FROM outbox WHERE id = ?1", [.text(id)])
                let count = try db.integer("SELECT count(*) FROM dead_letter") ?? 0
                if count > maxDeadLetters {
                    try db.run(
                        "DELETE FROM dead_letter WHERE seq IN (SELECT seq FROM dead_letter ORDER BY seq LIMIT ?1)",
                        [.int(count - maxDeadLetters)])
                }
                deadLetters = min(count, maxDeadLetters)
                moved = true
            }
            if moved {
                state.depth -= 1
                if heartbeat { state.heartbeats -= 1 }
                state.deadLetters = deadLetters
            }
            return moved
        }
    }

    /// The most recent dead letters, newest first.
    public func deadLetters(limit: Int) throws(OutboxError) -> [DeadLetter] {
        try withDatabase { (db, _) throws(SQLiteError) -> [DeadLetter] in
            let statement = try db.statement(
                """
                SELECT seq, id, type, body, created_at, attempts, http_status, answer, dead_at FROM dead_letter
                ORDER BY dead_at DESC, seq DESC LIMIT ?1
                """)
            defer { statement.reset() }
            try statement.bind([.int(max(limit, 0))])
            var letters: [DeadLetter] = []
            while letters.count < limit, try statement.step() {
                letters.append(
                    DeadLetter(
                        seq: statement.int(0), id: statement.text(1), typeName: statement.text(2),
                        body: statement.text(3),
                        createdAt: WallClockTime(millisecondsSinceEpoch: Int64(statement.int(4))),
                        attempts: statement.int(5), httpStatus: statement.int(6), answer: statement.text(7),
                        deadAt: WallClockTime(millisecondsSinceEpoch: Int64(statement.int(8)))))
            }
            return letters
        }
    }

    /// Alerts waiting for delivery.
    public var depth: Int { state.withLock { $0.depth } }
    /// Heartbeats among them (the evictable rows).
    public var heartbeatCount: Int { state.withLock { $0.heartbeats } }
    public var deadLetterCount: Int { state.withLock { $0.deadLetters } }
    /// The last seq given out (kept in `meta`, so it survives restarts and empty outboxes).
    public var lastSeq: Int { state.withLock { $0.lastSeq } }
    /// More rows than `maxRows`: only protected alerts (alarms, faults, trip summaries) are left to keep.
    public var isOverBound: Bool { state.withLock { $0.depth > configuration.maxRows } }
    /// Heartbeats evicted by the size bound since this outbox was opened.
    public var evictionsSinceOpen: Int { state.withLock { $0.evictionsSinceOpen } }
    /// Heartbeats evicted over the life of the file.
    public var evictedTotal: Int { state.withLock { $0.evictedTotal } }

    /// Runs `PRAGMA integrity_check` (full) or `quick_check`; returns the problems, empty when sound.
    public func integrityProblems(full: Bool = true) throws(OutboxError) -> [String] {
        try withDatabase { (db, _) throws(SQLiteError) -> [String] in
            let rows = try db.texts(full ? "PRAGMA integrity_check(100)" : "PRAGMA quick_check(100)", limit: 100)
            return rows == ["ok"] ? [] : rows
        }
    }

    /// Closes the database; later calls throw `OutboxError.closed`. Also done when the outbox is released.
    public func close() {
        state.withLock { state in
            state.db?.close()
            state.db = nil
        }
    }

    /// Package-internal: fail a SQLite call on purpose (tests).
    package func inject(_ fault: SQLiteFault) {
        state.withLock { $0.db?.faults.append(fault) }
    }

    // MARK: Internals

    /// Runs `body` under the lock with the open connection; a SQLite failure marks the counters stale.
    private func withDatabase<Result: Sendable>(
        _ body: (SQLiteConnection, inout State) throws(SQLiteError) -> Result
    ) throws(OutboxError) -> Result {
        let path = self.path
        return try state.withLock { (state: inout State) throws(OutboxError) -> Result in
            guard let db = state.db, db.isOpen else { throw .closed(path: path) }
            do throws(SQLiteError) {
                if state.stale {
                    try Self.load(db, into: &state)
                    state.stale = false
                }
                return try body(db, &state)
            } catch {
                state.stale = true
                throw .sqlite(error)
            }
        }
    }

    /// BEGIN IMMEDIATE (the write lock up front, so a busy database waits at the start, not at COMMIT),
    /// `body`, COMMIT; any failure rolls back.
    private static func transaction(_ db: SQLiteConnection, _ body: () throws(SQLiteError) -> Void)
        throws(SQLiteError)
    {
        try db.run("BEGIN IMMEDIATE")
        do throws(SQLiteError) {
            try body()
            try db.run("COMMIT")
        } catch {
            db.rollbackQuietly()
            throw error
        }
    }

    /// Creates the file with mode 0600 if needed and tightens the mode of an existing one (and of its
    /// -wal and -shm files), before SQLite opens it.
    private static func prepareFile(_ path: String) throws(OutboxError) {
        let existed = access(path, F_OK) == 0
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw .file(path: path, operation: "open", errno: errno) }
        let changed = fchmod(descriptor, 0o600)
        let chmodErrno = errno
        _ = systemClose(descriptor)
        guard changed == 0 else { throw .file(path: path, operation: "fchmod 0600", errno: chmodErrno) }
        for suffix in ["-wal", "-shm"] where access(path + suffix, F_OK) == 0 {
            guard chmod(path + suffix, 0o600) == 0 else {
                throw .file(path: path + suffix, operation: "chmod 0600", errno: errno)
            }
        }
        if !existed { syncDirectory(of: path) }
    }

    /// fsync of the directory holding `path`, so a newly created file's name survives a power cut.
    private static func syncDirectory(of path: String) {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        _ = systemClose(descriptor)
    }

    /// The entry on the statement's current row (columns as in `nextDue`).
    private static func entry(_ row: SQLiteStatement) -> Entry {
        Entry(
            seq: row.int(0), id: row.text(1), typeName: row.text(2), priority: row.int(3), body: row.text(4),
            createdAt: WallClockTime(millisecondsSinceEpoch: Int64(row.int(5))), attempts: row.int(6),
            nextAttemptAt: WallClockTime(millisecondsSinceEpoch: Int64(row.int(7))))
    }

    /// Runs `body`, turning a SQLite failure into `OutboxError` (a file that is not a database, or a
    /// damaged one, into `.damaged`).
    private static func sqlite<Result>(_ path: String, _ body: () throws(SQLiteError) -> Result) throws(OutboxError)
        -> Result
    {
        do throws(SQLiteError) {
            return try body()
        } catch {
            if error.isCorrupt { throw .damaged(path: path, problems: ["\(error.message) (\(error.codeName))"]) }
            throw .sqlite(error)
        }
    }

    private static func check(_ db: SQLiteConnection, path: String, full: Bool) throws(OutboxError) {
        let problems = try sqlite(path) { () throws(SQLiteError) in
            try db.texts(full ? "PRAGMA integrity_check(100)" : "PRAGMA quick_check(100)", limit: 100)
        }
        guard problems == ["ok"] else { throw .damaged(path: path, problems: problems) }
    }

    private static func configure(_ db: SQLiteConnection, path: String, normal: Bool) throws(OutboxError) {
        let mode = try sqlite(path) { () throws(SQLiteError) in
            try db.texts("PRAGMA journal_mode = WAL", limit: 1).first ?? ""
        }
        guard mode.lowercased() == "wal" else { throw .walUnavailable(path: path, journalMode: mode) }
        let wanted = normal ? 1 : 2
        let value = try sqlite(path) { () throws(SQLiteError) in
            try db.run(normal ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL")
            // After a checkpoint the WAL is cut back to 4 MiB, so it does not keep a burst's size.
            try db.run("PRAGMA journal_size_limit = 4194304")
            return try db.integer("PRAGMA synchronous") ?? -1
        }
        guard value == wanted else { throw .synchronousNotApplied(path: path, value: value) }
    }

    /// Creates the tables of schema version 1 in a new file; refuses a newer version.
    private static func migrate(_ db: SQLiteConnection, path: String) throws(OutboxError) {
        let version = try sqlite(path) { () throws(SQLiteError) in try db.integer("PRAGMA user_version") ?? 0 }
        guard version <= schemaVersion else {
            throw .unsupportedSchema(path: path, version: version, supported: schemaVersion)
        }
        guard version < schemaVersion else { return }
        try sqlite(path) { () throws(SQLiteError) in
            try transaction(db) { () throws(SQLiteError) in
                for sql in schema { try db.runOnce(sql) }
                try db.runOnce("PRAGMA user_version = \(schemaVersion)")
            }
        }
    }

    private static let schema = [
        """
        CREATE TABLE IF NOT EXISTS outbox (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            priority INTEGER NOT NULL CHECK (priority IN (0, 1, 2)),
            body TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX IF NOT EXISTS outbox_order ON outbox (priority, seq)",
        """
        CREATE TABLE IF NOT EXISTS dead_letter (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            http_status INTEGER NOT NULL,
            answer TEXT NOT NULL,
            dead_at INTEGER NOT NULL
        )
        """,
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('last_seq', 0), ('evicted_total', 0)",
        // The daemon's detection memory, written in the same transaction as the alerts it raised.
        "CREATE TABLE IF NOT EXISTS saved_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ]

    /// Reads the counters from the file. `last_seq` is raised to the highest seq stored anywhere, in case
    /// the meta row was lost or edited: a seq is never given out twice.
    private static func load(_ db: SQLiteConnection, into state: inout State) throws(SQLiteError) {
        let meta = try db.integer("SELECT value FROM meta WHERE key = 'last_seq'") ?? 0
        let outbox = try db.integer("SELECT max(seq) FROM outbox") ?? 0
        let dead = try db.integer("SELECT max(seq) FROM dead_letter") ?? 0
        state.lastSeq = max(meta, outbox, dead, state.lastSeq)
        state.depth = try db.integer("SELECT count(*) FROM outbox") ?? 0
        state.heartbeats = try db.integer("SELECT count(*) FROM outbox WHERE priority = 2") ?? 0
        state.deadLetters = try db.integer("SELECT count(*) FROM dead_letter") ?? 0
        state.evictedTotal = try db.integer("SELECT value FROM meta WHERE key = 'evicted_total'") ?? 0
    }

    /// The longest prefix of `text` that fits in `limit` UTF-8 bytes without splitting a character.
    static func truncate(_ text: String, toUTF8Bytes limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var result = ""
        var used = 0
        for character in text {
            let size = character.utf8.count
            guard used + size <= limit else { break }
            result.append(character)
            used += size
        }
        return result
    }
}

/// libc's close(2), which `Outbox.close()` hides inside the class.
private func systemClose(_ descriptor: Int32) -> Int32 { close(descriptor) }

import Detection

/// Why the outbox could not do what it was asked. Every case names the database file.
public enum OutboxError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A SQLite call failed (disk full, I/O error, a constraint); the transaction was rolled back.
    case sqlite(SQLiteError)
    /// `PRAGMA quick_check`/`integrity_check` found damage, or the file is not a database at all.
    case damaged(path: String, problems: [String])
    /// SQLite would not switch to write-ahead logging (the file system lacks shared memory or locking).
    case walUnavailable(path: String, journalMode: String)
    /// `PRAGMA synchronous` did not take the value the outbox needs.
    case synchronousNotApplied(path: String, value: Int)
    /// The file was written by a newer version of headcount.
    case unsupportedSchema(path: String, version: Int, supported: Int)
    /// Creating the file or setting its mode failed.
    case file(path: String, operation: String, errno: Int32)
    /// The outbox was closed.
    case closed(path: String)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .sqlite(let error):
            return error.description
        case .damaged(let path, let problems):
            let shown = problems.prefix(5).joined(separator: "; ")
            return "\(path): the outbox database is damaged (\(problems.count) problem(s)): \(shown)"
        case .walUnavailable(let path, let mode):
            return "\(path): cannot use write-ahead logging (journal_mode is \(mode)); is it on a local file system?"
        case .synchronousNotApplied(let path, let value):
            return "\(path): PRAGMA synchronous is \(value) after setting it"
        case .unsupportedSchema(let path, let version, let supported):
            return "\(path): outbox schema version \(version) is newer than this build's \(supported)"
        case .file(let path, let operation, let errno):
            return "\(path): \(operation) failed (errno \(errno))"
        case .closed(let path):
            return "\(path): the outbox is closed"
        case .invalidConfiguration(let message):
            return "outbox configuration: \(message)"
        }
    }
}

extension Outbox {
    /// Delivery order: every alarm before anything else, heartbeats last; by `seq` within a priority.
    public enum Priority: Int, Sendable, Comparable, CaseIterable {
        /// check_missed, presence_alarm, alarm_escalated, alarm_acknowledged, alarm_cleared: never evicted.
        case alarm = 0
        /// sensor_fault, sensor_recovered, trip_closed: never evicted.
        case event = 1
        /// Heartbeats: the only rows the size bound evicts, oldest first.
        case heartbeat = 2

        public init(_ type: AlertType) {
            if type.isAlarm {
                self = .alarm
            } else if type == .heartbeat {
                self = .heartbeat
            } else {
                self = .event
            }
        }

        public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// Settings of an outbox. The defaults are what the daemon uses.
    public struct Configuration: Sendable {
        /// The size bound in rows. When full, the oldest heartbeats are evicted; alarms, faults and trip
        /// summaries never are, so the outbox grows past the bound rather than lose one (`isOverBound`).
        public var maxRows: Int = 10_000
        /// Dead letters kept; beyond this the oldest are dropped (they are also in the journal).
        public var maxDeadLetters: Int = 1_000
        /// The server's answer is cut to this many UTF-8 bytes in the dead-letter table.
        public var answerLimitBytes: Int = 1_024
        /// How long a write waits for another connection's lock (a technician's `sqlite3` shell).
        public var busyTimeoutMilliseconds: Int32 = 5_000
        /// A row deferred further than this into the future counts as due: the wall clock jumped back
        /// (NTP after a boot without a real-time clock), and no alert may wait for the clock to catch up.
        public var maxDeferralSeconds: Double = 600
        /// `quick_check` on open (default; O(pages)), or the full `integrity_check` (also checks indices).
        public var fullIntegrityCheckOnOpen: Bool = false
        /// `PRAGMA synchronous=NORMAL` instead of FULL. Only for the bench's comparison: in WAL mode
        /// NORMAL can lose the last commits on power loss, which the outbox may never do.
        package var synchronousNormalForBenchmarkOnly: Bool = false
        /// Failures for tests to inject at the SQLite call sites.
        package var faults: [SQLiteFault] = []

        public init() {}
    }

    /// One alert waiting for delivery.
    public struct Entry: Equatable, Sendable {
        public var seq: Int
        /// The alert id, also the `Idempotency-Key`.
        public var id: String
        /// The alert type as stored (`AlertType` raw value).
        public var typeName: String
        public var priority: Int
        /// The alert's JSON, `seq` included: the POST body, byte for byte.
        public var body: String
        public var createdAt: WallClockTime
        /// Failed delivery attempts so far (for the back-off).
        public var attempts: Int
        public var nextAttemptAt: WallClockTime

        public var type: AlertType? { AlertType(rawValue: typeName) }

        /// The stored alert, decoded from `body`.
        public func alert() throws(AlertDecodingError) -> CenterAlert { try CenterAlert(json: body) }
    }

    /// An alert the center refused for good (a 4xx other than 408/425/429).
    public struct DeadLetter: Equatable, Sendable {
        public var seq: Int
        public var id: String
        public var typeName: String
        public var body: String
        public var createdAt: WallClockTime
        /// Delivery attempts, the refused one included.
        public var attempts: Int
        public var httpStatus: Int
        /// The server's answer, cut to `Configuration.answerLimitBytes`.
        public var answer: String
        public var deadAt: WallClockTime
    }
}

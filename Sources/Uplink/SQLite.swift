import CSQLite

// The one place that calls sqlite3_*: a connection, its cached prepared statements, typed errors and
// the injection point through which tests make a named call fail (as hostapd does at its call sites).

/// A failed SQLite call, with what the journal needs: the file, the call, the SQL, SQLite's codes and
/// message.
public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The database file.
    public var path: String
    /// The C call that failed: `open`, `prepare`, `bind` or `step`.
    public var operation: String
    /// The statement, when the failure belongs to one.
    public var sql: String?
    /// The primary result code (`SQLITE_FULL` is 13).
    public var code: Int32
    /// The extended result code (`SQLITE_IOERR_FSYNC` is 1034).
    public var extendedCode: Int32
    public var message: String
    /// The failure was injected by a test, not returned by SQLite.
    public var injected: Bool

    public init(
        path: String, operation: String, sql: String?, code: Int32, extendedCode: Int32, message: String,
        injected: Bool = false
    ) {
        self.path = path
        self.operation = operation
        self.sql = sql
        self.code = code
        self.extendedCode = extendedCode
        self.message = message
        self.injected = injected
    }

    /// The symbolic name of the primary code, such as `SQLITE_FULL`.
    public var codeName: String { SQLiteError.name(of: code) }

    public var description: String {
        var text = "\(path): sqlite3 \(operation) failed: \(message) (\(codeName), extended code \(extendedCode))"
        if let sql { text += " in `\(sql)`" }
        if injected { text += " [injected]" }
        return text
    }

    /// Disk full or quota exceeded.
    public var isDiskFull: Bool { code == SQLITE_FULL }
    /// The file is not a database, or it is damaged.
    public var isCorrupt: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }
    public var isConstraintViolation: Bool { code == SQLITE_CONSTRAINT }

    static func name(of code: Int32) -> String {
        switch code {
        case SQLITE_OK: "SQLITE_OK"
        case SQLITE_ERROR: "SQLITE_ERROR"
        case SQLITE_INTERNAL: "SQLITE_INTERNAL"
        case SQLITE_PERM: "SQLITE_PERM"
        case SQLITE_ABORT: "SQLITE_ABORT"
        case SQLITE_BUSY: "SQLITE_BUSY"
        case SQLITE_LOCKED: "SQLITE_LOCKED"
        case SQLITE_NOMEM: "SQLITE_NOMEM"
        case SQLITE_READONLY: "SQLITE_READONLY"
        case SQLITE_INTERRUPT: "SQLITE_INTERRUPT"
        case SQLITE_IOERR: "SQLITE_IOERR"
        case SQLITE_CORRUPT: "SQLITE_CORRUPT"
        case SQLITE_NOTFOUND: "SQLITE_NOTFOUND"
        case SQLITE_FULL: "SQLITE_FULL"
        case SQLITE_CANTOPEN: "SQLITE_CANTOPEN"
        case SQLITE_PROTOCOL: "SQLITE_PROTOCOL"
        case SQLITE_SCHEMA: "SQLITE_SCHEMA"
        case SQLITE_TOOBIG: "SQLITE_TOOBIG"
        case SQLITE_CONSTRAINT: "SQLITE_CONSTRAINT"
        case SQLITE_MISMATCH: "SQLITE_MISMATCH"
        case SQLITE_MISUSE: "SQLITE_MISUSE"
        case SQLITE_AUTH: "SQLITE_AUTH"
        case SQLITE_RANGE: "SQLITE_RANGE"
        case SQLITE_NOTADB: "SQLITE_NOTADB"
        default: "SQLITE_\(code)"
        }
    }
}

/// The SQLite library linked in (for the bench and `diagnose`).
public enum SQLiteLibrary {
    /// The library's version text, such as "3.40.1".
    public static var version: String { String(cString: sqlite3_libversion()) }
}

/// The wrapper's C calls that a test can make fail.
package enum SQLiteCall: String, Sendable {
    case open
    case prepare
    case bind
    case step
}

/// A planned failure: the `skip + 1`-th matching call (and the `count - 1` after it) returns `code`
/// instead of reaching SQLite. The statement is then not run at all, like a write the disk refused.
package struct SQLiteFault: Sendable {
    package var call: SQLiteCall
    /// Only statements whose SQL contains this text (nil: any).
    package var sqlContaining: String?
    package var code: Int32
    package var skip: Int
    package var count: Int

    package init(_ call: SQLiteCall, sqlContaining: String? = nil, code: Int32, skip: Int = 0, count: Int = 1) {
        self.call = call
        self.sqlContaining = sqlContaining
        self.code = code
        self.skip = skip
        self.count = count
    }
}

/// A value bound to a statement parameter.
enum SQLiteValue {
    case int(Int)
    case text(String)
    case null
}

/// An open database connection with a cache of prepared statements. Not thread-safe: its owner
/// (the `Outbox`) serialises every use.
final class SQLiteConnection {
    let path: String
    private var handle: OpaquePointer?
    private var cache: [String: SQLiteStatement] = [:]
    var faults: [SQLiteFault]

    /// Opens (creating if needed) the database at `path` with extended result codes.
    init(path: String, faults: [SQLiteFault] = []) throws(SQLiteError) {
        self.path = path
        self.faults = faults
        if let code = injectedFailure(.open, sql: nil) {
            throw injectedError(.open, sql: nil, code: code)
        }
        var db: OpaquePointer?
        // NOMUTEX: the owner serialises; NOFOLLOW: a symlink planted at the path is refused.
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW
        let result = sqlite3_open_v2(path, &db, flags, nil)
        guard result == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(result))
            let extended = db.map { sqlite3_extended_errcode($0) } ?? result
            sqlite3_close_v2(db)
            throw SQLiteError(
                path: path, operation: SQLiteCall.open.rawValue, sql: nil, code: result & 0xFF,
                extendedCode: extended, message: message)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { close() }

    /// Finalises every statement and closes the connection; later calls fail with SQLITE_MISUSE.
    func close() {
        for statement in cache.values { statement.finalize() }
        cache.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    var isOpen: Bool { handle != nil }

    func setBusyTimeout(milliseconds: Int32) {
        if let handle { sqlite3_busy_timeout(handle, milliseconds) }
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

    /// True inside BEGIN ... COMMIT (SQLite may have rolled back by itself after an I/O error).
    var inTransaction: Bool { handle.map { sqlite3_get_autocommit($0) == 0 } ?? false }

    /// The cached prepared statement for `sql`, preparing it on first use.
    func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = cache[sql] { return cached }
        if let code = injectedFailure(.prepare, sql: sql) {
            throw injectedError(.prepare, sql: sql, code: code)
        }
        guard let handle else { throw closedError(.prepare, sql: sql) }
        var prepared: OpaquePointer?
        let result = sqlite3_prepare_v2(handle, sql, -1, &prepared, nil)
        guard result == SQLITE_OK, let prepared else {
            sqlite3_finalize(prepared)
            throw error(.prepare, sql: sql, code: result)
        }
        let statement = SQLiteStatement(handle: prepared, sql: sql, connection: self)
        cache[sql] = statement
        return statement
    }

    /// Runs a statement that returns no rows we need; returns the number of rows it changed.
    @discardableResult
    func run(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        let statement = try statement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        while try statement.step() {}
        return changes
    }

    /// Prepares, runs and finalises a one-off statement (schema changes), without caching it.
    func runOnce(_ sql: String) throws(SQLiteError) {
        if let code = injectedFailure(.prepare, sql: sql) {
            throw injectedError(.prepare, sql: sql, code: code)
        }
        guard let handle else { throw closedError(.prepare, sql: sql) }
        var prepared: OpaquePointer?
        let result = sqlite3_prepare_v2(handle, sql, -1, &prepared, nil)
        guard result == SQLITE_OK, let prepared else {
            sqlite3_finalize(prepared)
            throw error(.prepare, sql: sql, code: result)
        }
        let statement = SQLiteStatement(handle: prepared, sql: sql, connection: self)
        defer { statement.finalize() }
        while try statement.step() {}
    }

    /// The first column of the first row as an integer (nil: no row, or NULL).
    func integer(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> Int? {
        let statement = try statement(sql)
        defer { statement.reset() }
        try statement.bind(values)
        guard try statement.step(), !statement.isNull(0) else { return nil }
        return statement.int(0)
    }

    /// The first column of every row as text (for PRAGMAs such as integrity_check).
    func texts(_ sql: String, limit: Int) throws(SQLiteError) -> [String] {
        let statement = try statement(sql)
        defer { statement.reset() }
        var rows: [String] = []
        while rows.count < limit, try statement.step() { rows.append(statement.text(0)) }
        return rows
    }

    /// Ends a failed transaction; a no-op when SQLite already rolled it back.
    func rollbackQuietly() {
        guard let handle, inTransaction else { return }
        sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
    }

    // MARK: Errors and injection

    func injectedFailure(_ call: SQLiteCall, sql: String?) -> Int32? {
        guard !faults.isEmpty else { return nil }
        for index in faults.indices where faults[index].call == call {
            if let needle = faults[index].sqlContaining {
                guard let sql, sql.contains(needle) else { continue }
            }
            if faults[index].skip > 0 {
                faults[index].skip -= 1
                continue
            }
            let code = faults[index].code
            faults[index].count -= 1
            if faults[index].count <= 0 { faults.remove(at: index) }
            return code
        }
        return nil
    }

    func injectedError(_ call: SQLiteCall, sql: String?, code: Int32) -> SQLiteError {
        SQLiteError(
            path: path, operation: call.rawValue, sql: sql, code: code & 0xFF, extendedCode: code,
            message: String(cString: sqlite3_errstr(code)), injected: true)
    }

    func error(_ call: SQLiteCall, sql: String?, code: Int32) -> SQLiteError {
        guard let handle else { return closedError(call, sql: sql) }
        return SQLiteError(
            path: path, operation: call.rawValue, sql: sql, code: code & 0xFF,
            extendedCode: sqlite3_extended_errcode(handle), message: String(cString: sqlite3_errmsg(handle)))
    }

    func closedError(_ call: SQLiteCall, sql: String?) -> SQLiteError {
        SQLiteError(
            path: path, operation: call.rawValue, sql: sql, code: SQLITE_MISUSE, extendedCode: SQLITE_MISUSE,
            message: "the database is closed")
    }
}

/// A prepared statement owned by its connection's cache. Use: bind, step until false, reset.
final class SQLiteStatement {
    private var handle: OpaquePointer?
    let sql: String
    unowned let connection: SQLiteConnection

    init(handle: OpaquePointer, sql: String, connection: SQLiteConnection) {
        self.handle = handle
        self.sql = sql
        self.connection = connection
    }

    func finalize() {
        sqlite3_finalize(handle)
        handle = nil
    }

    /// Binds `values` to parameters 1, 2, ...
    func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            if let code = connection.injectedFailure(.bind, sql: sql) {
                throw connection.injectedError(.bind, sql: sql, code: code)
            }
            let result: Int32
            switch value {
            case .int(let number):
                result = sqlite3_bind_int64(handle, index, sqlite3_int64(number))
            case .null:
                result = sqlite3_bind_null(handle, index)
            case .text(let text):
                var text = text
                result = text.withUTF8 { bytes in
                    // An empty buffer may have no address, which SQLite would bind as NULL.
                    guard let base = bytes.baseAddress, !bytes.isEmpty else {
                        return sqlite3_bind_text(handle, index, "", 0, sqliteTransient)
                    }
                    return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                        sqlite3_bind_text64(
                            handle, index, $0, sqlite3_uint64(bytes.count), sqliteTransient, UInt8(SQLITE_UTF8))
                    }
                }
            }
            guard result == SQLITE_OK else { throw connection.error(.bind, sql: sql, code: result) }
        }
    }

    /// Runs one step: true when a row is ready, false when the statement is done.
    func step() throws(SQLiteError) -> Bool {
        if let code = connection.injectedFailure(.step, sql: sql) {
            throw connection.injectedError(.step, sql: sql, code: code)
        }
        guard let handle else { throw connection.closedError(.step, sql: sql) }
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code: throw connection.error(.step, sql: sql, code: code)
        }
    }

    /// Makes the statement ready to run again, with its parameters cleared.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }

    func text(_ column: Int32) -> String {
        guard let bytes = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }
}

/// SQLITE_TRANSIENT: SQLite copies the bound bytes before the call returns.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

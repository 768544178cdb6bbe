import Detection
import Testing
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A fresh directory under the system's temporary directory, removed (with its files) by `remove()`.
struct OutboxScratch {
    let path: String

    init() throws {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/headcount-outbox-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }
        path = try #require(made.map { String(cString: $0) }, "mkdtemp failed, errno \(errno)")
    }

    /// A database path inside the directory.
    func file(_ name: String = "outbox.sqlite") -> String { "\(path)/\(name)" }

    /// Removes the files the tests create (the database, its -wal and -shm) and the directory.
    func remove() {
        guard let directory = opendir(path) else { return }
        var names: [String] = []
        while names.count < 1_000, let entry = readdir(directory) {
            var nameField = entry.pointee.d_name
            let size = MemoryLayout.size(ofValue: nameField)
            let name = withUnsafePointer(to: &nameField) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: size) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names { unlink("\(path)/\(name)") }
        rmdir(path)
    }
}

/// Alerts for the outbox tests, with fixed times.
enum OutboxSamples {
    static let vehicle = "van-17"
    static let base = WallClockTime(millisecondsSinceEpoch: 1_795_000_000_000)

    static func alert(_ type: AlertType, at offset: Int = 0) -> CenterAlert {
        let when = base.adding(seconds: Double(offset))
        if type == .heartbeat {
            return CenterAlert.heartbeat(
                vehicleID: vehicle, occurredAt: when, version: "0.1.0", uptimeSeconds: offset,
                sensors: [CenterAlert.SensorHealth(id: "seat.1", faulty: false)])
        }
        return CenterAlert(
            vehicleID: vehicle, type: type, occurredAt: when, level: type.isAlarm ? 1 : 0,
            reason: type.isAlarm ? .presence : nil, sensors: ["seat.1"], temperatureC: 30)
    }

    static func configuration(maxRows: Int = 10_000) -> Outbox.Configuration {
        var configuration = Outbox.Configuration()
        configuration.maxRows = maxRows
        return configuration
    }
}

import Foundation
import Hardware
import Synchronization
import Testing

/// Where the repository is, and its device models.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func model(_ name: String) throws -> DeviceModel {
        let url = root.appendingPathComponent("HardwareProfiles/devices/\(name).toml")
        return try DeviceModel.parse(String(contentsOf: url, encoding: .utf8), file: url.path)
    }
}

/// Failures of the test harness itself (a peer that does not start, does not answer).
struct PeerError: Error, CustomStringConvertible {
    var description: String
}

/// The pymodbus peer of `Tests/Peers/modbus_peer.py`, as a child process: started by a test, driven
/// through its stdin, stopped (or killed) by the test. RTU peers live on socat ptys in a directory
/// of their own; TCP peers listen on 127.0.0.1 only.
final class ModbusPeer {
    enum Transport: Equatable {
        /// `direct`: one socat pair, no fault proxy. `pace`: the proxy paces bytes at `baud`.
        case rtu(baud: Int = 9600, direct: Bool = false, pace: Bool = false)
        /// Port 0 takes a free ephemeral port.
        case tcp(port: Int = 0)
    }

    static let python = Repository.root.appendingPathComponent(".venv/bin/python").path
    static let script = Repository.root.appendingPathComponent("Tests/Peers/modbus_peer.py").path

    let transport: Transport
    let devices: [(unit: Int, model: String)]
    let directory: String
    private(set) var port = 0
    private var process: Process?
    private var input: FileHandle?
    private var output: Int32 = -1
    private var buffer: [UInt8] = []

    /// The serial device libmodbus opens (RTU).
    var clientPath: String { directory + "/client" }

    init(_ transport: Transport, devices: [(unit: Int, model: String)]) throws {
        self.transport = transport
        self.devices = devices
        let name = "headcount-modbus-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(name).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try start()
    }

    deinit {
        close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A bus config reaching this peer.
    func bus(_ devices: [DeviceConfig], name: String = "test", rs485: Bool = false) -> BusConfig {
        switch transport {
        case .rtu(let baud, _, _):
            return BusConfig(
                name,
                transport: .rtu(device: clientPath, baud: baud, parity: "none", dataBits: 8, stopBits: 1, rs485: rs485),
                devices: devices)
        case .tcp:
            return BusConfig(name, transport: .tcp(host: "127.0.0.1", port: port), devices: devices)
        }
    }

    /// Starts the peer process (again, after `kill()`: on the same pty paths or the same port).
    func start() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw PeerError(description: "\(Self.python) is missing: run scripts/setup (pymodbus in .venv)")
        }
        var arguments = [Self.script]
        switch transport {
        case .rtu(let baud, let direct, let pace):
            arguments += ["rtu", "--dir", directory, "--baud", String(baud)]
            if direct { arguments.append("--direct") }
            if pace { arguments.append("--pace") }
        case .tcp(let requested):
            arguments += ["tcp", "--port", String(port != 0 ? port : requested)]
        }
        for device in devices { arguments += ["--device", "\(device.unit)=\(device.model)"] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        input = stdin.fileHandleForWriting
        output = stdout.fileHandleForReading.fileDescriptor
        buffer = []
        // Keep the read end alive as long as we read from its descriptor.
        outputHandle = stdout.fileHandleForReading
        let ready = try readLine(timeout: 10)
        let words = ready.split(separator: " ")
        guard words.count == 3, words[0] == "ready" else { throw PeerError(description: "peer said: \(ready)") }
        if case .tcp = transport { port = Int(words[2]) ?? 0 }
    }

    private var outputHandle: FileHandle?

    /// Sends one command and waits for its "ok".
    func send(_ command: String) throws {
        guard let input else { throw PeerError(description: "peer not running") }
        try input.write(contentsOf: Data((command + "\n").utf8))
        let answer = try readLine(timeout: 5)
        guard answer.hasPrefix("ok") else { throw PeerError(description: "peer: \(answer)") }
    }

    /// SIGKILL: the server vanishes mid-poll; on RTU its socat ptys vanish with it (unplugged).
    func kill() {
        guard let process else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
        input = nil
        outputHandle = nil
        // socat dies of PR_SET_PDEATHSIG; give it a moment to go, so its links are gone.
        let deadline = Date().addingTimeInterval(2)
        if case .rtu = transport {
            while FileManager.default.fileExists(atPath: clientPath), Date() < deadline { usleep(10_000) }
        }
    }

    /// Asks the peer to quit; kills it if it does not within 3 s.
    func close() {
        guard let process else { return }
        try? input?.write(contentsOf: Data("quit\n".utf8))
        try? input?.close()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        // Even after it has exited: only waitUntilExit() lets go of the run loop source that holds
        // the Process (swift-corelibs-foundation), which otherwise leaks (LeakSanitizer).
        process.waitUntilExit()
        self.process = nil
        input = nil
        outputHandle = nil
    }

    private func readLine(timeout: Double) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw PeerError(description: "peer did not answer within \(timeout) s") }
            var poller = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 512)
            let count = read(output, &chunk, chunk.count)
            guard count > 0 else { throw PeerError(description: "peer exited") }
            buffer += chunk[..<count]
        }
    }
}

/// Records a bus's events, each with the bus's counters at that moment, for tests to wait on.
final class EventLog: Sendable {
    struct Entry {
        var event: ModbusEvent
        var stats: ModbusBusStats?
    }

    private let entries = Mutex<[Entry]>([])
    private let bus = Mutex<ModbusBus?>(nil)

    /// Makes the bus whose events this log records.
    func bus(
        _ config: BusConfig, options: ModbusBus.Options = .fastTest, driver: any ModbusDriver = LibModbusDriver()
    ) -> ModbusBus {
        let made = ModbusBus(config, options: options, driver: driver, onEvent: handler)
        bus.withLock { $0 = made }
        return made
    }

    private var handler: @Sendable (ModbusEvent) -> Void {
        { [weak self] event in
            guard let self else { return }
            // Called on the bus thread right after it updated its counters: the snapshot is the
            // state that made the event.
            let stats = bus.withLock { $0?.stats() }
            entries.withLock { $0.append(Entry(event: event, stats: stats)) }
        }
    }

    var all: [ModbusEvent] { entries.withLock { $0.map(\.event) } }

    /// The bus's counters when `device`'s first fault was reported.
    func statsAtFirstFault(_ device: String) -> ModbusDeviceStats? {
        entries.withLock { entries in
            for entry in entries {
                if case .fault(device, _) = entry.event { return entry.stats?.devices[device] }
            }
            return nil
        }
    }

    func count(where predicate: (ModbusEvent) -> Bool) -> Int { all.filter(predicate).count }

    func faults(_ device: String) -> [ModbusFaultReason] {
        all.compactMap {
            if case .fault(device, let reason) = $0 { reason } else { nil }
        }
    }

    func recoveries(_ device: String) -> Int { count { $0 == .recovered(device: device) } }

    func lastValues(_ device: String) -> [String: Double]? {
        for event in all.reversed() {
            if case .values(device, let values, _) = event { return values }
        }
        return nil
    }

    /// Every set of values the device gave, in order.
    func allValues(_ device: String) -> [[String: Double]] {
        all.compactMap {
            if case .values(device, let values, _) = $0 { values } else { nil }
        }
    }

    func valueCount(_ device: String) -> Int {
        count {
            if case .values(device, _, _) = $0 { true } else { false }
        }
    }

    /// Waits, in 10 ms steps, until `condition` holds or `seconds` pass; returns whether it held.
    func wait(seconds: Double, until condition: () -> Bool) async -> Bool {
        let deadline = ModbusBus.monotonicNanoseconds() + UInt64(seconds * 1e9)
        while ModbusBus.monotonicNanoseconds() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }
}

extension ModbusBus.Options {
    /// Quick faults and reconnects, so that tests take little time.
    static let fastTest = ModbusBus.Options(failuresForFault: 3, faultedPeriodMs: 300, reconnectBackoffMs: 50...400)
}

/// Seconds since `start` (a `ModbusBus.monotonicNanoseconds()` reading).
func seconds(since start: UInt64) -> Double { Double(ModbusBus.monotonicNanoseconds() - start) / 1e9 }

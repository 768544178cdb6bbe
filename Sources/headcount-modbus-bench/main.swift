// headcount-modbus-bench: measured Modbus figures against the pymodbus peer
// (Tests/Peers/modbus_peer.py): transactions per second, mean and p99 round trip, over an RTU
// line at 9600 and 115200 baud (socat ptys; the peer's proxy paces bytes at the baud rate, as a
// pty has none of its own), over an unpaced pty, and over TCP on 127.0.0.1; and from those, how
// many devices of the xy-md02 and di16 kinds one bus can poll at 4 Hz.
//
//     headcount-modbus-bench [--root REPO] [--seconds S]
//
// It starts and stops its own peers; it needs socat and the .venv of scripts/setup.

import Foundation
import Hardware

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

/// Command line: --root (default: the current directory if it is the repository, else the
/// repository this file was built from) and --seconds per measurement (default 2).
struct Arguments {
    var root: URL
    var seconds = 2.0

    init() throws {
        let built = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let current = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let peerPath = "Tests/Peers/modbus_peer.py"
        root = FileManager.default.fileExists(atPath: current.appendingPathComponent(peerPath).path) ? current : built
        var arguments = CommandLine.arguments.dropFirst()
        while let argument = arguments.popFirst() {
            switch argument {
            case "--root":
                guard let value = arguments.popFirst() else { throw BenchError(description: "--root needs a path") }
                root = URL(fileURLWithPath: value)
            case "--seconds":
                guard let value = arguments.popFirst().flatMap(Double.init), value > 0 else {
                    throw BenchError(description: "--seconds needs a positive number")
                }
                seconds = value
            default:
                throw BenchError(description: "usage: headcount-modbus-bench [--root REPO] [--seconds S]")
            }
        }
    }
}

/// One peer process, stopped when dropped.
final class Peer {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    let directory: String
    var port = 0

    init(root: URL, arguments: [String]) throws {
        let python = root.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw BenchError(description: "\(python) is missing: run scripts/setup")
        }
        directory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("headcount-modbus-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        process.executableURL = URL(fileURLWithPath: python)
        let devices = ["--device", "1=xy-md02", "--device", "2=di16"]
        process.arguments =
            [root.appendingPathComponent("Tests/Peers/modbus_peer.py").path]
            + arguments.map { $0 == "DIR" ? directory : $0 } + devices
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line: [UInt8] = []
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            guard let byte = try output.fileHandleForReading.read(upToCount: 1)?.first else { break }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ")
        guard words.count == 3, words[0] == "ready" else {
            throw BenchError(description: "the peer did not start: \(String(decoding: line, as: UTF8.self))")
        }
        if words[1] == "tcp" { port = Int(words[2]) ?? 0 }
    }

    deinit {
        try? input.fileHandleForWriting.write(contentsOf: Data("quit\n".utf8))
        try? input.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Round trips of one kind of poll, in microseconds.
struct Measurement {
    var samples: [Double] = []
    var failures = 0
    var mean: Double { samples.isEmpty ? .nan : samples.reduce(0, +) / Double(samples.count) }
    var p99: Double {
        guard !samples.isEmpty else { return .nan }
        let sorted = samples.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
    }
}

/// Polls one device kind as the bus does (its model's reads, back to back) for `seconds`.
/// Returns the per-transaction and per-poll round trips.
func measure(
    _ context: any ModbusContext, unit: Int, model: DeviceModel, seconds: Double
) throws -> (transactions: Measurement, polls: Measurement) {
    var transactions = Measurement()
    var polls = Measurement()
    var registers = [UInt16](repeating: 0, count: 125)
    var bits = [UInt8](repeating: 0, count: 2000)
    try context.setSlave(unit)
    try context.setResponseTimeout(microseconds: 500_000)
    let end = ModbusBus.monotonicNanoseconds() + UInt64(seconds * 1e9)
    while ModbusBus.monotonicNanoseconds() < end {
        let pollStart = ModbusBus.monotonicNanoseconds()
        var ok = true
        for read in model.reads {
            let start = ModbusBus.monotonicNanoseconds()
            do {
                switch read.function {
                case .coils: try context.readBits(address: read.address, count: read.count, into: &bits)
                case .discreteInputs: try context.readInputBits(address: read.address, count: read.count, into: &bits)
                case .holdingRegisters:
                    try context.readRegisters(address: read.address, count: read.count, into: &registers)
                case .inputRegisters:
                    try context.readInputRegisters(address: read.address, count: read.count, into: &registers)
                }
                transactions.samples.append(Double(ModbusBus.monotonicNanoseconds() - start) / 1000)
            } catch {
                transactions.failures += 1
                ok = false
                try? context.flush()
            }
        }
        if ok { polls.samples.append(Double(ModbusBus.monotonicNanoseconds() - pollStart) / 1000) }
    }
    return (transactions, polls)
}

/// Bytes on the wire of one RTU read: request 8; answer 5 + data.
func wireBytes(_ read: RegisterRead) -> Int {
    8 + 5 + (read.function.readsBits ? (read.count + 7) / 8 : read.count * 2)
}

func format(_ value: Double, _ decimals: Int = 0) -> String { String(format: "%.\(decimals)f", value) }

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

func run() throws {
    let arguments = try Arguments()
    let devices = arguments.root.appendingPathComponent("HardwareProfiles/devices")
    func model(_ name: String) throws -> DeviceModel {
        let url = devices.appendingPathComponent("\(name).toml")
        return try DeviceModel.parse(String(contentsOf: url, encoding: .utf8), file: url.path)
    }
    let kinds: [(name: String, unit: Int, model: DeviceModel)] = [
        ("xy-md02", 1, try model("xy-md02")), ("di16", 2, try model("di16")),
    ]

    struct Line {
        var label: String
        var peerArguments: [String]
        var baud: Int?
        var tcp = false
    }
    let lines = [
        Line(
            label: "RTU 9600 baud (paced pty)", peerArguments: ["rtu", "--dir", "DIR", "--baud", "9600", "--pace"],
            baud: 9600),
        Line(
            label: "RTU 115200 baud (paced pty)", peerArguments: ["rtu", "--dir", "DIR", "--baud", "115200", "--pace"],
            baud: 115_200),
        Line(label: "RTU pty, unpaced (software only)", peerArguments: ["rtu", "--dir", "DIR", "--direct"], baud: nil),
        Line(label: "TCP 127.0.0.1", peerArguments: ["tcp", "--port", "0"], baud: nil, tcp: true),
    ]

    print(
        "headcount-modbus-bench: libmodbus (the bus's driver) against pymodbus, \(format(arguments.seconds, 1)) s each")
    print("  tx: one request and its answer; poll: every read of the device's model, as ModbusBus polls it")
    print("  wire: the poll's bytes at 10 bits a character plus a 3.5-character gap after each frame")
    print(
        pad("line", 34) + pad("device", 9) + pad("tx/s", 7) + pad("tx mean µs", 12) + pad("tx p99 µs", 11)
            + pad("poll µs", 9) + pad("wire µs", 9) + "devices at 4 Hz")
    // Devices a bus can poll at 4 Hz, by line and kind: measured, and by wire timing.
    var capacity: [String: [String: (measured: Int, wire: Int?)]] = [:]
    for line in lines {
        let peer = try Peer(root: arguments.root, arguments: line.peerArguments)
        let transport: BusConfig.Transport =
            line.tcp
            ? .tcp(host: "127.0.0.1", port: peer.port)
            : .rtu(
                device: peer.directory + "/client", baud: line.baud ?? 115_200, parity: "none", dataBits: 8,
                stopBits: 1, rs485: false)
        let context = try LibModbusDriver().connect(transport, timeoutMicroseconds: 500_000)
        defer { context.close() }
        try? context.flush()
        for kind in kinds {
            let (transactions, polls) = try measure(
                context, unit: kind.unit, model: kind.model, seconds: arguments.seconds)
            let perSecond = Double(transactions.samples.count) / arguments.seconds
            // One bus polls its devices one after another: at 4 Hz a poll may take 250 ms / devices.
            let measured = polls.samples.isEmpty ? 0 : Int(250_000 / polls.mean)
            var wire = "-"
            var byWire: Int?
            if let baud = line.baud {
                let characters = kind.model.reads.map { wireBytes($0) + 7 }.reduce(0, +)
                let microseconds = Double(characters) * 10 / Double(baud) * 1e6
                wire = format(microseconds)
                byWire = Int(250_000 / microseconds)
            }
            capacity[line.label, default: [:]][kind.name] = (measured, byWire)
            print(
                pad(line.label, 34) + pad(kind.name, 9) + pad(format(perSecond), 7)
                    + pad(format(transactions.mean), 12) + pad(format(transactions.p99), 11)
                    + pad(format(polls.mean), 9) + pad(wire, 9) + "\(measured)"
                    + (byWire.map { " (wire bound \($0))" } ?? "")
                    + (transactions.failures > 0 ? "  [\(transactions.failures) failed]" : ""))
        }
    }
    print("")
    print("devices of one kind one RS-485 bus can poll at 4 Hz: the smaller of measured and wire bound, and")
    print("with 30 % of the line kept for retries, timeouts and slower real devices:")
    for label in [lines[0].label, lines[1].label] {
        let row = capacity[label] ?? [:]
        let parts = kinds.map { kind -> String in
            let entry = row[kind.name] ?? (0, nil)
            let limit = min(entry.measured, entry.wire ?? entry.measured)
            return "\(kind.name) \(limit) (≈\(Int(Double(limit) * 0.7)) with headroom)"
        }
        print("  \(label): " + parts.joined(separator: ", "))
    }
}

do {
    try run()
} catch {
    FileHandle.standardError.write(Data("headcount-modbus-bench: \(error)\n".utf8))
    exit(1)
}

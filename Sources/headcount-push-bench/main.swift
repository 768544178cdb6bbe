import Foundation
import Uplink

// Measured figures for SPEC.md's push target: "an alert reaches a loopback HTTPS server with mutual
// TLS in p50 <= the time of a `curl` one-shot doing the same POST, with connection reuse".
//
// Makes a throw-away CA with the `openssl` CLI, starts the reference receiver (Receiver/receiver.py)
// on 127.0.0.1 requiring client certificates, then times N POSTs through HTTPSClient (one kept-alive
// connection) against M runs of the `curl` CLI doing the same POST from scratch (process start, TCP,
// TLS handshake with the same certificate, key and CA).
//
//     headcount-push-bench [--posts 500] [--curl-runs 50] [--receiver Receiver/receiver.py]

struct BenchError: Error, CustomStringConvertible {
    var description: String
}

struct Options {
    var posts = 500
    var curlRuns = 50
    var receiver: String?

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { throw BenchError(description: "\(flag) needs a value") }
            switch flag {
            case "--posts": posts = try Self.count(flag, value)
            case "--curl-runs": curlRuns = try Self.count(flag, value)
            case "--receiver": receiver = value
            default:
                throw BenchError(
                    description: "unknown option \(flag) (usage: headcount-push-bench [--posts N] [--curl-runs N] "
                        + "[--receiver PATH])")
            }
        }
    }

    static func count(_ flag: String, _ value: String) throws -> Int {
        guard let number = Int(value), (1...100_000).contains(number) else {
            throw BenchError(description: "\(flag) takes a count from 1 to 100000, not \(value)")
        }
        return number
    }
}

/// Runs a command found on PATH; returns its standard output, throws with its standard error.
@discardableResult
func run(_ arguments: [String], in directory: URL) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.currentDirectoryURL = directory
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let message = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchError(
            description: "\(arguments.joined(separator: " ")) failed: \(String(decoding: message, as: UTF8.self))")
    }
    return data
}

/// CA, server certificate for 127.0.0.1 and the van's client certificate; EC P-256, keys mode 0600.
func makePKI(in directory: URL) throws {
    let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    try run(
        ["openssl", "req", "-x509"] + newKey + [
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=bench CA", "-days", "1",
        ],
        in: directory)
    try Data("subjectAltName=IP:127.0.0.1\n".utf8).write(to: directory.appendingPathComponent("server.ext"))
    try Data("extendedKeyUsage=clientAuth\n".utf8).write(to: directory.appendingPathComponent("client.ext"))
    for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=van-bench")] {
        try run(
            ["openssl", "req"] + newKey + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject],
            in: directory)
        try run(
            [
                "openssl", "x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "1", "-extfile", "\(name).ext", "-out", "\(name).crt",
            ], in: directory)
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o600], ofItemAtPath: directory.appendingPathComponent("\(name).key").path)
    }
}

/// Receiver/receiver.py: the given path, or found from the current directory or the executable's.
func receiverScript(_ given: String?) throws -> String {
    if let given { return given }
    var candidates = [FileManager.default.currentDirectoryPath + "/Receiver/receiver.py"]
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<5 {
        candidates.append(directory.appendingPathComponent("Receiver/receiver.py").path)
        directory = directory.deletingLastPathComponent()
    }
    guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
        throw BenchError(description: "Receiver/receiver.py not found: run from the repository or pass --receiver")
    }
    return found
}

func startReceiver(_ script: String, in directory: URL) throws -> (Process, Int) {
    let portFile = directory.appendingPathComponent("port.json").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "python3", script, "--cert", "server.crt", "--key", "server.key", "--client-ca", "ca.crt", "--port", "0",
        "--port-file", portFile,
    ]
    process.currentDirectoryURL = directory
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    for _ in 0..<200 {
        if let data = FileManager.default.contents(atPath: portFile),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let port = object["port"] as? Int
        {
            return (process, port)
        }
        guard process.isRunning else { break }
        usleep(50_000)
    }
    stopReceiver(process)
    throw BenchError(description: "the receiver did not start")
}

func stopReceiver(_ process: Process) {
    guard process.isRunning else { return }
    process.terminate()
    for _ in 0..<60 where process.isRunning { usleep(50_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

func alert(_ number: Int) -> (id: String, body: [UInt8]) {
    let id = UUID().uuidString.lowercased()
    let json = """
        {"id":"\(id)","vehicle_id":"van-bench","seq":\(number),"type":"presence_alarm",\
        "occurred_at":"2026-01-05T07:42:10.000Z","level":1,"reason":"presence","urgent":false,\
        "sensors":["seat.3","radar.rear"],"temperature_c":31.5,"co2_ppm":null,"fault":null,"trip":null,\
        "heartbeat":null}
        """
    return (id, Array(json.utf8))
}

func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) * 1000 + Double(attoseconds) / 1e15
}

/// The nearest-rank percentile of sorted samples.
func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((fraction * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

func line(_ label: String, _ samples: [Double], _ note: String = "") -> (p50: Double, p99: Double) {
    let sorted = samples.sorted()
    let p50 = percentile(sorted, 0.50)
    let p99 = percentile(sorted, 0.99)
    let padded = label.padding(toLength: 52, withPad: " ", startingAt: 0)
    print(
        "  \(padded) n=\(String(samples.count).padding(toLength: 4, withPad: " ", startingAt: 0))  "
            + "p50 \(String(format: "%7.3f", p50)) ms  p99 \(String(format: "%7.3f", p99)) ms\(note)")
    return (p50, p99)
}

func bench(_ options: Options) async throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("headcount-push-bench-\(UUID().uuidString.lowercased())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    try makePKI(in: directory)
    let script = try receiverScript(options.receiver)
    let (receiver, port) = try startReceiver(script, in: directory)
    defer { stopReceiver(receiver) }
    let url = "https://127.0.0.1:\(port)/alerts"
    func file(_ name: String) -> String { directory.appendingPathComponent(name).path }

    let client = try HTTPSClient(
        HTTPSConfiguration(
            url: url, clientCertificatePath: file("client.crt"), clientKeyPath: file("client.key"),
            caFilePath: file("ca.crt"), softwareVersion: "bench"))
    let clock = ContinuousClock()
    var number = 0
    func post(_ send: () async throws -> HTTPSResponse) async throws -> (Double, Bool) {
        let start = clock.now
        let response = try await send()
        let elapsed = milliseconds(clock.now - start)
        guard response.status == 200 else { throw BenchError(description: "the receiver answered \(response.status)") }
        return (elapsed, response.newConnection)
    }

    // The first POST makes the connection and the TLS handshake; it is timed on its own.
    number += 1
    let first = alert(number)
    let (firstPost, _) = try await post { try await client.send(body: first.body, idempotencyKey: first.id) }
    for _ in 0..<20 {
        number += 1
        let warm = alert(number)
        _ = try await post { try await client.send(body: warm.body, idempotencyKey: warm.id) }
    }

    var blocking: [Double] = []
    var asynchronous: [Double] = []
    var connections = 0
    for _ in 0..<options.posts {
        number += 1
        let next = alert(number)
        let (elapsed, fresh) = try await post { try client.sendBlocking(body: next.body, idempotencyKey: next.id) }
        blocking.append(elapsed)
        if fresh { connections += 1 }
    }
    for _ in 0..<options.posts {
        number += 1
        let next = alert(number)
        let (elapsed, fresh) = try await post { try await client.send(body: next.body, idempotencyKey: next.id) }
        asynchronous.append(elapsed)
        if fresh { connections += 1 }
    }
    client.shutdown()

    var curlWall: [Double] = []
    var curlOwn: [Double] = []
    for _ in 0..<options.curlRuns {
        number += 1
        let next = alert(number)
        let bodyFile = directory.appendingPathComponent("body.json")
        try Data(next.body).write(to: bodyFile)
        let start = clock.now
        let output = try run(
            [
                "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "--cert", "client.crt", "--key",
                "client.key", "--cacert", "ca.crt", "-H", "Content-Type: application/json", "-H",
                "Idempotency-Key: \(next.id)", "--data-binary", "@body.json", url,
            ], in: directory)
        curlWall.append(milliseconds(clock.now - start))
        let fields = String(decoding: output, as: UTF8.self).split(separator: " ")
        guard fields.count == 2, fields[0] == "200", let seconds = Double(fields[1]) else {
            throw BenchError(description: "curl: unexpected result \(String(decoding: output, as: UTF8.self))")
        }
        curlOwn.append(seconds * 1000)
    }

    print("push latency: loopback HTTPS with mutual TLS to Receiver/receiver.py (python3 http.server + ssl)")
    print(
        "  libcurl \(HTTPSClient.libcurlVersion); first POST (TCP + TLS handshake): \(String(format: "%.3f", firstPost)) ms"
    )
    let ours = line(
        "headcount HTTPSClient, postBlocking, kept-alive", blocking,
        "  (new connections during the run: \(connections))")
    _ = line("headcount HTTPSClient, async send, kept-alive", asynchronous)
    let curl = line("curl one-shot, process start to exit", curlWall)
    _ = line("curl one-shot, curl's own time_total", curlOwn)
    let ratio = ours.p50 / curl.p50
    print(
        "  ratio p50 ours / curl one-shot: \(String(format: "%.3f", ratio)) "
            + "(SPEC.md target <= 1): \(ratio <= 1 ? "met" : "NOT met")")
}

do {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    try await bench(options)
} catch {
    FileHandle.standardError.write(Data("headcount-push-bench: \(error)\n".utf8))
    exit(1)
}

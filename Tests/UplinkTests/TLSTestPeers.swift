import Foundation

/// Something the test peers could not set up (openssl or python3 failed), with their output.
struct TLSPeerError: Error, CustomStringConvertible {
    var description: String
}

/// Runs blocking set-up work (openssl, starting python) on a thread of its own: the tests never block
/// the concurrency pool's few threads, where the client's continuations resume.
func offThePool<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Runs a command (found on PATH) to completion; throws with its stderr if it fails.
@discardableResult
func runTool(_ arguments: [String], in directory: URL? = nil) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let message = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TLSPeerError(
            description: "\(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): "
                + (String(data: message, encoding: .utf8) ?? ""))
    }
    return data
}

/// A throw-away PKI made with the `openssl` CLI in a fresh temporary directory: the center's CA, a
/// second unrelated CA, the receiver's certificate (for 127.0.0.1), the van's client certificate, and
/// an expired client certificate (valid 2020-01-01 to 2020-01-02, issued with `openssl ca`).
/// Keys are EC P-256 (fast to make) and mode 0600.
struct TLSTestPKI: Sendable {
    let directory: URL
    /// `sha256//BASE64` of the receiver's public key, and of the unrelated CA's (a wrong pin).
    private(set) var serverPin = ""
    private(set) var otherCAPin = ""
    var caCertificate: String { path("ca.crt") }
    var otherCACertificate: String { path("other-ca.crt") }
    var serverCertificate: String { path("server.crt") }
    var serverKey: String { path("server.key") }
    var clientCertificate: String { path("client.crt") }
    var clientKey: String { path("client.key") }
    var expiredCertificate: String { path("expired.crt") }
    var expiredKey: String { path("expired.key") }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("headcount-tls-\(UUID().uuidString.lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for (name, subject) in [("ca", "/CN=headcount test center CA"), ("other-ca", "/CN=unrelated CA")] {
            try openssl(
                ["req", "-x509"] + newKey + ["-keyout", "\(name).key", "-out", "\(name).crt", "-subj", subject]
                    + ["-days", "2"])
        }
        try write("server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try write("client.ext", "extendedKeyUsage=clientAuth\n")
        for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=van-0001")] {
            try openssl(["req"] + newKey + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subject])
            try openssl([
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "1", "-extfile", "\(name).ext", "-out", "\(name).crt",
            ])
        }
        // OpenSSL 3.0's `x509 -req` cannot set a start date in the past; `openssl ca` can.
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("ca-db"), withIntermediateDirectories: true)
        try write("ca-db/index.txt", "")
        try write("ca-db/serial", "1000\n")
        try write(
            "ca.cnf",
            """
            [ca]
            default_ca = test
            [test]
            database = ca-db/index.txt
            new_certs_dir = ca-db
            serial = ca-db/serial
            default_md = sha256
            policy = anything
            x509_extensions = client_ext
            unique_subject = no
            [anything]
            commonName = supplied
            [client_ext]
            extendedKeyUsage = clientAuth

            """)
        try openssl(["req"] + newKey + ["-keyout", "expired.key", "-out", "expired.csr", "-subj", "/CN=van-expired"])
        try openssl([
            "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-in", "expired.csr",
            "-out", "expired.crt", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext",
        ])
        for key in ["ca.key", "other-ca.key", "server.key", "client.key", "expired.key"] {
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path(key))
        }
        serverPin = try pin(ofCertificate: serverCertificate)
        otherCAPin = try pin(ofCertificate: otherCACertificate)
    }

    /// Makes one off the concurrency pool.
    static func make() async throws -> TLSTestPKI {
        try await offThePool { try TLSTestPKI() }
    }

    /// `sha256//BASE64` of a certificate's public key, as CURLOPT_PINNEDPUBLICKEY takes it.
    func pin(ofCertificate certificate: String) throws -> String {
        let name = UUID().uuidString
        try openssl(["x509", "-in", certificate, "-noout", "-pubkey", "-out", "\(name).pub"])
        try openssl(["pkey", "-pubin", "-in", "\(name).pub", "-outform", "DER", "-out", "\(name).der"])
        try openssl(["dgst", "-sha256", "-binary", "-out", "\(name).sha256", "\(name).der"])
        let digest = try Data(contentsOf: directory.appendingPathComponent("\(name).sha256"))
        return "sha256//" + digest.base64EncodedString()
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    private func openssl(_ arguments: [String]) throws {
        try runTool(["openssl"] + arguments, in: directory)
    }

    private func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: directory.appendingPathComponent(name))
    }
}

/// The reference center receiver (Receiver/receiver.py) on 127.0.0.1 with an ephemeral port,
/// requiring client certificates from the test CA. Its record (JSON Lines) and counters (JSON) are
/// files in the PKI's directory.
final class TLSTestReceiver: @unchecked Sendable {
    // @unchecked Sendable: it crosses from the thread that starts it to the test, once; Process is
    // thread-safe and the rest is immutable or read from files.
    let port: Int
    private let process: Process
    private let recordPath: String
    private let statsPath: String

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// Starts the receiver with these extra arguments (`--mode slow --delay 3`...), and waits (at most
    /// 10 s) for it to listen.
    init(pki: TLSTestPKI, arguments: [String] = []) throws {
        let tag = UUID().uuidString
        let portFile = pki.path("port-\(tag).json")
        recordPath = pki.path("received-\(tag).jsonl")
        statsPath = pki.path("stats-\(tag).json")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", Self.repositoryRoot.appendingPathComponent("Receiver/receiver.py").path,
                "--cert", pki.serverCertificate, "--key", pki.serverKey, "--client-ca", pki.caCertificate,
                "--port", "0", "--port-file", portFile, "--record", recordPath, "--stats-file", statsPath,
            ] + arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var found: Int?
        for _ in 0..<200 {
            if let data = FileManager.default.contents(atPath: portFile),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let port = object["port"] as? Int
            {
                found = port
                break
            }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        guard let found else {
            Self.stop(process)
            throw TLSPeerError(description: "the receiver did not start (exit status \(process.terminationStatus))")
        }
        port = found
    }

    deinit { stop() }

    /// Starts one off the concurrency pool.
    static func start(pki: TLSTestPKI, arguments: [String] = []) async throws -> TLSTestReceiver {
        try await offThePool { try TLSTestReceiver(pki: pki, arguments: arguments) }
    }

    var url: String { "https://127.0.0.1:\(port)/alerts" }

    func stop() { Self.stop(process) }

    /// SIGTERM, then SIGKILL if it has not gone within 3 s. Waits for it even when it has already
    /// exited: only waitUntilExit() lets go of the run loop source that holds the Process
    /// (swift-corelibs-foundation), which otherwise leaks (LeakSanitizer).
    private static func stop(_ process: Process) {
        if process.isRunning {
            process.terminate()
            for _ in 0..<60 where process.isRunning { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }

    /// Every alert the receiver recorded, in order.
    func received() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: recordPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    /// The receiver's counters: tcp_connections, tls_handshakes, tls_failures, requests...
    func stats() -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: statsPath) else { return [:] }
        return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:]
    }

    func counter(_ name: String) -> Int { stats()[name] as? Int ?? -1 }

    /// Waits (at most `seconds`) until the counter reaches `value`; returns its last value.
    @discardableResult
    func waitFor(_ name: String, atLeast value: Int, seconds: Double = 5) async -> Int {
        let steps = Int(seconds / 0.05)
        for _ in 0..<steps {
            if counter(name) >= value { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return counter(name)
    }
}

/// A new alert's JSON, as the outbox would POST it, and its id.
func testAlert(type: String = "presence_alarm") -> (id: String, body: [UInt8]) {
    let id = UUID().uuidString.lowercased()
    let json = """
        {"id":"\(id)","vehicle_id":"van-0001","seq":1,"type":"\(type)","occurred_at":"2026-01-05T07:42:10.000Z",\
        "level":1,"reason":"presence","urgent":false,"sensors":["seat.3"],"temperature_c":31.5,"co2_ppm":null,\
        "fault":null,"trip":null,"heartbeat":null}
        """
    return (id, Array(json.utf8))
}

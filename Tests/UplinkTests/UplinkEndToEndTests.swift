import Detection
import Foundation
import Testing
import Uplink

/// The whole uplink against the reference receiver over mutual TLS: the outbox, delivery and the
/// HTTPS client, killed with SIGKILL at random points, and facing a center that is down for a while.
@Suite("Uplink end to end", .serialized)
struct UplinkEndToEndTests {
    /// Mirrors `senderID` in headcount-outbox-bench.
    static func senderID(_ index: Int) -> String {
        let hex = String(index, radix: 16)
        return "00000000-0000-4000-8000-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
    }

    @Test(
        "kill -9 at random points while alerts are queued and delivered: every alert arrives, none twice after dedupe")
    func killNine() async throws {
        let sender = try #require(OutboxCrashTests.writerPath(), "headcount-outbox-bench not built")
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        defer { receiver.stop() }
        let database = pki.path("outbox.sqlite")
        // Enough that 20 runs killed 10–60 ms in cannot queue them all, even when a loaded machine
        // oversleeps the delay.
        let count = 1000
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        var finished = false
        let started = Date()
        // At least 20 kills, then let a run finish; bounded in rounds and in time. A run that
        // finishes before it is killed (a loaded machine oversleeps the delay) does not end the
        // kill phase: the next run queues the same alerts again, which the center dedupes.
        for round in 0..<80 where !(finished && kills >= 20) && Date().timeIntervalSince(started) < 150 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: sender)
            process.arguments = [
                "--sender", database, String(count), receiver.url, pki.clientCertificate, pki.clientKey,
                pki.caCertificate,
            ]
            try process.run()
            if kills < 20 && round < 70 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 10...60, using: &generator)))
                if process.isRunning {
                    kill(process.processIdentifier, SIGKILL)
                    kills += 1
                }
            }
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            if process.terminationReason == .exit {
                #expect(process.terminationStatus == 0, "sender exited with \(process.terminationStatus)")
                finished = process.terminationStatus == 0
            }
        }
        #expect(finished, "the sender never completed a run")
        #expect(kills >= 20)
        let records = receiver.received()
        let accepted = records.filter { ($0["duplicate"] as? Bool) == false }
        let ids = accepted.compactMap { ($0["alert"] as? [String: Any])?["id"] as? String }
        #expect(ids.count == count, "accepted \(ids.count) of \(count)")
        #expect(Set(ids) == Set((1...count).map(Self.senderID)))
        let duplicates = records.count - accepted.count
        print(
            "uplink kill -9: \(kills) kills, \(count) alerts, \(records.count) POSTs received, \(duplicates) duplicates deduped"
        )
    }

    @Test("the center down for a stretch: everything queued is delivered, in order, once it is back")
    func centerDown() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        // Find a free port by starting the receiver once, then stop it: the center is down.
        let first = try await TLSTestReceiver.start(pki: pki)
        let port = first.port
        first.stop()
        let outbox = try Outbox(path: pki.path("outbox.sqlite"))
        let client = try HTTPSClient(
            HTTPSConfiguration(
                url: "https://127.0.0.1:\(port)/alerts", clientCertificatePath: pki.clientCertificate,
                clientKeyPath: pki.clientKey, caFilePath: pki.caCertificate, softwareVersion: "test",
                connectTimeout: .seconds(1), totalTimeout: .seconds(3)))
        var configuration = Delivery.Configuration()
        configuration.firstBackoffSeconds = 0.05
        configuration.maxBackoffSeconds = 0.4
        configuration.heartbeatSeconds = 0
        let failures = Counter()
        let delivery = Delivery(
            outbox: outbox, link: client, configuration: configuration,
            heartbeat: { OutboxSamples.alert(.heartbeat) },
            log: { event in if case .retrying = event { failures.add() } })
        delivery.start()
        var stored: [CenterAlert] = []
        for index in 0..<60 {
            let type: AlertType = index % 3 == 0 ? .sensorFault : (index % 3 == 1 ? .tripClosed : .sensorRecovered)
            stored.append(try outbox.enqueue(OutboxSamples.alert(type, at: index)))
            delivery.wake()
        }
        try await Task.sleep(for: .seconds(2))
        #expect(outbox.depth == 60)
        #expect(failures.value >= 3, "delivery kept trying while the center was down")
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: ["--port", String(port)])
        defer { receiver.stop() }
        for _ in 0..<200 where outbox.depth > 0 { try await Task.sleep(for: .milliseconds(50)) }
        delivery.stop()
        client.shutdown()
        #expect(outbox.depth == 0)
        let ids = receiver.received().filter { ($0["duplicate"] as? Bool) == false }
            .compactMap { ($0["alert"] as? [String: Any])?["id"] as? String }
        #expect(ids == stored.map(\.id), "delivered out of order or incompletely")
    }
}

extension UplinkEndToEndTests {
    @Test("a 4xx from the real receiver goes to the dead-letter table; 5xx and dropped answers are retried")
    func refusals() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let refusing = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", "status", "--status", "422", "--times", "1"])
        let outbox = try Outbox(path: pki.path("outbox.sqlite"))
        let client = try HTTPSClient(
            HTTPSConfiguration(
                url: refusing.url, clientCertificatePath: pki.clientCertificate, clientKeyPath: pki.clientKey,
                caFilePath: pki.caCertificate, softwareVersion: "test", totalTimeout: .seconds(3)))
        var configuration = Delivery.Configuration()
        configuration.firstBackoffSeconds = 0.05
        configuration.maxBackoffSeconds = 0.2
        configuration.heartbeatSeconds = 0
        let delivery = Delivery(
            outbox: outbox, link: client, configuration: configuration,
            heartbeat: { OutboxSamples.alert(.heartbeat) }, log: { _ in })
        let refused = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm))
        let next = try outbox.enqueue(OutboxSamples.alert(.alarmEscalated))
        delivery.start()
        for _ in 0..<100 where outbox.depth > 0 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(outbox.depth == 0)
        #expect(try outbox.deadLetters(limit: 5).map(\.id) == [refused.id])
        #expect(try outbox.deadLetters(limit: 5).first?.httpStatus == 422)
        let accepted = refusing.received().filter {
            ($0["duplicate"] as? Bool) == false && ($0["status"] as? Int) == 200
        }
        #expect(accepted.compactMap { ($0["alert"] as? [String: Any])?["id"] as? String } == [next.id])
        delivery.stop()
        refusing.stop()

        // A center that drops the connection, then answers 503: retried until it takes the alert.
        for mode in [["--mode", "drop", "--times", "2"], ["--mode", "status", "--status", "503", "--times", "2"]] {
            let flaky = try await TLSTestReceiver.start(pki: pki, arguments: mode)
            defer { flaky.stop() }
            let link = try HTTPSClient(
                HTTPSConfiguration(
                    url: flaky.url, clientCertificatePath: pki.clientCertificate, clientKeyPath: pki.clientKey,
                    caFilePath: pki.caCertificate, softwareVersion: "test", totalTimeout: .seconds(3)))
            let retrying = Delivery(
                outbox: outbox, link: link, configuration: configuration,
                heartbeat: { OutboxSamples.alert(.heartbeat) }, log: { _ in })
            let alert = try outbox.enqueue(OutboxSamples.alert(.checkMissed))
            retrying.start()
            for _ in 0..<100 where outbox.depth > 0 { try await Task.sleep(for: .milliseconds(50)) }
            retrying.stop()
            link.shutdown()
            #expect(outbox.depth == 0, "\(mode): not delivered")
            let stored = flaky.received().filter { ($0["status"] as? Int) == 200 }
            #expect(stored.compactMap { ($0["alert"] as? [String: Any])?["id"] as? String } == [alert.id], "\(mode)")
        }
        #expect(outbox.deadLetterCount == 1)
    }
}

final class Counter: @unchecked Sendable {
    // @unchecked: every access goes through the lock.
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

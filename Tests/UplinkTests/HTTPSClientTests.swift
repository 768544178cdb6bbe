import Foundation
import TestSupport
import Testing

@testable import Uplink

/// The HTTPS client against the reference receiver (Receiver/receiver.py) on 127.0.0.1, with mutual
/// TLS and a throw-away CA made by `openssl` in each test.
@Suite(.timeLimit(.budget(minutes: 1)))
struct HTTPSClientTests {
    static func configuration(
        _ pki: TLSTestPKI, _ url: String, totalTimeout: Duration = .seconds(10)
    ) -> HTTPSConfiguration {
        HTTPSConfiguration(
            url: url, clientCertificatePath: pki.clientCertificate, clientKeyPath: pki.clientKey,
            caFilePath: pki.caCertificate, softwareVersion: "0.1.0-test", connectTimeout: .seconds(5),
            totalTimeout: totalTimeout)
    }

    @Test func postIsDeliveredWithMutualTLSAndTheIdempotencyKey() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let client = try HTTPSClient(Self.configuration(pki, receiver.url))
        let alert = testAlert()

        let answer = try await client.post(body: alert.body, idempotencyKey: alert.id)

        #expect(answer.status == 200)
        let received = receiver.received()
        #expect(received.count == 1)
        let record = try #require(received.first)
        #expect(record["idempotency_key"] as? String == alert.id)
        #expect((record["alert"] as? [String: Any])?["id"] as? String == alert.id)
        #expect(record["client_cn"] as? String == "van-0001")
        let text = String(decoding: answer.body, as: UTF8.self)
        #expect(text.contains("accepted"))
    }

    @Test func aRepeatedAlertIsAnswered409AndRecordedAsDuplicate() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let client = try HTTPSClient(Self.configuration(pki, receiver.url))
        let alert = testAlert()

        let first = try await client.post(body: alert.body, idempotencyKey: alert.id)
        let second = try await client.post(body: alert.body, idempotencyKey: alert.id)

        #expect(first.status == 200)
        #expect(second.status == 409)
        #expect(receiver.received().map { $0["duplicate"] as? Bool } == [false, true])
        #expect(receiver.counter("alerts_accepted") == 1)
    }

    @Test func twoPostsShareOneConnectionAndOneHandshake() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let client = try HTTPSClient(Self.configuration(pki, receiver.url))
        let first = testAlert()
        let second = testAlert()

        let one = try await client.send(body: first.body, idempotencyKey: first.id)
        let two = try await client.send(body: second.body, idempotencyKey: second.id)

        #expect(one.status == 200 && two.status == 200)
        #expect(one.newConnection)
        #expect(!two.newConnection)  // CURLINFO_NUM_CONNECTS == 0 on the second
        #expect(receiver.counter("tls_handshakes") == 1)
        #expect(receiver.counter("tcp_connections") == 1)
        let connections = receiver.received().map { $0["connection"] as? Int }
        #expect(connections == [1, 1])
    }

    @Test func concurrentPostsAreSerialisedOnTheOneConnection() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let client = try HTTPSClient(Self.configuration(pki, receiver.url))
        let alerts = (0..<8).map { _ in testAlert() }

        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for alert in alerts {
                group.addTask { try await client.post(body: alert.body, idempotencyKey: alert.id).status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }

        #expect(statuses == Array(repeating: 200, count: alerts.count))
        #expect(Set(receiver.received().compactMap { $0["idempotency_key"] as? String }) == Set(alerts.map(\.id)))
        #expect(receiver.counter("tls_handshakes") == 1)
    }

    @Test func theBlockingVariantWorksFromAThreadOfItsOwn() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let client = try HTTPSClient(Self.configuration(pki, receiver.url))
        let alert = testAlert()

        let answer = try await offThePool { try client.postBlocking(body: alert.body, idempotencyKey: alert.id) }

        #expect(answer.status == 200)
        #expect(receiver.received().count == 1)
    }

    @Test func serverErrorsAndRefusalsAreAnswersNotErrors() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let unavailable = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", "status", "--status", "503", "--retry-after", "7"])
        let rejecting = try await TLSTestReceiver.start(pki: pki, arguments: ["--mode", "status", "--status", "422"])
        let alert = testAlert()

        let busy = try await HTTPSClient(Self.configuration(pki, unavailable.url))
            .send(body: alert.body, idempotencyKey: alert.id)
        let refused = try await HTTPSClient(Self.configuration(pki, rejecting.url))
            .send(body: alert.body, idempotencyKey: alert.id)

        #expect(busy.status == 503)
        #expect(busy.retryAfterSeconds == 7)
        #expect(refused.status == 422)
        #expect(refused.retryAfterSeconds == nil)
        #expect(unavailable.received().isEmpty)
    }

    @Test func anAnswerOverTheCapIsCutOff() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        // Chunked (no length: the write callback stops it) and with a Content-Length (MAXFILESIZE does).
        for mode in ["huge", "huge-length"] {
            let receiver = try await TLSTestReceiver.start(
                pki: pki, arguments: ["--mode", mode, "--huge-bytes", "1000000"])
            let client = try HTTPSClient(Self.configuration(pki, receiver.url))
            let alert = testAlert()

            let error = await #expect(throws: HTTPSError.self) {
                try await client.post(body: alert.body, idempotencyKey: alert.id)
            }

            #expect(error?.kind == .answerTooLarge(limit: 65536), "mode \(mode)")
            #expect(error?.description.hasPrefix("answer too large") == true)
        }
    }

    @Test func aSlowAnswerTimesOut() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        // Under a sanitizer the answer's delay and the bound below grow together: still well apart.
        let delay = String(Int(budget(seconds: 10)))
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: ["--mode", "slow", "--delay", delay])
        let client = try HTTPSClient(Self.configuration(pki, receiver.url, totalTimeout: .seconds(1)))
        let alert = testAlert()
        let start = ContinuousClock.now

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .timedOut)
        #expect(error?.description.hasPrefix("timed out (curl: Operation timed out after") == true)
        #expect(ContinuousClock.now - start < .seconds(budget(seconds: 6)))
    }

    @Test func aStalledLinkIsAborted() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        // Headers, then one byte every 3 s: under 1 byte/s.
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: ["--mode", "stall", "--delay", "3"])
        var configuration = Self.configuration(pki, receiver.url, totalTimeout: .seconds(20))
        configuration.lowSpeedTime = .seconds(1)
        let client = try HTTPSClient(configuration)
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .stalled)
    }

    @Test func aDroppedConnectionIsReported() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: ["--mode", "drop"])
        let client = try HTTPSClient(Self.configuration(pki, receiver.url))
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .connectionDropped)
    }

    @Test func nothingListeningIsConnectionRefused() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let url = receiver.url
        receiver.stop()
        let client = try HTTPSClient(Self.configuration(pki, url))
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .connectionRefused)
        #expect(error?.description.hasPrefix("connection refused") == true)
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        // Under a sanitizer the answer's delay, the timeout and the bound below grow together.
        let delay = String(Int(budget(seconds: 20)))
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: ["--mode", "slow", "--delay", delay])
        let client = try HTTPSClient(
            Self.configuration(pki, receiver.url, totalTimeout: .seconds(budget(seconds: 40))))
        let alert = testAlert()

        let task = Task { try await client.post(body: alert.body, idempotencyKey: alert.id) }
        await receiver.waitFor("requests", atLeast: 1)
        // Timed from the cancel, not from the start: reaching the receiver takes longer on a loaded
        // machine or under a sanitizer, and the answer it holds back is still further away.
        let cancelled = ContinuousClock.now
        task.cancel()
        let result = await task.result

        let error = #expect(throws: HTTPSError.self) { try result.get() }
        #expect(error?.kind == .cancelled)
        #expect(ContinuousClock.now - cancelled < .seconds(budget(seconds: 10)))
    }

    @Test func afterShutdownPostsFail() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let client = try HTTPSClient(Self.configuration(pki, receiver.url))
        let alert = testAlert()

        client.shutdown()

        await #expect(throws: HTTPSError(.shutDown)) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }
        #expect(throws: HTTPSError(.shutDown)) {
            try client.postBlocking(body: alert.body, idempotencyKey: alert.id)
        }
        #expect(receiver.counter("tcp_connections") == 0)
    }

    @Test func aKeyThatIsNotAHeaderValueIsRefused() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let client = try HTTPSClient(Self.configuration(pki, "https://127.0.0.1:9/alerts"))

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: [], idempotencyKey: "abc\r\nX-Injected: 1")
        }

        #expect(error?.isConfigurationError == true)
    }
}

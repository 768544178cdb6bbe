import Detection
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import Uplink

/// Server answers that are not what a center should send, from the reference receiver over mutual
/// TLS on 127.0.0.1, through the real HTTPS client and delivery: bytes that are not HTTP, redirects to
/// plain http, broken status lines, a header line of 100 KiB, headers dripping a byte a second, a 200
/// whose body is garbage or too large. Each test checks the outcome in the outbox (kept, deleted or
/// dead-lettered) and at the receiver (stored once after dedupe), within a bounded time.
///
/// Serialized: each test makes its own PKI and receiver, and thirteen of them at once would load a
/// shared 2-core machine enough to slow every other suite's receiver start.
@Suite(.serialized, .timeLimit(.budget(minutes: 1)))
struct BadAnswerTests {
    /// What one delivery run saw: its journal, and the outbox's depth at each retry.
    final class Observed: Sendable {
        struct Retry: Sendable {
            var reason: String
            var retryIn: Double
            var depth: Int
            var deadLetters: Int
            var at: ContinuousClock.Instant
        }

        private let state = Mutex<(events: [DeliveryEvent], retries: [Retry])>(([], []))
        var events: [DeliveryEvent] { state.withLock { $0.events } }
        var retries: [Retry] { state.withLock { $0.retries } }

        var deliveries: [(status: Int, attempts: Int)] {
            events.compactMap {
                if case .delivered(_, _, _, let status, let attempts) = $0 { (status, attempts) } else { nil }
            }
        }

        /// Called on the delivery thread, right after the outbox was updated: the depth is the one the
        /// retry left.
        func record(_ event: DeliveryEvent, outbox: Outbox) {
            state.withLock { state in
                state.events.append(event)
                if case .retrying(_, _, let reason, let retryIn) = event {
                    state.retries.append(
                        Retry(
                            reason: reason, retryIn: retryIn, depth: outbox.depth, deadLetters: outbox.deadLetterCount,
                            at: .now))
                }
            }
        }
    }

    static func client(
        _ pki: TLSTestPKI, _ url: String, totalTimeout: Duration = .seconds(10), lowSpeedTime: Duration = .seconds(20)
    ) throws -> HTTPSClient {
        var configuration = HTTPSConfiguration(
            url: url, clientCertificatePath: pki.clientCertificate, clientKeyPath: pki.clientKey,
            caFilePath: pki.caCertificate, softwareVersion: "0.1.0-test", connectTimeout: .seconds(5),
            totalTimeout: totalTimeout)
        configuration.lowSpeedTime = lowSpeedTime
        return try HTTPSClient(configuration)
    }

    /// Queues one alarm, runs delivery against `client` until the outbox is empty (at most `seconds`),
    /// and returns the alarm and what happened. Backoff 0.2 s, then 0.4 s.
    static func deliverOne(
        _ pki: TLSTestPKI, through client: HTTPSClient, seconds: Double = 15
    ) async throws -> (alert: CenterAlert, outbox: Outbox, observed: Observed) {
        let outbox = try Outbox(path: pki.path("outbox-\(UUID().uuidString).sqlite"))
        let alert = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm))
        var configuration = Delivery.Configuration()
        configuration.firstBackoffSeconds = 0.2
        configuration.maxBackoffSeconds = 0.4
        configuration.heartbeatSeconds = 0
        let observed = Observed()
        let delivery = Delivery(
            outbox: outbox, link: client, configuration: configuration,
            heartbeat: { OutboxSamples.alert(.heartbeat) }, log: { observed.record($0, outbox: outbox) })
        delivery.start()
        let deadline = ContinuousClock.now + .seconds(seconds)
        while outbox.depth > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        await offThePoolQuietly { delivery.stop() }
        return (alert, outbox, observed)
    }

    /// The ids the receiver stored (answered 200, not a duplicate), in order.
    static func stored(_ receiver: TLSTestReceiver) -> [String] {
        receiver.received().filter { ($0["duplicate"] as? Bool) == false && ($0["status"] as? Int) == 200 }
            .compactMap { ($0["alert"] as? [String: Any])?["id"] as? String }
    }

    /// The alert was kept at every failed try (depth 1, nothing dead-lettered), then delivered once;
    /// the receiver stored it once (after `before`, what a test posted itself first).
    static func expectKeptThenDeliveredOnce(
        _ run: (alert: CenterAlert, outbox: Outbox, observed: Observed), retries: Int, reason: String,
        receiver: TLSTestReceiver, before: [String] = [], _ what: String
    ) {
        let tries = run.observed.retries
        #expect(tries.count == retries, "\(what): \(tries.map(\.reason))")
        for retry in tries {
            #expect(retry.depth == 1 && retry.deadLetters == 0, "\(what): not kept at a retry")
            #expect(retry.reason.contains(reason), "\(what): \(retry.reason)")
            #expect(retry.retryIn >= 0.1, "\(what): retried after \(retry.retryIn) s, without backoff")
        }
        #expect(run.outbox.depth == 0, "\(what): not delivered in the end")
        #expect(run.outbox.deadLetterCount == 0, "\(what): dead-lettered")
        #expect(run.observed.deliveries.count == 1, "\(what): \(run.observed.events)")
        #expect(run.observed.deliveries.first?.attempts == retries + 1, "\(what)")
        #expect(stored(receiver) == before + [run.alert.id], "\(what): stored \(stored(receiver))")
    }

    @Test func bytesThatAreNotHTTPAreABadAnswerAndTheAlertIsKeptAndRetried() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: ["--mode", "garbage", "--times", "3"])
        let client = try Self.client(pki, receiver.url)
        let alert = testAlert()

        // libcurl 7.88 calls this "Received HTTP/0.9 when not allowed" (CURLE_UNSUPPORTED_PROTOCOL),
        // which once read as a bad center URL.
        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }
        #expect(error?.kind == .badAnswer)
        #expect(error?.description.hasPrefix("the server's answer is not HTTP") == true, "\(String(describing: error))")
        #expect(error?.isConfigurationError == false)

        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()
        // Two more garbage answers, then the center answers properly.
        Self.expectKeptThenDeliveredOnce(run, retries: 2, reason: "not HTTP", receiver: receiver, "garbage")
        #expect(receiver.counter("requests") == 4)
    }

    @Test(arguments: [301, 302, 307, 308])
    func aRedirectToPlainHTTPIsNeverFollowedAndTheAlertIsKept(status: Int) async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let plain = try PlainListener()
        let location = "http://127.0.0.1:\(plain.port)/alerts"
        let receiver = try await TLSTestReceiver.start(
            pki: pki,
            arguments: ["--mode", "redirect-http", "--status", String(status), "--location", location, "--times", "3"])
        let client = try Self.client(pki, receiver.url)
        let alert = testAlert()

        let answer = try await client.send(body: alert.body, idempotencyKey: alert.id)
        #expect(answer.status == status)
        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()

        // 3xx is neither delivered nor refused for good: kept at the head and retried.
        Self.expectKeptThenDeliveredOnce(
            run, retries: 2, reason: "the center answered \(status)", receiver: receiver, "\(status)")
        #expect(plain.connectionsSeen() == 0, "something connected to the plain-http Location")
    }

    @Test func aTwoHundredWithAGarbageBodyIsDeliveredOnce() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", "garbage-body", "--huge-bytes", "4096"])
        let client = try Self.client(pki, receiver.url)

        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()

        Self.expectKeptThenDeliveredOnce(run, retries: 0, reason: "", receiver: receiver, "garbage body")
        #expect(run.observed.deliveries.first?.status == 200)
        #expect(receiver.received().count == 1)
    }

    @Test(arguments: ["huge", "huge-length"])
    func aTwoHundredOverTheAnswerCapIsRetriedAndThenDedupedByTheCenter(mode: String) async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        // The center stores the alert and answers 200 with 1 MB (chunked, or with a length): the
        // client cuts it off at 64 KiB, so the answer does not count; the retry is a 409.
        let receiver = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", mode, "--huge-bytes", "1000000", "--times", "1"])
        let client = try Self.client(pki, receiver.url)

        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()

        Self.expectKeptThenDeliveredOnce(run, retries: 1, reason: "answer too large", receiver: receiver, mode)
        #expect(run.observed.deliveries.first?.status == 409)
        #expect(receiver.received().map { $0["duplicate"] as? Bool } == [false, true])
    }

    /// First lines and header lines libcurl refuses; the receiver stores the alert before each.
    static let brokenAnswers: [(arguments: [String], libcurl: String)] = [
        (["--mode", "bad-status-line", "--status-line", "HTTP/1.1 2OO OK"], "Unsupported response code"),
        (["--mode", "bad-status-line", "--status-line", "HTTP/9.9 200 OK"], "Unsupported HTTP version"),
        (["--mode", "bad-status-line", "--status-line", "HTTP/1.1 OK"], "Unsupported HTTP version"),
        (["--mode", "bad-status-line", "--status-line", "HTTP/1.1 200 OK\r\nno colon here"], "Header without colon"),
        (["--mode", "huge-header", "--huge-bytes", "102400"], "a header line of 100 KiB or more"),
    ]

    @Test(arguments: 0..<5)
    func aBrokenStatusLineOrAHugeHeaderIsABadAnswerAndRetried(index: Int) async throws {
        let (arguments, libcurl) = Self.brokenAnswers[index]
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: arguments + ["--times", "2"])
        let client = try Self.client(pki, receiver.url)
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }
        #expect(error?.kind == .badAnswer, "\(arguments): \(String(describing: error))")
        #expect(error?.curlMessage.contains(libcurl) == true, "\(arguments): \(String(describing: error))")

        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()
        // Stored by the bad answer, then answered 409 on the retry: deleted, stored once.
        Self.expectKeptThenDeliveredOnce(
            run, retries: 1, reason: "not HTTP", receiver: receiver, before: [alert.id],
            arguments.joined(separator: " "))
        #expect(run.observed.deliveries.first?.status == 409)
    }

    @Test func aStatusTheProtocolDoesNotKnowIsRetried() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", "bad-status-line", "--status-line", "HTTP/1.1 999 Weird", "--times", "1"])
        let client = try Self.client(pki, receiver.url)

        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()

        Self.expectKeptThenDeliveredOnce(run, retries: 1, reason: "the center answered 999", receiver: receiver, "999")
    }

    @Test func aCenterThatStoresThenHangsUpGetsTheAlertOnce() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", "drop-after-store", "--times", "1"])
        let client = try Self.client(pki, receiver.url)

        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()

        Self.expectKeptThenDeliveredOnce(run, retries: 1, reason: "connection dropped", receiver: receiver, "drop")
        #expect(run.observed.deliveries.first?.status == 409)
    }

    @Test func anAnswerLaterThanTheTimeoutIsRetriedAndTheLateCopyIsADuplicate() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        // The first POST is stored 3 s late, after the client gave up at 1 s and its retry was stored.
        let receiver = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", "slow", "--delay", "3", "--times", "1"])
        let client = try Self.client(pki, receiver.url, totalTimeout: .seconds(1))

        let run = try await Self.deliverOne(pki, through: client)
        client.shutdown()

        Self.expectKeptThenDeliveredOnce(run, retries: 1, reason: "timed out", receiver: receiver, "slow")
        #expect(run.observed.deliveries.first?.status == 200)
        for _ in 0..<80 where receiver.received().count < 2 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(receiver.received().map { $0["duplicate"] as? Bool } == [false, true], "the late copy is a duplicate")
    }

    @Test func headersDrippingAByteASecondAreAbortedByTheStallLimit() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(
            pki: pki, arguments: ["--mode", "header-drip", "--delay", "1", "--times", "1"])
        // The stall limit is 1 byte/s of body over 2 s; libcurl measures speed over its last 5 s,
        // which still hold the request's upload, so the abort comes 2 to about 8 s in. The total
        // timeout (30 s) is not what ends it.
        let client = try Self.client(pki, receiver.url, totalTimeout: .seconds(30), lowSpeedTime: .seconds(2))
        let start = ContinuousClock.now

        let run = try await Self.deliverOne(pki, through: client, seconds: 25)
        client.shutdown()

        Self.expectKeptThenDeliveredOnce(run, retries: 1, reason: "link stalled", receiver: receiver, "header drip")
        let abortedAfter = try #require(run.observed.retries.first).at - start
        #expect(abortedAfter >= .seconds(2) && abortedAfter < .seconds(12), "aborted after \(abortedAfter)")
        #expect(run.observed.deliveries.first?.status == 409)
    }
}

/// A plain TCP listener on 127.0.0.1 that nobody should connect to: connections the kernel completed
/// wait in its backlog, so `connectionsSeen()` counts every one made, even if never accepted.
final class PlainListener {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TLSPeerError(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(descriptor, raw, length) == 0 && listen(descriptor, 16) == 0
                    && getsockname(descriptor, raw, &length) == 0
            }
        }
        guard bound else {
            close(descriptor)
            throw TLSPeerError(description: "cannot listen on 127.0.0.1: errno \(errno)")
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        self.descriptor = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }

    /// Accepts (and closes) whatever connected so far; returns how many.
    func connectionsSeen() -> Int {
        var count = 0
        for _ in 0..<100 {
            let connection = accept(descriptor, nil, nil)
            guard connection >= 0 else { break }
            close(connection)
            count += 1
        }
        return count
    }
}

/// Runs blocking work (stopping delivery joins its thread) off the concurrency pool.
func offThePoolQuietly(_ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        Thread {
            body()
            continuation.resume()
        }.start()
    }
}

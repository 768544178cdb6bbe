import Detection
import Synchronization
import TestSupport
import Testing
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A center that answers from a script, then 200, and remembers what it was sent.
final class ScriptedCenter: CenterLink {
    private let state: Mutex<(script: [CenterAnswer], received: [String])>

    init(_ script: [CenterAnswer]) { state = Mutex((script, [])) }

    var received: [String] { state.withLock { $0.received } }

    func deliver(body: [UInt8], idempotencyKey: String) -> CenterAnswer {
        state.withLock { state in
            state.received.append(idempotencyKey)
            return state.script.isEmpty ? .status(200, body: [], retryAfterSeconds: nil) : state.script.removeFirst()
        }
    }
}

/// Collects what delivery logs.
final class DeliveryLog: Sendable {
    private let events = Mutex<[DeliveryEvent]>([])
    var all: [DeliveryEvent] { events.withLock { $0 } }
    func record(_ event: DeliveryEvent) { events.withLock { $0.append(event) } }
}

@Suite("Delivery from the outbox to the center")
struct DeliveryTests {
    static var fast: Delivery.Configuration {
        var configuration = Delivery.Configuration()
        configuration.firstBackoffSeconds = 0.01
        configuration.maxBackoffSeconds = 0.05
        configuration.heartbeatSeconds = 0
        return configuration
    }

    static let heartbeat: @Sendable () -> CenterAlert = { OutboxSamples.alert(.heartbeat) }

    @Test("alarms go first, then the rest in seq order; 2xx and 409 delete them")
    func order() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file())
        let heartbeat = try outbox.enqueue(OutboxSamples.alert(.heartbeat))
        let fault = try outbox.enqueue(OutboxSamples.alert(.sensorFault))
        let alarm = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm))
        let center = ScriptedCenter([
            .status(201, body: [], retryAfterSeconds: nil), .status(409, body: [], retryAfterSeconds: nil),
        ])
        let log = DeliveryLog()
        let delivery = Delivery(
            outbox: outbox, link: center, configuration: Self.fast, heartbeat: Self.heartbeat, log: log.record)
        delivery.start()
        #expect(eventually { outbox.depth == 0 })
        delivery.stop()
        #expect(center.received == [alarm.id, fault.id, heartbeat.id])
        #expect(delivery.deliveredCount == 3)
    }

    @Test("no answer, 5xx, 408, 425 and 429 keep the alert at the head and back off; nothing overtakes it")
    func retries() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file())
        let first = try outbox.enqueue(OutboxSamples.alert(.checkMissed))
        let second = try outbox.enqueue(OutboxSamples.alert(.alarmEscalated))
        let failures: [CenterAnswer] = [
            .failed("connection refused"), .status(503, body: [], retryAfterSeconds: nil),
            .status(408, body: [], retryAfterSeconds: nil), .status(425, body: [], retryAfterSeconds: nil),
            .status(429, body: [], retryAfterSeconds: nil), .status(302, body: [], retryAfterSeconds: nil),
        ]
        let center = ScriptedCenter(failures)
        let log = DeliveryLog()
        let delivery = Delivery(
            outbox: outbox, link: center, configuration: Self.fast, heartbeat: Self.heartbeat, log: log.record)
        delivery.start()
        #expect(eventually { outbox.depth == 0 })
        delivery.stop()
        #expect(center.received == Array(repeating: first.id, count: 7) + [second.id])
        let retries = log.all.filter { if case .retrying = $0 { true } else { false } }
        #expect(retries.count == 6)
        #expect(outbox.deadLetterCount == 0)
    }

    @Test("another 4xx goes to the dead-letter table and the journal, and delivery goes on")
    func deadLetter() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file())
        let refused = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm))
        let next = try outbox.enqueue(OutboxSamples.alert(.alarmEscalated))
        let center = ScriptedCenter([.status(400, body: Array("unknown vehicle".utf8), retryAfterSeconds: nil)])
        let log = DeliveryLog()
        let delivery = Delivery(
            outbox: outbox, link: center, configuration: Self.fast, heartbeat: Self.heartbeat, log: log.record)
        delivery.start()
        #expect(eventually { outbox.depth == 0 })
        delivery.stop()
        #expect(center.received == [refused.id, next.id])
        #expect(outbox.deadLetterCount == 1)
        let letters = try outbox.deadLetters(limit: 10)
        #expect(letters.first?.id == refused.id && letters.first?.httpStatus == 400)
        #expect(letters.first?.answer == "unknown vehicle")
        #expect(
            log.all.contains(
                .deadLettered(
                    id: refused.id, seq: refused.seq, type: "presence_alarm", status: 400, answer: "unknown vehicle")))
    }

    @Test("the backoff doubles from the first step to the cap, jittered in the upper half")
    func backoff() {
        var configuration = Delivery.Configuration()
        configuration.firstBackoffSeconds = 1
        configuration.maxBackoffSeconds = 60
        #expect(Delivery.backoff(failures: 1, configuration: configuration, random: 1) == 1)
        #expect(Delivery.backoff(failures: 1, configuration: configuration, random: 0) == 0.5)
        #expect(Delivery.backoff(failures: 4, configuration: configuration, random: 1) == 8)
        #expect(Delivery.backoff(failures: 7, configuration: configuration, random: 1) == 60)
        #expect(Delivery.backoff(failures: 500, configuration: configuration, random: 0.5) == 45)
    }

    @Test("a new alarm cuts a backoff short")
    func wake() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file())
        var configuration = Self.fast
        // Under a sanitizer the backoff and the bound below grow together: still well apart.
        configuration.firstBackoffSeconds = budget(seconds: 30)
        configuration.maxBackoffSeconds = budget(seconds: 30)
        _ = try outbox.enqueue(OutboxSamples.alert(.checkMissed))
        let center = ScriptedCenter([.failed("timed out")])
        let delivery = Delivery(outbox: outbox, link: center, configuration: configuration, heartbeat: Self.heartbeat) {
            _ in
        }
        delivery.start()
        #expect(eventually { center.received.count == 1 })
        _ = try outbox.enqueue(OutboxSamples.alert(.presenceAlarm))
        delivery.wake()
        // Well before the 15–30 s backoff would end.
        #expect(eventually(budget(seconds: 5)) { outbox.depth == 0 })
        delivery.stop()
    }

    @Test("heartbeats are queued on schedule and delivered")
    func heartbeats() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file())
        var configuration = Self.fast
        configuration.heartbeatSeconds = 0.2
        let center = ScriptedCenter([])
        let log = DeliveryLog()
        let delivery = Delivery(
            outbox: outbox, link: center, configuration: configuration, heartbeat: Self.heartbeat, log: log.record)
        delivery.start()
        #expect(eventually { center.received.count >= 2 })
        delivery.stop()
        let queued = log.all.filter { if case .heartbeatQueued = $0 { true } else { false } }
        #expect(queued.count >= 2)
    }

    @Test("stop returns promptly while idle and while backing off")
    func stopIsPrompt() throws {
        let scratch = try OutboxScratch()
        defer { scratch.remove() }
        let outbox = try Outbox(path: scratch.file())
        var configuration = Self.fast
        configuration.firstBackoffSeconds = 60
        configuration.maxBackoffSeconds = 60
        _ = try outbox.enqueue(OutboxSamples.alert(.checkMissed))
        let center = ScriptedCenter([.failed("down")])
        let delivery = Delivery(outbox: outbox, link: center, configuration: configuration, heartbeat: Self.heartbeat) {
            _ in
        }
        delivery.start()
        #expect(eventually { center.received.count == 1 })
        let start = monotonicNow()
        delivery.stop()
        #expect(monotonicNow() - start < 1)
    }

    func monotonicNow() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

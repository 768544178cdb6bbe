import Daemon
import Detection
import Testing

@Suite("Recording live inputs as a trace")
struct TraceRecorderTests {
    static let signals = ["ignition", "door", "button", "seat.1", "cabin"]
    static let origin: UInt64 = 5_000_000_000

    func at(_ seconds: Double) -> UInt64 { Self.origin + UInt64(seconds * 1e9) }

    @Test("the header, the true levels at t = 0, changes to the millisecond, faults, the end: a trace replay reads")
    func lines() throws {
        let lines = Collected<String>()
        let recorder = TraceRecorder(signals: Self.signals, originNanoseconds: Self.origin) { lines.append($0) }
        var policy = Policy()
        try policy.set("check_window_s", to: 90)
        recorder.begin(
            sensors: [SensorSpec(id: "seat.1", kind: .seat), SensorSpec(id: "cabin", kind: .temperature)],
            policy: policy)
        recorder.initial([(0, true), (1, false), (2, false), (3, false)])
        recorder.record(.reading(signal: 3, .flag(true), atNanoseconds: at(1.2345678)))
        // The same level again (an edge the start-up snapshot already showed): nothing.
        recorder.record(.reading(signal: 3, .flag(true), atNanoseconds: at(1.3)))
        // A Modbus answer stamped before the last GPIO edge: written at the last line's time.
        recorder.record(.reading(signal: 4, .number(275 * 0.1 + 1e-12), atNanoseconds: at(1.1)))
        recorder.record(.fault(signal: 4, reason: "timeout", atNanoseconds: at(3)))
        recorder.record(.fault(signal: 4, reason: "timeout", atNanoseconds: at(3.5)))
        recorder.record(.fault(signal: 4, reason: nil, atNanoseconds: at(5)))
        // After a fault the reading is written again, even the same one.
        recorder.record(.reading(signal: 4, .number(27.5), atNanoseconds: at(5.25)))
        recorder.record(.reading(signal: 0, .flag(false), atNanoseconds: at(600)))
        #expect(recorder.end(atNanoseconds: at(700.0004)) == 700)
        recorder.record(.reading(signal: 1, .flag(true), atNanoseconds: at(701)))
        #expect(recorder.end(atNanoseconds: at(800)) == 700)
        #expect(
            lines.items == [
                #"{"headcount_trace":1,"sensors":[{"id":"seat.1","kind":"seat"},{"id":"cabin","kind":"temperature"}],"policy":{"check_window_s":90}}"#
                    + "\n",
                #"{"t":0,"signal":"ignition","value":true}"# + "\n",
                #"{"t":1.235,"signal":"seat.1","value":true}"# + "\n",
                #"{"t":1.235,"signal":"cabin","value":27.5}"# + "\n",
                #"{"t":3,"signal":"cabin","fault":"timeout"}"# + "\n",
                #"{"t":5,"signal":"cabin","fault":null}"# + "\n",
                #"{"t":5.25,"signal":"cabin","value":27.5}"# + "\n",
                #"{"t":600,"signal":"ignition","value":false}"# + "\n",
                #"{"t":700,"end":true}"# + "\n",
            ])
        #expect(recorder.lineCount == 9)
        let trace = try Trace.parse(lines.items.joined(), file: "recorded.jsonl")
        #expect(trace.sensors.map(\.id) == ["seat.1", "cabin", "ignition", "door", "button"])
        #expect(trace.policy.checkWindow == 90)
        #expect(trace.steps.count == 7)
        #expect(trace.end == 700)
        // Ignition on at 0, off at 600: the reminder; seat.1 stays occupied, so the missed check
        // at 690 is followed by a presence alarm.
        let events = trace.replay(policy: trace.policy).compactMap { event -> (DetectionEvent, Seconds)? in
            if case .event(let what, let t) = event { return (what, t) }
            return nil
        }
        #expect(events.first.map { $0.0 == .reminder && $0.1 == 600 } == true)
        #expect(events.contains { $0.0 == .alarm(level: 1, reason: .checkMissed) && $0.1 == 690 })
    }

    @Test("no policy object when the policy is the default; built-ins are never declared")
    func defaultHeader() {
        let header = TraceRecorder.header(
            sensors: [SensorSpec(id: "door", kind: .door), SensorSpec(id: "radar.rear", kind: .presence)],
            policy: Policy())
        #expect(header == #"{"headcount_trace":1,"sensors":[{"id":"radar.rear","kind":"presence"}]}"#)
    }

    @Test("at the simulator's speed t counts trip seconds")
    func speed() {
        let lines = Collected<String>()
        let recorder = TraceRecorder(signals: Self.signals, originNanoseconds: Self.origin, speed: 40) {
            lines.append($0)
        }
        recorder.record(.reading(signal: 2, .flag(true), atNanoseconds: at(0.25)))
        recorder.record(.reading(signal: 2, .flag(false), atNanoseconds: at(0.26)))
        recorder.end(atNanoseconds: at(30))
        #expect(
            lines.items == [
                #"{"t":10,"signal":"button","value":true}"# + "\n",
                #"{"t":10.4,"signal":"button","value":false}"# + "\n",
                #"{"t":1200,"end":true}"# + "\n",
            ])
    }
}

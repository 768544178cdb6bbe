import Detection
import Formats
import Synchronization

/// Live inputs written as a trace in SPEC.md's format, one line at a time, for `headcount record`:
/// the header (every sensor of the config, and the policy values that differ from the defaults),
/// the initial levels that are not false at t = 0, one line per change, and the `end` line.
///
/// `t` counts seconds from `originNanoseconds` (CLOCK_MONOTONIC) times `speed` (1 in the van; the
/// simulator's speed when it plays a trip faster), rounded to the millisecond, and never goes back:
/// GPIO edges and Modbus answers come from different threads, so a change stamped a little before
/// the last one written is written at the last one's time. A change that leaves a signal as it was
/// is not written. Every line goes to `write` as soon as it is made, so a recorder that is killed
/// leaves a trace that `headcount replay` reads up to its last whole line.
public final class TraceRecorder: Sendable {
    private let signals: [String]
    private let origin: UInt64
    private let speed: Double
    private let write: @Sendable (String) -> Void
    private let state = Mutex(State())

    private struct State {
        var lastT: Double = 0
        var values: [Int: JSONValue] = [:]
        var faulty: Set<Int> = []
        var lines = 0
        var ended = false
    }

    /// `signals` names each signal index of the changes to come (`LiveInputs.signals` ids).
    public init(
        signals: [String], originNanoseconds: UInt64, speed: Double = 1, write: @escaping @Sendable (String) -> Void
    ) {
        self.signals = signals
        self.origin = originNanoseconds
        self.speed = speed
        self.write = write
    }

    /// The header line: `sensors` (the built-ins are left out: a trace never declares them), and
    /// `policy` with the settings that differ from SPEC.md's defaults, when there are any.
    public static func header(sensors: [SensorSpec], policy: Policy) -> String {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("headcount_trace", 1)
        writer.beginArray(key: "sensors")
        for sensor in sensors where !SensorSpec.builtIns.contains(sensor) {
            writer.beginObject()
            writer.field("id", sensor.id)
            writer.field("kind", sensor.kind.rawValue)
            writer.endObject()
        }
        writer.endArray()
        let defaults = Policy()
        let changed = Policy.settings.filter { policy.value(of: $0) != defaults.value(of: $0) }
        if !changed.isEmpty {
            writer.beginObject(key: "policy")
            for setting in changed { writer.field(setting.name, policy.value(of: setting)) }
            writer.endObject()
        }
        writer.endObject()
        return writer.text
    }

    /// Writes the header line.
    public func begin(sensors: [SensorSpec], policy: Policy) {
        state.withLock { state in
            guard state.lines == 0 else { return }
            state.lines += 1
            write(TraceRecorder.header(sensors: sensors, policy: policy) + "\n")
        }
    }

    /// The levels found at the start, written at t = 0 where they are not false (a trace starts
    /// with every signal false or absent).
    public func initial(_ levels: [(signal: Int, value: Bool)]) {
        state.withLock { state in
            for (signal, value) in levels where signals.indices.contains(signal) {
                state.values[signal] = .bool(value)
                if value { line(&state, t: 0, signal: signal, key: "value", .bool(true)) }
            }
        }
    }

    /// One change of a live input.
    public func record(_ change: LiveInputs.Change) {
        state.withLock { state in
            guard !state.ended else { return }
            switch change {
            case .reading(let signal, let reading, let at):
                guard signals.indices.contains(signal) else { return }
                let value: JSONValue
                switch reading {
                case .flag(let on): value = .bool(on)
                // Decoded registers carry binary noise (275 × 0.1 = 27.500000000000004): four decimals
                // are more than any sensor here resolves.
                case .number(let number): value = .number((number * 10_000).rounded() / 10_000)
                }
                if state.values[signal] == value { return }
                state.values[signal] = value
                line(&state, t: seconds(at), signal: signal, key: "value", value)
            case .fault(let signal, let reason, let at):
                guard signals.indices.contains(signal) else { return }
                if let reason {
                    guard state.faulty.insert(signal).inserted else { return }
                    // After a fault the next reading is written, whatever it is.
                    state.values[signal] = nil
                    line(&state, t: seconds(at), signal: signal, key: "fault", .string(reason))
                } else {
                    guard state.faulty.remove(signal) != nil else { return }
                    line(&state, t: seconds(at), signal: signal, key: "fault", .null)
                }
            }
        }
    }

    /// Writes the `end` line at `atNanoseconds` (or at the last change, if that is later); later
    /// changes are ignored. Returns the trace's length in seconds.
    @discardableResult
    public func end(atNanoseconds: UInt64) -> Double {
        state.withLock { state in
            guard !state.ended else { return state.lastT }
            state.ended = true
            let t = max(state.lastT, seconds(atNanoseconds))
            state.lastT = t
            var writer = JSONWriter()
            writer.beginObject()
            writer.field("t", t)
            writer.field("end", true)
            writer.endObject()
            state.lines += 1
            write(writer.text + "\n")
            return t
        }
    }

    /// Lines written so far, the header and the end line included.
    public var lineCount: Int { state.withLock { $0.lines } }

    /// Seconds since the origin, times the speed, to the millisecond.
    private func seconds(_ at: UInt64) -> Double {
        guard at > origin else { return 0 }
        return (Double(at - origin) / 1e9 * speed * 1000).rounded() / 1000
    }

    private func line(_ state: inout State, t: Double, signal: Int, key: String, _ value: JSONValue) {
        let t = max(state.lastT, t)
        state.lastT = t
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("t", t)
        writer.field("signal", signals[signal])
        writer.field(key, value)
        writer.endObject()
        state.lines += 1
        write(writer.text + "\n")
    }
}

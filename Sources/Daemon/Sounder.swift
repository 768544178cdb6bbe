import Detection
import GPIO
import Synchronization
import Threads
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Drives the cabin buzzer, the horn relay and the hazard relay in the engine's sound patterns, on
/// a thread of its own (chimes and the horn's beat run in real time whatever the engine's speed).
/// A new pattern is applied to the outputs at once, on the caller's thread, so an alarm sounds
/// within the time of a GPIO write.
public final class Sounder: Sendable {
    /// Output indices in the GPIO backend's request, by role; nil when the board lacks it.
    public struct Outputs: Sendable {
        public var buzzer: Int?
        public var horn: Int?
        public var hazard: Int?
        public var statusLED: Int?

        public init(buzzer: Int?, horn: Int?, hazard: Int?, statusLED: Int?) {
            self.buzzer = buzzer
            self.horn = horn
            self.hazard = hazard
            self.statusLED = statusLED
        }
    }

    private struct State {
        var pattern: SoundPattern = .silent
        var since: Double = 0
        var chirpUntil: Double = 0
        var stopping = false
    }

    private let backend: any GPIOBackend
    private let outputs: Outputs
    private let state = Mutex(State())
    /// The value last written to each output, by index. Its lock is held from reading the pattern
    /// to the last write: the engine's thread (a new pattern) and the sounder's (the beat) both
    /// step, and a step that read the old pattern must not write after one that read the new.
    /// Interleaved, the stale write landed last while this said the new value was written, so a
    /// level 1 alarm stayed silent for as long as its buzzer stayed on.
    private let written = Mutex<[Int: Bool]>([:])
    private let signal = WakeSignal()
    private let thread = Mutex<pthread_t?>(nil)
    private let onWriteFailure: @Sendable (String) -> Void

    public init(backend: any GPIOBackend, outputs: Outputs, onWriteFailure: @escaping @Sendable (String) -> Void) {
        self.backend = backend
        self.outputs = outputs
        self.onWriteFailure = onWriteFailure
    }

    /// The pattern sounding now.
    public var pattern: SoundPattern { state.withLock { $0.pattern } }

    public func start() {
        // Without its thread a pattern is still applied when set; only the beat would be missing.
        guard case .success(let handle) = OwnedThread.start(name: "sounder", { [self] in run() }) else { return }
        thread.withLock { $0 = handle }
    }

    /// Silences everything and stops the thread.
    public func stop() {
        state.withLock {
            $0.stopping = true
            $0.pattern = .silent
            $0.chirpUntil = 0
        }
        signal.notify()
        let handle = thread.withLock { handle -> pthread_t? in
            defer { handle = nil }
            return handle
        }
        if let handle { OwnedThread.join(handle) }
        written.withLock { written in
            write(buzzer: false, horn: false, hazard: false, led: false, written: &written)
        }
    }

    /// Switches to `pattern`. The self-test chirp plays over whatever pattern follows it.
    public func set(_ pattern: SoundPattern) {
        let now = Sounder.now()
        state.withLock { state in
            if pattern == .selfTest {
                state.chirpUntil = now + 0.15
            } else if pattern != state.pattern {
                state.pattern = pattern
                state.since = now
            }
        }
        step()
        signal.notify()
    }

    private func run() {
        while !state.withLock({ $0.stopping }) {
            let next = step()
            signal.wait(seconds: next)
        }
    }

    /// Writes what the outputs should be now; returns the seconds until they next change.
    @discardableResult
    private func step() -> Double {
        written.withLock { written in
            let now = Sounder.now()
            let (pattern, since, chirpUntil) = state.withLock { ($0.pattern, $0.since, $0.chirpUntil) }
            return step(pattern: pattern, elapsed: now - since, chirp: chirpUntil - now, written: &written)
        }
    }

    private func step(pattern: SoundPattern, elapsed: Double, chirp: Double, written: inout [Int: Bool]) -> Double {
        var buzzer = false
        var horn = false
        var hazard = false
        var next = 1.0
        switch pattern {
        case .silent, .selfTest:
            break
        case .reminder:
            // A 0.2 s chime every 3 s.
            let phase = elapsed.truncatingRemainder(dividingBy: 3)
            buzzer = phase < 0.2
            next = buzzer ? 0.2 - phase : 3 - phase
        case .level1:
            buzzer = true
        case .level2:
            // Buzzer on, hazard lights on (the flasher relay blinks them), horn 1 s on, 1 s off.
            buzzer = true
            hazard = true
            let phase = elapsed.truncatingRemainder(dividingBy: 2)
            horn = phase < 1
            next = horn ? 1 - phase : 2 - phase
        }
        if chirp > 0 {
            buzzer = true
            next = min(next, chirp)
        }
        write(buzzer: buzzer, horn: horn, hazard: hazard, led: true, written: &written)
        return max(next, 0.005)
    }

    private func write(buzzer: Bool, horn: Bool, hazard: Bool, led: Bool, written: inout [Int: Bool]) {
        for (index, value) in [
            (outputs.buzzer, buzzer), (outputs.horn, horn), (outputs.hazard, hazard), (outputs.statusLED, led),
        ] {
            guard let index, written[index] != value else { continue }
            written[index] = value
            do {
                try backend.setOutput(index, to: value)
            } catch {
                // Not written: the next step tries again (at least once a second while it sounds).
                written[index] = nil
                onWriteFailure(error.description)
            }
        }
    }

    static func now() -> Double { Double(EngineClock.monotonicNanoseconds()) / 1e9 }
}

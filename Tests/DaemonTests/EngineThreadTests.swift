import Daemon
import Detection
import Dispatch
import Foundation
import Synchronization
import TestSupport
import Testing

/// Effects that record what the engine did, and hold the engine thread in its first commit for a
/// while, as a slow fsync does (an SD card, a busy disk).
private final class SlowDiskEffects: EngineEffects {
    private let held: Double
    private let recorded = Mutex<(alerts: [AlertType], events: [DetectionEvent], commits: Int)>(([], [], 0))
    /// Signalled when the engine enters the commit it is held in.
    let inSlowCommit = DispatchSemaphore(value: 0)

    init(holdFirstCommitSeconds: Double) { held = holdFirstCommitSeconds }

    var alerts: [AlertType] { recorded.withLock { $0.alerts } }
    var events: [DetectionEvent] { recorded.withLock { $0.events } }

    func commit(_ alerts: [Alert], memory: MachineMemory, at time: Seconds) {
        let first = recorded.withLock { state -> Bool in
            state.commits += 1
            state.alerts += alerts.map(\.type)
            return state.commits == 1
        }
        if first {
            inSlowCommit.signal()
            usleep(UInt32(held * 1_000_000))
        }
    }

    func sound(_ pattern: SoundPattern) {}

    func event(_ event: DetectionEvent, at time: Seconds) { recorded.withLock { $0.events.append(event) } }
}

@Suite("The engine thread")
struct EngineThreadTests {
    /// An engine on `machine` at 100×, started, whose first commit is held `holdFirstCommitSeconds`;
    /// and `at`, the monotonic time of an engine second on its clock.
    private func startAt100x(_ machine: DetectionMachine, holdFirstCommitSeconds: Double) -> (
        engine: EngineThread, effects: SlowDiskEffects, at: (Double) -> UInt64
    ) {
        let clock = EngineClock(speed: 100)
        let effects = SlowDiskEffects(holdFirstCommitSeconds: holdFirstCommitSeconds)
        let engine = EngineThread(machine: machine, clock: clock, effects: effects)
        engine.start(powerUp: false)
        return (engine, effects, { clock.startNanoseconds + UInt64($0 / clock.speed * 1e9) })
    }

    @Test("inputs that arrive during a slow commit go before the timers that fell due meanwhile")
    func inputsBeforeTimersAfterSlowCommit() throws {
        // At 100×, the 30 s check window is 300 ms. The ignition goes off at engine 1 s; the commit
        // of the reminder takes 600 ms (engine 61 s). During it the driver presses CHECK at engine
        // 11 s, well inside the window: the press is queued with its timestamp. It must be taken
        // before the check window's deadline (engine 31 s) fires, or the van raises check_missed
        // for a driver who checked in time.
        var policy = Policy()
        policy.checkWindow = 30
        let machine = DetectionMachine(sensors: [], policy: policy)
        let ignition = try #require(machine.index(of: "ignition"))
        let button = try #require(machine.index(of: "button"))
        let (engine, effects, at) = startAt100x(machine, holdFirstCommitSeconds: 0.6)
        defer { engine.stop() }
        engine.submit(EngineInput(.reading(sensor: ignition, .flag(true)), atNanoseconds: at(0.5)))
        engine.submit(EngineInput(.reading(sensor: ignition, .flag(false)), atNanoseconds: at(1)))
        #expect(effects.inSlowCommit.wait(timeout: .now() + 5) == .success)
        // The press happened (engine 11 s) and has reached the engine's queue while it still commits.
        while EngineClock.monotonicNanoseconds() < at(13) { usleep(1_000) }
        engine.submit(EngineInput(.reading(sensor: button, .flag(true)), atNanoseconds: at(11)))
        engine.submit(EngineInput(.reading(sensor: button, .flag(false)), atNanoseconds: at(11.3)))
        #expect(eventually { effects.events.contains(.checked) })
        // Time for the window's deadline to have fired, had it not been cancelled.
        usleep(200_000)
        #expect(effects.events == [.reminder, .checked])
        #expect(!effects.alerts.contains(.checkMissed))
    }

    @Test("a press and its release that reach the engine late keep their own times: the hold still acknowledges")
    func lateInputsKeepTheirTimes() throws {
        // At 100×: a child on seat 1, nobody checks; the 30 s window runs out at engine 31 s with
        // the seat confirmed: a presence alarm, level 2 due at 151 s. A press at 125 s held to 128 s
        // (ack hold 1 s) reaches the engine only after it has turned idle past 129 s (it turns at
        // least once a real second), as after a stall of the input thread: both edges at once, both
        // in the past, with no timer due between them or since. Handled at their own times, the
        // hold completes at 126 s and silences the alarm; squashed to the time of that idle turn,
        // the press would last no time and silence nothing.
        var policy = Policy()
        policy.checkWindow = 30
        policy.escalateAfter = 120
        policy.ackHold = 1
        let machine = DetectionMachine(sensors: [SensorSpec(id: "seat.1", kind: .seat)], policy: policy)
        let seat = try #require(machine.index(of: "seat.1"))
        let ignition = try #require(machine.index(of: "ignition"))
        let button = try #require(machine.index(of: "button"))
        let (engine, effects, at) = startAt100x(machine, holdFirstCommitSeconds: 0)
        defer { engine.stop() }
        engine.submit(EngineInput(.reading(sensor: seat, .flag(true)), atNanoseconds: at(0.2)))
        engine.submit(EngineInput(.reading(sensor: ignition, .flag(true)), atNanoseconds: at(0.5)))
        engine.submit(EngineInput(.reading(sensor: ignition, .flag(false)), atNanoseconds: at(1)))
        #expect(eventually { effects.events.contains(.alarm(level: 1, reason: .presence)) })
        while EngineClock.monotonicNanoseconds() < at(129) { usleep(1_000) }
        let turns = engine.progress
        #expect(eventually(5) { engine.progress > turns })
        #expect(EngineClock.monotonicNanoseconds() < at(150), "the machine was too slow to turn before level 2")
        engine.submit(EngineInput(.reading(sensor: button, .flag(true)), atNanoseconds: at(125)))
        engine.submit(EngineInput(.reading(sensor: button, .flag(false)), atNanoseconds: at(128)))
        #expect(eventually { effects.events.contains(.silenced) })
        #expect(!effects.events.contains(.alarm(level: 2, reason: .presence)))
        #expect(effects.alerts.contains(.alarmAcknowledged))
    }
}

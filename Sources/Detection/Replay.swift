/// The timers a `DetectionMachine` asked for, kept by the driver that runs it under virtual time.
/// At most one of each `TimerID` is pending; among timers due at the same instant the order is the
/// order of `TimerID`'s cases, and the check window comes after inputs at that instant.
public struct TimerTable: Sendable {
    private var deadlines: [Seconds]
    private let sensorCount: Int
    /// The slot with the earliest deadline, or nil when it must be searched again.
    private var earliest: Int?

    public init(sensorCount: Int) {
        self.sensorCount = sensorCount
        deadlines = [Seconds](repeating: .infinity, count: sensorCount + 6)
    }

    private func slot(of timer: TimerID) -> Int {
        switch timer {
        case .ackHold: 0
        case .confirm(let index): 1 + index
        case .exitGrace: sensorCount + 1
        case .recheck: sensorCount + 2
        case .escalation: sensorCount + 3
        case .monitorEnd: sensorCount + 4
        case .checkWindow: sensorCount + 5
        }
    }

    private func timer(at slot: Int) -> TimerID {
        switch slot {
        case 0: .ackHold
        case sensorCount + 1: .exitGrace
        case sensorCount + 2: .recheck
        case sensorCount + 3: .escalation
        case sensorCount + 4: .monitorEnd
        case sensorCount + 5: .checkWindow
        default: .confirm(slot - 1)
        }
    }

    /// Applies a timer action; other actions are ignored.
    public mutating func apply(_ action: Action) {
        switch action {
        case .startTimer(let timer, let deadline):
            let slot = slot(of: timer)
            guard deadlines.indices.contains(slot) else { return }
            deadlines[slot] = deadline
            if let current = earliest {
                if slot == current {
                    earliest = nil
                } else if deadline < deadlines[current] || (deadline == deadlines[current] && slot < current) {
                    earliest = slot
                }
            }
        case .cancelTimer(let timer):
            let slot = slot(of: timer)
            guard deadlines.indices.contains(slot) else { return }
            deadlines[slot] = .infinity
            if earliest == slot { earliest = nil }
        default:
            break
        }
    }

    /// The deadline of the timer that fires next, if any.
    public mutating func nextDeadline() -> Seconds? {
        let slot = earliestSlot()
        return deadlines[slot].isFinite ? deadlines[slot] : nil
    }

    private mutating func earliestSlot() -> Int {
        if let earliest { return earliest }
        var best = 0
        for slot in 1..<deadlines.count where deadlines[slot] < deadlines[best] { best = slot }
        earliest = best
        return best
    }

    /// Removes and returns the next timer due before an input at `time` (or, with `inclusive`, due
    /// at or before `time` whatever it is).
    public mutating func popDue(before time: Seconds, inclusive: Bool) -> (TimerID, Seconds)? {
        let slot = earliestSlot()
        let deadline = deadlines[slot]
        guard deadline < time || (deadline == time && (inclusive || slot != sensorCount + 5)) else {
            // A check window due exactly now waits for the input; a timer due at the same instant
            // behind it cannot exist, since the window has the last slot.
            return nil
        }
        deadlines[slot] = .infinity
        earliest = nil
        return (timer(at: slot), deadline)
    }
}

/// Runs a `DetectionMachine` under virtual time: feeds it inputs in time order and fires the
/// timers it asks for exactly when they are due, without sleeping.
public struct VirtualTimeDriver: Sendable {
    public private(set) var machine: DetectionMachine
    private var timers: TimerTable
    /// Everything the machine asked for, in order, since the caller last emptied it.
    public var actions: [Action] = []
    public private(set) var now: Seconds = 0

    public init(machine: DetectionMachine) {
        self.machine = machine
        timers = TimerTable(sensorCount: machine.sensors.count)
        actions.reserveCapacity(64)
    }

    /// Fires every timer due before an input at `time`, then gives the machine the input.
    public mutating func feed(_ input: Input, at time: Seconds) {
        fireTimers(upTo: time, inclusive: false)
        now = max(now, time)
        let mark = actions.count
        machine.handle(input, at: now, into: &actions)
        applyTimers(from: mark)
    }

    /// Fires every timer due up to and including `time`: the end of a trace.
    public mutating func finish(at time: Seconds) {
        fireTimers(upTo: time, inclusive: true)
        now = max(now, time)
    }

    private mutating func fireTimers(upTo time: Seconds, inclusive: Bool) {
        while let (timer, deadline) = timers.popDue(before: time, inclusive: inclusive) {
            now = max(now, deadline)
            let mark = actions.count
            machine.timerFired(timer, at: now, into: &actions)
            applyTimers(from: mark)
        }
    }

    private mutating func applyTimers(from mark: Int) {
        var index = mark
        while index < actions.count {
            switch actions[index] {
            case .startTimer, .cancelTimer: timers.apply(actions[index])
            default: break
            }
            index += 1
        }
    }
}

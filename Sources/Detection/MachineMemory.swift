import Formats

/// What the detection machine keeps across a restart (a crash, the watchdog, a power dip): where the
/// trip is, the alarm and the trip's tallies. Sensor levels are not kept: after a restart they are
/// read again from the hardware, and seats and radars confirm again from then.
///
/// Times are the engine's own seconds at the moment it was written; `resume` moves them onto a new
/// clock.
public struct MachineMemory: Equatable, Sendable {
    var state: DetectionMachine.State
    var alarm: DetectionMachine.AlarmState
    var ignitionOn: Bool
    var graceEnd: Seconds
    var trip: DetectionMachine.TripStats

    /// The memory's format version, written first.
    public static let version = 1
}

extension DetectionMachine {
    /// What survives a restart, now.
    public var memory: MachineMemory {
        MachineMemory(state: state, alarm: alarm, ignitionOn: ignitionOn, graceEnd: graceEnd, trip: trip)
    }

    /// A machine that goes on from `memory`, written when its clock read `writtenAt`; the new clock
    /// reads `now`, and `elapsed` seconds passed in between (wall-clock time while the daemon was
    /// down). Every deadline keeps its place in real time: a check window that ran out meanwhile
    /// runs out at once.
    public init(
        sensors: [SensorSpec], policy: Policy, resuming memory: MachineMemory, writtenAt: Seconds, now: Seconds,
        elapsed: Seconds
    ) {
        self.init(sensors: sensors, policy: policy)
        let shift = now - max(elapsed, 0) - writtenAt
        func move(_ time: Seconds) -> Seconds { time + shift }
        switch memory.state {
        case .parked: state = .parked
        case .driving: state = .driving
        case .checkWindow(let offAt, let deadline): state = .checkWindow(offAt: move(offAt), deadline: move(deadline))
        case .closed(let offAt): state = .closed(offAt: move(offAt))
        case .monitoringEnded(let offAt): state = .monitoringEnded(offAt: move(offAt))
        }
        switch memory.alarm {
        case .quiet: alarm = .quiet
        case .sounding(var current):
            current.since = move(current.since)
            alarm = .sounding(current)
        case .silenced(var current, let recheckAt):
            current.since = move(current.since)
            alarm = .silenced(current, recheckAt: move(recheckAt))
        }
        ignitionOn = memory.ignitionOn
        graceEnd = memory.graceEnd.isFinite ? move(memory.graceEnd) : memory.graceEnd
        trip = memory.trip
        trip.checkedAt = trip.checkedAt.map(move)
        sound = soundForState
    }

    /// What should sound in this state: after a restart, an alarm that was sounding sounds again.
    var soundForState: SoundPattern {
        switch alarm {
        case .sounding(let current): return current.level >= 2 ? .level2 : .level1
        case .silenced: return .silent
        case .quiet:
            if case .checkWindow = state { return .reminder }
            return .silent
        }
    }

    /// The timers this machine needs running, derived from its state: what a driver arms after a
    /// restart.
    public var pendingTimers: [(TimerID, Seconds)] {
        var timers: [(TimerID, Seconds)] = []
        switch state {
        case .checkWindow(let offAt, let deadline):
            timers.append((.checkWindow, deadline))
            timers.append((.monitorEnd, offAt + policy.monitorFor))
        case .closed(let offAt):
            timers.append((.monitorEnd, offAt + policy.monitorFor))
        case .parked, .driving, .monitoringEnded:
            break
        }
        switch alarm {
        case .sounding(let current) where current.level == 1:
            timers.append((.escalation, current.since + policy.escalateAfter))
        case .silenced(_, let recheckAt):
            timers.append((.recheck, recheckAt))
        default:
            break
        }
        if graceEnd.isFinite { timers.append((.exitGrace, graceEnd)) }
        return timers
    }
}

extension MachineMemory {
    /// One line of JSON.
    public var json: String {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("version", MachineMemory.version)
        switch state {
        case .parked: writer.field("state", "parked")
        case .driving: writer.field("state", "driving")
        case .checkWindow(let offAt, let deadline):
            writer.field("state", "check_window")
            writer.field("off_at", offAt)
            writer.field("deadline", deadline)
        case .closed(let offAt):
            writer.field("state", "closed")
            writer.field("off_at", offAt)
        case .monitoringEnded(let offAt):
            writer.field("state", "monitoring_ended")
            writer.field("off_at", offAt)
        }
        switch alarm {
        case .quiet: writer.field("alarm", "quiet")
        case .sounding(let current):
            writer.field("alarm", "sounding")
            write(current, to: &writer)
        case .silenced(let current, let recheckAt):
            writer.field("alarm", "silenced")
            write(current, to: &writer)
            writer.field("recheck_at", recheckAt)
        }
        writer.field("ignition_on", ignitionOn)
        if graceEnd.isFinite { writer.field("grace_end", graceEnd) }
        writer.field("checked", trip.checked.rawValue)
        if let at = trip.checkedAt { writer.field("checked_at", at) }
        writer.field("alarms", trip.alarms)
        writer.field("escalations", trip.escalations)
        writer.field("acknowledgements", trip.acknowledgements)
        writer.field("faults", trip.faults)
        writer.field("degraded", trip.degraded)
        if let celsius = trip.maxTemperature { writer.field("max_temperature_c", celsius) }
        writer.endObject()
        return writer.text
    }

    private func write(_ alarm: DetectionMachine.Alarm, to writer: inout JSONWriter) {
        writer.field("origin", alarm.origin.rawValue)
        writer.field("reason", alarm.reason.rawValue)
        writer.field("level", alarm.level)
        writer.field("since", alarm.since)
    }

    /// Reads what `json` wrote; nil for anything else (a damaged or foreign file is ignored, never
    /// trusted).
    public init?(json text: String) {
        guard case .object(let object)? = try? JSON.parse(text), case .number(1)? = object["version"] else {
            return nil
        }
        func number(_ key: String) -> Double? {
            if case .number(let value)? = object[key], value.isFinite { return value }
            return nil
        }
        func string(_ key: String) -> String? {
            if case .string(let value)? = object[key] { return value }
            return nil
        }
        func count(_ key: String) -> Int {
            guard let value = number(key), value >= 0, value < 1e9 else { return 0 }
            return Int(value)
        }
        func flag(_ key: String) -> Bool? {
            if case .bool(let value)? = object[key] { return value }
            return nil
        }
        switch string("state") {
        case "parked": state = .parked
        case "driving": state = .driving
        case "check_window":
            guard let offAt = number("off_at"), let deadline = number("deadline") else { return nil }
            state = .checkWindow(offAt: offAt, deadline: deadline)
        case "closed":
            guard let offAt = number("off_at") else { return nil }
            state = .closed(offAt: offAt)
        case "monitoring_ended":
            guard let offAt = number("off_at") else { return nil }
            state = .monitoringEnded(offAt: offAt)
        default: return nil
        }
        var current: DetectionMachine.Alarm?
        if let origin = string("origin").flatMap(AlarmReason.init(rawValue:)),
            let reason = string("reason").flatMap(AlarmReason.init(rawValue:)), let level = number("level"),
            let since = number("since"), level == 1 || level == 2
        {
            current = DetectionMachine.Alarm(origin: origin, reason: reason, level: Int(level), since: since)
        }
        switch (string("alarm"), current) {
        case ("quiet", _): alarm = .quiet
        case ("sounding", let current?): alarm = .sounding(current)
        case ("silenced", let current?):
            guard let recheckAt = number("recheck_at") else { return nil }
            alarm = .silenced(current, recheckAt: recheckAt)
        default: return nil
        }
        guard let ignition = flag("ignition_on"), let checked = string("checked").flatMap(CheckOutcome.init(rawValue:))
        else { return nil }
        ignitionOn = ignition
        graceEnd = number("grace_end") ?? -.infinity
        trip = DetectionMachine.TripStats()
        trip.checked = checked
        trip.checkedAt = number("checked_at")
        trip.alarms = count("alarms")
        trip.escalations = count("escalations")
        trip.acknowledgements = count("acknowledgements")
        trip.faults = count("faults")
        trip.degraded = flag("degraded") ?? false
        trip.maxTemperature = number("max_temperature_c")
    }
}

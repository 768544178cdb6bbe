import Formats

/// One line of `headcount replay`'s output: a contract event or a queued alert, at its time.
public enum ReplayEvent: Equatable, Sendable {
    case event(DetectionEvent, at: Seconds)
    case alert(Alert)

    public var t: Seconds {
        switch self {
        case .event(_, let at): at
        case .alert(let alert): alert.at
        }
    }
}

extension Trace {
    /// Replays the trace under `policy` in virtual time and returns the contract events in order.
    public func replay(policy: Policy) -> [ReplayEvent] {
        var driver = VirtualTimeDriver(machine: DetectionMachine(sensors: sensors, policy: policy))
        var events: [ReplayEvent] = []
        func collect(_ driver: inout VirtualTimeDriver) {
            for action in driver.actions {
                switch action {
                case .event(let event, let at): events.append(.event(event, at: at))
                case .queueAlert(let alert): events.append(.alert(alert))
                case .startTimer, .cancelTimer, .sound: break
                }
            }
            driver.actions.removeAll(keepingCapacity: true)
        }
        for step in steps {
            driver.feed(step.input, at: step.t)
            collect(&driver)
        }
        driver.finish(at: duration)
        collect(&driver)
        return events
    }
}

extension ReplayEvent {
    /// The event as one line of `replay --json`: `t` and `event` first, as SPEC.md's contract says.
    public func json(sensors: [SensorSpec]) -> String {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("t", t)
        switch self {
        case .event(let event, _):
            switch event {
            case .reminder:
                writer.field("event", "reminder")
            case .checked:
                writer.field("event", "checked")
            case .alarm(let level, let reason):
                writer.field("event", "alarm")
                writer.field("level", level)
                writer.field("reason", reason.rawValue)
            case .silenced:
                writer.field("event", "silenced")
            case .alarmCleared:
                writer.field("event", "alarm_cleared")
            }
        case .alert(let alert):
            writer.field("event", "alert")
            writer.field("type", alert.type.rawValue)
            writer.field("level", alert.level)
            if let reason = alert.reason { writer.field("reason", reason.rawValue) }
            writer.field("urgent", alert.urgent)
            if !alert.sensors.isEmpty {
                writer.beginArray(key: "sensors")
                for index in alert.sensors { writer.element(sensors.name(of: index)) }
                writer.endArray()
            }
            if let celsius = alert.temperatureC { writer.field("temperature_c", celsius) }
            if let ppm = alert.co2ppm { writer.field("co2_ppm", ppm) }
            if let fault = alert.fault { writer.field("fault", fault) }
            if let trip = alert.trip {
                writer.key("trip")
                writer.beginObject()
                writer.field("ignition_off_at", trip.ignitionOffAt)
                writer.field("closed_by", trip.closedBy.rawValue)
                writer.field("checked", trip.checked.rawValue)
                if let at = trip.checkedAt { writer.field("checked_at", at) }
                writer.field("alarms", trip.alarms)
                writer.field("escalations", trip.escalations)
                writer.field("acknowledgements", trip.acknowledgements)
                writer.field("faults", trip.faults)
                writer.field("degraded", trip.degraded)
                writer.field("alarm_active_at_close", trip.alarmActiveAtClose)
                if let celsius = trip.maxTemperatureC { writer.field("max_temperature_c", celsius) }
                writer.endObject()
            }
        }
        writer.endObject()
        return writer.text
    }
}

extension [SensorSpec] {
    func name(of index: Int) -> String { indices.contains(index) ? self[index].id : "#\(index)" }
}

/// Writes replay events as the timeline a person reads: each stop under its own heading, times
/// as minutes and seconds after that stop's ignition off.
public struct Timeline {
    private var tripStart: Seconds?
    private var stops = 0
    private let sensors: [SensorSpec]
    private let policy: Policy

    public init(sensors: [SensorSpec], policy: Policy) {
        self.sensors = sensors
        self.policy = policy
    }

    /// The lines for one event (a new stop adds its heading first).
    public mutating func lines(for event: ReplayEvent) -> [String] {
        var out: [String] = []
        if case .event(.reminder, let at) = event {
            stops += 1
            tripStart = at
            out.append("")
            out.append(
                "Stop \(stops): ignition off at \(Timeline.clock(at)) — reminder chimes, "
                    + "\(formatNumber(policy.checkWindow)) s to press CHECK at the rear")
        }
        let stamp = tripStart.map { "  " + Timeline.offset(event.t - $0) } ?? "  " + Timeline.clock(event.t)
        out.append("\(stamp)  \(describe(event))")
        if case .alert(let alert) = event, alert.type == .tripClosed {
            tripStart = nil
        }
        return out
    }

    private func describe(_ event: ReplayEvent) -> String {
        switch event {
        case .event(let event, _):
            switch event {
            case .reminder: return "check window opens"
            case .checked: return "CHECK pressed at the rear — van checked"
            case .alarm(let level, let reason):
                let sound = level == 1 ? "cabin buzzer" : "horn and hazard lights"
                switch (level, reason) {
                case (1, .checkMissed): return "check window ran out — alarm level 1 (check missed), \(sound)"
                case (_, .heat):
                    return "cabin at or above \(formatNumber(policy.heatC)) °C — alarm level 2 (heat, urgent), \(sound)"
                case (1, _): return "alarm level 1 (\(reason.rawValue.replacingUnderscores)), \(sound)"
                default: return "alarm level \(level) (\(reason.rawValue.replacingUnderscores)), \(sound)"
                }
            case .silenced: return "acknowledged at the rear button — alarm silenced"
            case .alarmCleared: return "alarm cleared"
            }
        case .alert(let alert):
            var text = "→ center: \(alert.type.rawValue)"
            if alert.level > 0 { text += ", level \(alert.level)" }
            if alert.urgent { text += ", URGENT" }
            if !alert.sensors.isEmpty {
                text += " [" + alert.sensors.map { sensors.name(of: $0) }.joined(separator: ", ") + "]"
            }
            if let fault = alert.fault { text += " (\(fault))" }
            if let celsius = alert.temperatureC { text += ", cabin \(formatNumber(celsius)) °C" }
            if let trip = alert.trip {
                text += " — checked: \(trip.checked.rawValue.replacingUnderscores)"
                text += ", \(trip.alarms) alarm(s), \(trip.acknowledgements) acknowledgement(s)"
                if trip.degraded { text += ", DEGRADED (\(trip.faults) fault(s))" }
                text += ", closed by \(trip.closedBy.rawValue.replacingUnderscores)"
                if trip.alarmActiveAtClose { text += ", alarm still active" }
            }
            return text
        }
    }

    /// "+02:00" for 120 s.
    static func offset(_ seconds: Seconds) -> String {
        let tenths = Int((seconds * 10).rounded())
        let whole = tenths / 10
        var text = "+" + twoDigits(whole / 60) + ":" + twoDigits(whole % 60)
        if tenths % 10 != 0 { text += ".\(tenths % 10)" } else { text += "  " }
        return text
    }

    /// "00:10:00" for 600 s of trace time.
    static func clock(_ seconds: Seconds) -> String {
        let whole = Int(seconds)
        return twoDigits(whole / 3600) + ":" + twoDigits(whole / 60 % 60) + ":" + twoDigits(whole % 60)
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
}

extension String {
    var replacingUnderscores: String { String(map { $0 == "_" ? " " : $0 }) }
}

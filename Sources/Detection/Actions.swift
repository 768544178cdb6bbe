/// Why an alarm sounds, with SPEC.md's names.
public enum AlarmReason: String, Sendable {
    case checkMissed = "check_missed"
    case presence
    case heat
}

/// The alert types of the center push protocol.
public enum AlertType: String, Sendable, CaseIterable {
    case checkMissed = "check_missed"
    case presenceAlarm = "presence_alarm"
    case alarmEscalated = "alarm_escalated"
    case alarmAcknowledged = "alarm_acknowledged"
    case alarmCleared = "alarm_cleared"
    case sensorFault = "sensor_fault"
    case sensorRecovered = "sensor_recovered"
    case tripClosed = "trip_closed"
    case heartbeat
}

/// What the cabin buzzer, the horn and the hazard lights do.
public enum SoundPattern: String, Sendable {
    /// Nothing sounds.
    case silent
    /// A short chirp at power-up: the driver hears the system is alive.
    case selfTest = "self_test"
    /// Short chimes while the check window runs.
    case reminder
    /// Level 1: the cabin buzzer, continuously.
    case level1 = "level_1"
    /// Level 2: the buzzer, the exterior horn and the hazard lights.
    case level2 = "level_2"
}

/// The timers the engine asks its driver to run. At most one of each is pending.
public enum TimerID: Hashable, Sendable {
    /// The rear button has been held since a press; when this fires it has been held `ack_hold_s`.
    case ackHold
    /// The sensor at this index has been active `confirm` seconds.
    case confirm(Int)
    /// Exit grace ends: evidence counts again.
    case exitGrace
    /// After an acknowledgement: is the evidence still there?
    case recheck
    /// The alarm rises to level 2.
    case escalation
    /// Monitoring ends and the trip closes.
    case monitorEnd
    /// The check window runs out. Fires after any input at the same instant, so a press exactly at
    /// the deadline is still in time.
    case checkWindow
}

/// How the van was checked during a trip.
public enum CheckOutcome: String, Sendable {
    /// Nobody pressed CHECK (yet).
    case notChecked = "not_checked"
    /// CHECK was pressed within the check window.
    case inWindow = "in_window"
    /// CHECK was pressed after the window ran out and the check_missed alarm sounded.
    case late
}

/// Why a trip closed.
public enum TripEnd: String, Sendable {
    case monitoringEnded = "monitoring_ended"
    case ignitionOn = "ignition_on"
}

/// What a trip_closed alert tells the center.
public struct TripSummary: Equatable, Sendable {
    public var ignitionOffAt: Seconds
    public var closedAt: Seconds
    public var closedBy: TripEnd
    public var checked: CheckOutcome
    public var checkedAt: Seconds?
    public var alarms: Int
    public var escalations: Int
    public var acknowledgements: Int
    public var faults: Int
    /// A sensor was faulty at some time during the trip.
    public var degraded: Bool
    /// An alarm was still sounding, or silenced awaiting its recheck, when the trip closed.
    public var alarmActiveAtClose: Bool
    public var maxTemperatureC: Double?
}

/// An alert for the center, as the engine queues it.
public struct Alert: Equatable, Sendable {
    public var type: AlertType
    public var at: Seconds
    /// The alarm level at the time: 0 none, 1 buzzer, 2 horn.
    public var level: Int
    public var reason: AlarmReason?
    public var urgent: Bool
    /// The sensors involved (indices into the engine's sensor table): the evidence, or the faulty one.
    public var sensors: [Int]
    public var temperatureC: Double?
    public var co2ppm: Double?
    /// For sensor_fault: what went wrong.
    public var fault: String?
    /// For trip_closed.
    public var trip: TripSummary?

    public init(
        type: AlertType, at: Seconds, level: Int, reason: AlarmReason? = nil, urgent: Bool = false,
        sensors: [Int] = [], temperatureC: Double? = nil, co2ppm: Double? = nil, fault: String? = nil,
        trip: TripSummary? = nil
    ) {
        self.type = type
        self.at = at
        self.level = level
        self.reason = reason
        self.urgent = urgent
        self.sensors = sensors
        self.temperatureC = temperatureC
        self.co2ppm = co2ppm
        self.fault = fault
        self.trip = trip
    }
}

/// The events of SPEC.md's replay contract (besides `alert`), which the daemon also logs.
public enum DetectionEvent: Equatable, Sendable {
    /// The check window opens.
    case reminder
    /// A CHECK press is accepted.
    case checked
    /// An alarm starts (level 1) or rises to level 2.
    case alarm(level: Int, reason: AlarmReason)
    /// An alarm was acknowledged at the rear button.
    case silenced
    /// An alarm ended.
    case alarmCleared
}

/// What the engine asks its edges to do. The engine itself does no I/O.
public enum Action: Equatable, Sendable {
    case startTimer(TimerID, at: Seconds)
    case cancelTimer(TimerID)
    case sound(SoundPattern)
    case event(DetectionEvent, at: Seconds)
    indirect case queueAlert(Alert)
}

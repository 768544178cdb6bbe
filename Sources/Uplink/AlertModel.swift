import Detection

/// One alert of SPEC.md's center push protocol, as it is stored in the outbox and POSTed to the center.
///
/// The JSON field names are stable (see `CenterAlert.json`): `id`, `vehicle_id`, `seq`, `type`,
/// `occurred_at`, `level`, `reason`, `urgent`, `sensors`, `temperature_c`, `co2_ppm`, `fault`, `trip`,
/// `heartbeat`. Every field is always written; the ones that do not apply are `null`.
public struct CenterAlert: Equatable, Sendable {
    /// A version 4 UUID in lowercase, also the `Idempotency-Key` header: the center drops repeats.
    public var id: String
    public var vehicleID: String
    /// Per vehicle, increasing, never reused, surviving restarts. Zero until the outbox stores the
    /// alert: `Outbox.enqueue` assigns it in the transaction that stores the alert.
    public var seq: Int
    public var type: AlertType
    public var occurredAt: WallClockTime
    /// The alarm level at the time: 0 none, 1 cabin buzzer, 2 horn and hazard lights.
    public var level: Int
    public var reason: AlarmReason?
    public var urgent: Bool
    /// The sensors involved, by their configured ids: the evidence, or the faulty sensor.
    public var sensors: [String]
    /// Cabin temperature in °C when known.
    public var temperatureC: Double?
    public var co2ppm: Double?
    /// For `sensor_fault`: what went wrong.
    public var fault: String?
    /// For `trip_closed`.
    public var trip: Trip?
    /// For `heartbeat`.
    public var heartbeat: Heartbeat?

    public init(
        id: String = AlertID.random(), vehicleID: String, seq: Int = 0, type: AlertType, occurredAt: WallClockTime,
        level: Int = 0, reason: AlarmReason? = nil, urgent: Bool = false, sensors: [String] = [],
        temperatureC: Double? = nil, co2ppm: Double? = nil, fault: String? = nil, trip: Trip? = nil,
        heartbeat: Heartbeat? = nil
    ) {
        self.id = id
        self.vehicleID = vehicleID
        self.seq = seq
        self.type = type
        self.occurredAt = occurredAt
        self.level = level
        self.reason = reason
        self.urgent = urgent
        self.sensors = sensors
        self.temperatureC = temperatureC
        self.co2ppm = co2ppm
        self.fault = fault
        self.trip = trip
        self.heartbeat = heartbeat
    }

    /// The center's view of an alert the engine queued.
    ///
    /// - Parameters:
    ///   - alert: what the engine queued; its `at` is on the engine's clock.
    ///   - sensorTable: the engine's sensor table (`DetectionMachine.sensors`), to turn indices into ids.
    ///     An index outside the table is written as `#N` rather than dropped: the alert is never lost.
    ///   - occurredAt: the wall-clock time of `alert.at`. The trip summary's times are moved by the
    ///     same offset.
    public init(
        _ alert: Alert, sensorTable: [SensorSpec], vehicleID: String, occurredAt: WallClockTime,
        id: String = AlertID.random()
    ) {
        let sensors = alert.sensors.map { index in
            sensorTable.indices.contains(index) ? sensorTable[index].id : "#\(index)"
        }
        self.init(
            id: id, vehicleID: vehicleID, type: alert.type, occurredAt: occurredAt, level: alert.level,
            reason: alert.reason, urgent: alert.urgent, sensors: sensors,
            temperatureC: alert.temperatureC.flatMap(Self.finite), co2ppm: alert.co2ppm.flatMap(Self.finite),
            fault: alert.fault,
            trip: alert.trip.map { Trip($0, engineTime: alert.at, wallTime: occurredAt) })
    }

    /// A heartbeat (every 300 s): version, uptime, sensor health; `outbox_depth` is filled in by the
    /// outbox when it stores the heartbeat.
    public static func heartbeat(
        vehicleID: String, occurredAt: WallClockTime, version: String, uptimeSeconds: Int,
        sensors: [SensorHealth], id: String = AlertID.random()
    ) -> CenterAlert {
        CenterAlert(
            id: id, vehicleID: vehicleID, type: .heartbeat, occurredAt: occurredAt,
            heartbeat: Heartbeat(version: version, uptimeSeconds: uptimeSeconds, sensors: sensors, outboxDepth: 0))
    }

    static func finite(_ value: Double) -> Double? { value.isFinite ? value : nil }

    /// The summary of a trip, in wall-clock time (`trip` of a `trip_closed` alert).
    public struct Trip: Equatable, Sendable {
        public var ignitionOffAt: WallClockTime
        public var closedAt: WallClockTime
        public var closedBy: TripEnd
        public var checked: CheckOutcome
        public var checkedAt: WallClockTime?
        public var alarms: Int
        public var escalations: Int
        public var acknowledgements: Int
        public var faults: Int
        /// A sensor was faulty at some time during the trip.
        public var degraded: Bool
        /// An alarm was still sounding, or silenced awaiting its recheck, when the trip closed.
        public var alarmActiveAtClose: Bool
        public var maxTemperatureC: Double?

        public init(
            ignitionOffAt: WallClockTime, closedAt: WallClockTime, closedBy: TripEnd, checked: CheckOutcome,
            checkedAt: WallClockTime? = nil, alarms: Int = 0, escalations: Int = 0, acknowledgements: Int = 0,
            faults: Int = 0, degraded: Bool = false, alarmActiveAtClose: Bool = false, maxTemperatureC: Double? = nil
        ) {
            self.ignitionOffAt = ignitionOffAt
            self.closedAt = closedAt
            self.closedBy = closedBy
            self.checked = checked
            self.checkedAt = checkedAt
            self.alarms = alarms
            self.escalations = escalations
            self.acknowledgements = acknowledgements
            self.faults = faults
            self.degraded = degraded
            self.alarmActiveAtClose = alarmActiveAtClose
            self.maxTemperatureC = maxTemperatureC
        }

        /// The engine's summary, its times moved from the engine clock to the wall clock by the offset
        /// between `engineTime` and `wallTime` (the same instant on both clocks).
        public init(_ summary: TripSummary, engineTime: Seconds, wallTime: WallClockTime) {
            func wall(_ time: Seconds) -> WallClockTime { wallTime.adding(seconds: time - engineTime) }
            self.init(
                ignitionOffAt: wall(summary.ignitionOffAt), closedAt: wall(summary.closedAt),
                closedBy: summary.closedBy, checked: summary.checked, checkedAt: summary.checkedAt.map(wall),
                alarms: summary.alarms, escalations: summary.escalations,
                acknowledgements: summary.acknowledgements, faults: summary.faults, degraded: summary.degraded,
                alarmActiveAtClose: summary.alarmActiveAtClose,
                maxTemperatureC: summary.maxTemperatureC.flatMap(CenterAlert.finite))
        }
    }

    /// What a heartbeat tells the center (`heartbeat` of a `heartbeat` alert).
    public struct Heartbeat: Equatable, Sendable {
        public var version: String
        public var uptimeSeconds: Int
        /// Every sensor, in the configured order, with its health.
        public var sensors: [SensorHealth]
        /// Alerts waiting in the outbox when the heartbeat was stored, not counting itself.
        public var outboxDepth: Int

        public init(version: String, uptimeSeconds: Int, sensors: [SensorHealth], outboxDepth: Int) {
            self.version = version
            self.uptimeSeconds = uptimeSeconds
            self.sensors = sensors
            self.outboxDepth = outboxDepth
        }
    }

    /// One sensor's health in a heartbeat: written as `"id": "ok"` or `"id": "faulty"`.
    public struct SensorHealth: Equatable, Sendable {
        public var id: String
        public var faulty: Bool

        public init(id: String, faulty: Bool) {
            self.id = id
            self.faulty = faulty
        }
    }
}

extension AlertType {
    /// The alarm types: never evicted from the outbox, delivered before everything else.
    public var isAlarm: Bool {
        switch self {
        case .checkMissed, .presenceAlarm, .alarmEscalated, .alarmAcknowledged, .alarmCleared: true
        case .sensorFault, .sensorRecovered, .tripClosed, .heartbeat: false
        }
    }
}

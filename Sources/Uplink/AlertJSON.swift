import Detection
import Formats

/// Why JSON text is not a `CenterAlert`: the field (a dotted path such as `trip.closed_at`) and what
/// is wrong with it, or the JSON syntax error.
public struct AlertDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The field, dotted from the top (`heartbeat.sensors.cabin`); empty for the document itself.
    public var field: String
    public var message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}

extension CenterAlert {
    /// The alert as compact JSON in the protocol's field order; every field present, `null` where it
    /// does not apply.
    public var json: String {
        var writer = JSONWriter()
        write(to: &writer)
        return writer.text
    }

    /// Appends the alert object to `writer`.
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("id", id)
        writer.field("vehicle_id", vehicleID)
        writer.field("seq", seq)
        writer.field("type", type.rawValue)
        writer.field("occurred_at", occurredAt.rfc3339)
        writer.field("level", level)
        if let reason { writer.field("reason", reason.rawValue) } else { writer.fieldNull("reason") }
        writer.field("urgent", urgent)
        writer.beginArray(key: "sensors")
        for sensor in sensors { writer.element(sensor) }
        writer.endArray()
        Self.field("temperature_c", temperatureC, &writer)
        Self.field("co2_ppm", co2ppm, &writer)
        if let fault { writer.field("fault", fault) } else { writer.fieldNull("fault") }
        if let trip {
            writer.beginObject(key: "trip")
            writer.field("ignition_off_at", trip.ignitionOffAt.rfc3339)
            writer.field("closed_at", trip.closedAt.rfc3339)
            writer.field("closed_by", trip.closedBy.rawValue)
            writer.field("checked", trip.checked.rawValue)
            if let checkedAt = trip.checkedAt {
                writer.field("checked_at", checkedAt.rfc3339)
            } else {
                writer.fieldNull("checked_at")
            }
            writer.field("alarms", trip.alarms)
            writer.field("escalations", trip.escalations)
            writer.field("acknowledgements", trip.acknowledgements)
            writer.field("faults", trip.faults)
            writer.field("degraded", trip.degraded)
            writer.field("alarm_active_at_close", trip.alarmActiveAtClose)
            Self.field("max_temperature_c", trip.maxTemperatureC, &writer)
            writer.endObject()
        } else {
            writer.fieldNull("trip")
        }
        if let heartbeat {
            writer.beginObject(key: "heartbeat")
            writer.field("version", heartbeat.version)
            writer.field("uptime_s", heartbeat.uptimeSeconds)
            writer.beginObject(key: "sensors")
            for sensor in heartbeat.sensors { writer.field(sensor.id, sensor.faulty ? "faulty" : "ok") }
            writer.endObject()
            writer.field("outbox_depth", heartbeat.outboxDepth)
            writer.endObject()
        } else {
            writer.fieldNull("heartbeat")
        }
        writer.endObject()
    }

    private static func field(_ key: String, _ value: Double?, _ writer: inout JSONWriter) {
        if let value { writer.field(key, value) } else { writer.fieldNull(key) }
    }

    /// Reads an alert back (the receiver's side, and tests). Unknown fields are ignored; a missing
    /// optional field reads as `null`; a missing required field or a value of the wrong kind is an error.
    public init(json text: String) throws(AlertDecodingError) {
        let value: JSONValue
        do {
            value = try JSON.parse(text)
        } catch {
            throw AlertDecodingError(field: "", message: "invalid JSON: \(error.description)")
        }
        try self.init(jsonValue: value)
    }

    /// Reads an alert from a parsed JSON value.
    public init(jsonValue value: JSONValue) throws(AlertDecodingError) {
        let object = try Fields(value, path: "")
        let id = try object.string("id")
        guard AlertID.isValid(id) else {
            throw AlertDecodingError(field: "id", message: "expected a lowercase UUID, found \"\(id)\"")
        }
        let sensorValues = try object.array("sensors")
        var sensors: [String] = []
        for (index, sensor) in sensorValues.enumerated() {
            guard let name = sensor.stringValue else {
                throw AlertDecodingError(field: "sensors[\(index)]", message: "expected a string")
            }
            sensors.append(name)
        }
        self.init(
            id: id, vehicleID: try object.string("vehicle_id"), seq: try object.int("seq"),
            type: try object.enumeration("type", AlertType.self), occurredAt: try object.time("occurred_at"),
            level: try object.int("level"), reason: try object.optionalEnumeration("reason", AlarmReason.self),
            urgent: try object.bool("urgent"), sensors: sensors,
            temperatureC: try object.optionalNumber("temperature_c"), co2ppm: try object.optionalNumber("co2_ppm"),
            fault: try object.optionalString("fault"))
        if let trip = try object.optionalObject("trip") {
            self.trip = Trip(
                ignitionOffAt: try trip.time("ignition_off_at"), closedAt: try trip.time("closed_at"),
                closedBy: try trip.enumeration("closed_by", TripEnd.self),
                checked: try trip.enumeration("checked", CheckOutcome.self),
                checkedAt: try trip.optionalTime("checked_at"), alarms: try trip.int("alarms"),
                escalations: try trip.int("escalations"), acknowledgements: try trip.int("acknowledgements"),
                faults: try trip.int("faults"), degraded: try trip.bool("degraded"),
                alarmActiveAtClose: try trip.bool("alarm_active_at_close"),
                maxTemperatureC: try trip.optionalNumber("max_temperature_c"))
        }
        if let heartbeat = try object.optionalObject("heartbeat") {
            guard let sensorObject = heartbeat.object["sensors"]?.objectValue else {
                throw AlertDecodingError(field: heartbeat.path("sensors"), message: "expected an object")
            }
            var health: [SensorHealth] = []
            for entry in sensorObject.entries {
                switch entry.value.stringValue {
                case "ok": health.append(SensorHealth(id: entry.key, faulty: false))
                case "faulty": health.append(SensorHealth(id: entry.key, faulty: true))
                default:
                    throw AlertDecodingError(
                        field: heartbeat.path("sensors.\(entry.key)"), message: "expected \"ok\" or \"faulty\"")
                }
            }
            self.heartbeat = Heartbeat(
                version: try heartbeat.string("version"), uptimeSeconds: try heartbeat.int("uptime_s"),
                sensors: health, outboxDepth: try heartbeat.int("outbox_depth"))
        }
    }
}

/// Typed member access with the field's path in every error.
private struct Fields {
    let object: JSONObject
    let prefix: String

    init(_ value: JSONValue, path: String) throws(AlertDecodingError) {
        guard let object = value.objectValue else {
            throw AlertDecodingError(field: path, message: "expected an object, found \(value.typeName)")
        }
        self.object = object
        self.prefix = path
    }

    func path(_ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }

    func required(_ key: String) throws(AlertDecodingError) -> JSONValue {
        guard let value = object[key] else { throw AlertDecodingError(field: path(key), message: "missing") }
        return value
    }

    /// The value, or nil when missing or `null`.
    func optional(_ key: String) -> JSONValue? {
        guard let value = object[key], !value.isNull else { return nil }
        return value
    }

    func mismatch(_ key: String, _ expected: String, _ value: JSONValue) -> AlertDecodingError {
        AlertDecodingError(field: path(key), message: "expected \(expected), found \(value.typeName)")
    }

    func string(_ key: String) throws(AlertDecodingError) -> String {
        let value = try required(key)
        guard let text = value.stringValue else { throw mismatch(key, "a string", value) }
        return text
    }

    func optionalString(_ key: String) throws(AlertDecodingError) -> String? {
        guard let value = optional(key) else { return nil }
        guard let text = value.stringValue else { throw mismatch(key, "a string or null", value) }
        return text
    }

    func int(_ key: String) throws(AlertDecodingError) -> Int {
        let value = try required(key)
        guard let number = value.intValue else { throw mismatch(key, "an integer", value) }
        return number
    }

    func bool(_ key: String) throws(AlertDecodingError) -> Bool {
        let value = try required(key)
        guard let flag = value.boolValue else { throw mismatch(key, "true or false", value) }
        return flag
    }

    func optionalNumber(_ key: String) throws(AlertDecodingError) -> Double? {
        guard let value = optional(key) else { return nil }
        guard let number = value.doubleValue else { throw mismatch(key, "a number or null", value) }
        return number
    }

    func array(_ key: String) throws(AlertDecodingError) -> [JSONValue] {
        let value = try required(key)
        guard let items = value.arrayValue else { throw mismatch(key, "an array", value) }
        return items
    }

    func optionalObject(_ key: String) throws(AlertDecodingError) -> Fields? {
        guard let value = optional(key) else { return nil }
        return try Fields(value, path: path(key))
    }

    func time(_ key: String) throws(AlertDecodingError) -> WallClockTime {
        let text = try string(key)
        guard let time = WallClockTime(rfc3339: text) else {
            throw AlertDecodingError(field: path(key), message: "expected an RFC 3339 time, found \"\(text)\"")
        }
        return time
    }

    func optionalTime(_ key: String) throws(AlertDecodingError) -> WallClockTime? {
        guard optional(key) != nil else { return nil }
        return try time(key)
    }

    func enumeration<Value: RawRepresentable<String>>(
        _ key: String, _ type: Value.Type
    ) throws(AlertDecodingError) -> Value {
        let text = try string(key)
        guard let value = Value(rawValue: text) else {
            throw AlertDecodingError(field: path(key), message: "unknown value \"\(text)\"")
        }
        return value
    }

    func optionalEnumeration<Value: RawRepresentable<String>>(
        _ key: String, _ type: Value.Type
    ) throws(AlertDecodingError) -> Value? {
        guard optional(key) != nil else { return nil }
        return try enumeration(key, type)
    }
}

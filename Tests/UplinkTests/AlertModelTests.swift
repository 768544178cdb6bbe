import Detection
import Formats
import Testing
import Uplink

/// A seeded generator, so ids in these tests are reproducible.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Alert model: the center push protocol's JSON")
struct AlertModelTests {
    let table = DetectionMachine.sensorTable([
        SensorSpec(id: "seat.1", kind: .seat), SensorSpec(id: "radar.rear", kind: .presence),
        SensorSpec(id: "cabin", kind: .temperature),
    ])

    func index(_ id: String) throws -> Int { try #require(table.firstIndex { $0.id == id }) }

    @Test("RFC 3339 in UTC with milliseconds, padded, from gmtime_r")
    func rfc3339Formatting() {
        #expect(WallClockTime(millisecondsSinceEpoch: 0).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(WallClockTime(millisecondsSinceEpoch: 1_795_694_400_123).rfc3339 == "2026-11-26T12:00:00.123Z")
        #expect(WallClockTime(millisecondsSinceEpoch: 1_709_164_799_005).rfc3339 == "2024-02-28T23:59:59.005Z")
        #expect(WallClockTime(millisecondsSinceEpoch: 1_709_251_199_999).rfc3339 == "2024-02-29T23:59:59.999Z")
        #expect(WallClockTime(secondsSinceEpoch: 1_795_694_400.5).rfc3339 == "2026-11-26T12:00:00.500Z")
        // Out of range is clamped, never trapped on.
        #expect(WallClockTime(millisecondsSinceEpoch: -5).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(WallClockTime(secondsSinceEpoch: .infinity).rfc3339 == "9999-12-31T23:59:59.999Z")
        #expect(WallClockTime(secondsSinceEpoch: .nan).rfc3339 == "1970-01-01T00:00:00.000Z")
        #expect(WallClockTime(millisecondsSinceEpoch: .max).rfc3339 == "9999-12-31T23:59:59.999Z")
    }

    @Test("RFC 3339 text reads back; offsets, fractions and impossible dates")
    func rfc3339Parsing() throws {
        let noon = WallClockTime(millisecondsSinceEpoch: 1_795_694_400_123)
        #expect(WallClockTime(rfc3339: "2026-11-26T12:00:00.123Z") == noon)
        #expect(WallClockTime(rfc3339: "2026-11-26t12:00:00.123z") == noon)
        #expect(WallClockTime(rfc3339: "2026-11-26T19:00:00.123+07:00") == noon)
        #expect(WallClockTime(rfc3339: "2026-11-26T12:00:00.123456789Z") == noon)
        #expect(WallClockTime(rfc3339: "2026-11-26T12:00:00.1Z")?.millisecondsSinceEpoch == 1_795_694_400_100)
        #expect(WallClockTime(rfc3339: "2026-11-26T12:00:00Z")?.millisecondsSinceEpoch == 1_795_694_400_000)
        for bad in [
            "", "2026-11-26", "2026-11-26T12:00:00", "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
            "2026-11-26T24:00:00Z", "2026-11-26T12:00:00.Z", "2026-11-26T12:00:00+7:00", "2026-11-26 12:00:00Z",
            "2026-11-26T12:00:00Zjunk", "٢٠٢٦-11-26T12:00:00Z",
        ] {
            #expect(WallClockTime(rfc3339: bad) == nil, "accepted \(bad)")
        }
        var random = SplitMix(state: 7)
        for _ in 0..<1_000 {
            let time = WallClockTime(millisecondsSinceEpoch: Int64.random(in: 0...4_102_444_800_000, using: &random))
            #expect(WallClockTime(rfc3339: time.rfc3339) == time)
        }
    }

    @Test("ids are lowercase version 4 UUIDs and do not repeat")
    func ids() {
        var seen = Set<String>()
        for _ in 0..<1_000 {
            let id = AlertID.random()
            #expect(AlertID.isValid(id))
            let characters = Array(id)
            #expect(characters[14] == "4")
            #expect("89ab".contains(characters[19]))
            seen.insert(id)
        }
        #expect(seen.count == 1_000)
        var first = SplitMix(state: 1)
        var second = SplitMix(state: 1)
        #expect(AlertID.random(using: &first) == AlertID.random(using: &second))
        #expect(!AlertID.isValid("0F8FAD5B-D9CB-469F-A165-70867728950E"))
        #expect(!AlertID.isValid("0f8fad5b-d9cb-469f-a165-70867728950"))
    }

    @Test("the JSON has the protocol's field names, in a stable order, null where a field does not apply")
    func fieldNames() throws {
        let alert = CenterAlert(
            id: "0f8fad5b-d9cb-469f-a165-70867728950e", vehicleID: "van-17", seq: 42, type: .presenceAlarm,
            occurredAt: WallClockTime(millisecondsSinceEpoch: 1_795_694_400_123), level: 1, reason: .presence,
            urgent: false, sensors: ["seat.1", "radar.rear"], temperatureC: 31.5)
        #expect(
            alert.json
                == #"{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","vehicle_id":"van-17","seq":42,"#
                + #""type":"presence_alarm","occurred_at":"2026-11-26T12:00:00.123Z","level":1,"reason":"presence","#
                + #""urgent":false,"sensors":["seat.1","radar.rear"],"temperature_c":31.5,"co2_ppm":null,"#
                + #""fault":null,"trip":null,"heartbeat":null}"#)
        let parsed = try JSON.parse(alert.json)
        #expect(
            parsed.objectValue?.keys == [
                "id", "vehicle_id", "seq", "type", "occurred_at", "level", "reason", "urgent", "sensors",
                "temperature_c", "co2_ppm", "fault", "trip", "heartbeat",
            ])
    }

    @Test("every alert type's raw value is the protocol's name")
    func typeNames() {
        #expect(
            AlertType.allCases.map(\.rawValue) == [
                "check_missed", "presence_alarm", "alarm_escalated", "alarm_acknowledged", "alarm_cleared",
                "sensor_fault", "sensor_recovered", "trip_closed", "heartbeat",
            ])
        #expect(AlertType.allCases.filter(\.isAlarm).count == 5)
    }

    @Test("from the engine's alert: sensor ids, wall time, trip times moved by the same offset")
    func fromEngineAlert() throws {
        // A real trip through the engine: ignition off at 600 s, the window runs out (check_missed at
        // 720 s), CHECK pressed late at 790 s, monitoring ends at 4,200 s.
        var driver = VirtualTimeDriver(machine: DetectionMachine(sensors: table, policy: Policy()))
        let ignition = try index("ignition")
        let button = try index("button")
        driver.feed(.reading(sensor: ignition, .flag(true)), at: 0)
        driver.feed(.reading(sensor: ignition, .flag(false)), at: 600)
        driver.feed(.reading(sensor: button, .flag(true)), at: 790)
        driver.feed(.reading(sensor: button, .flag(false)), at: 790.3)
        driver.finish(at: 5_000)
        let alerts = driver.actions.compactMap { action -> Alert? in
            if case .queueAlert(let alert) = action { return alert }
            return nil
        }
        let engine = try #require(alerts.first { $0.type == .tripClosed })
        let wall = WallClockTime(millisecondsSinceEpoch: 1_795_694_400_000)
        let closed = CenterAlert(engine, sensorTable: table, vehicleID: "van-17", occurredAt: wall)
        let trip = try #require(closed.trip)
        #expect(engine.at == 4_200)
        #expect(trip.closedAt == wall)
        #expect(trip.ignitionOffAt.rfc3339 == "2026-11-26T11:00:00.000Z")
        #expect(trip.checkedAt?.rfc3339 == "2026-11-26T11:03:10.000Z")
        #expect(trip.checked == CheckOutcome.late && trip.alarms == 1 && !trip.degraded)
        #expect(try CenterAlert(json: closed.json) == closed)

        let alarm = Alert(
            type: .presenceAlarm, at: 700.25, level: 2, reason: .heat, urgent: true,
            sensors: [try index("seat.1"), try index("radar.rear"), 99], temperatureC: 41, co2ppm: .nan)
        let converted = CenterAlert(alarm, sensorTable: table, vehicleID: "van-17", occurredAt: wall)
        #expect(converted.sensors == ["seat.1", "radar.rear", "#99"])
        #expect(converted.level == 2 && converted.reason == .heat && converted.urgent)
        #expect(converted.temperatureC == 41)
        #expect(converted.co2ppm == nil)
        #expect(converted.seq == 0)
        #expect(AlertID.isValid(converted.id))
        #expect(converted.occurredAt == wall)
    }

    @Test("heartbeat: version, uptime, sensor health as an object, outbox depth")
    func heartbeatShape() throws {
        var heartbeat = CenterAlert.heartbeat(
            vehicleID: "van-17", occurredAt: WallClockTime(millisecondsSinceEpoch: 0), version: "0.1.0",
            uptimeSeconds: 3_600,
            sensors: [
                CenterAlert.SensorHealth(id: "seat.1", faulty: false),
                CenterAlert.SensorHealth(id: "radar.rear", faulty: true),
            ])
        heartbeat.heartbeat?.outboxDepth = 3
        let body = try #require(JSON.parse(heartbeat.json)["heartbeat"])
        #expect(
            JSON.serialize(body)
                == #"{"version":"0.1.0","uptime_s":3600,"sensors":{"seat.1":"ok","radar.rear":"faulty"},"#
                + #""outbox_depth":3}"#)
        #expect(try CenterAlert(json: heartbeat.json) == heartbeat)
    }

    @Test("every type round-trips through JSON, strings with quotes and control characters included")
    func roundTrip() throws {
        let wall = WallClockTime(millisecondsSinceEpoch: 1_795_694_400_001)
        var alerts: [CenterAlert] = AlertType.allCases.enumerated().map { offset, type in
            CenterAlert(
                vehicleID: "van \"17\"\n", seq: offset + 1, type: type, occurredAt: wall, level: offset % 3,
                reason: offset % 2 == 0 ? .checkMissed : nil, urgent: offset % 2 == 1, sensors: ["seat.\(offset)"],
                temperatureC: offset % 2 == 0 ? -3.25 : nil, co2ppm: offset % 3 == 0 ? 1_250 : nil,
                fault: type == .sensorFault ? "crc \\ error\t" : nil)
        }
        alerts.append(
            CenterAlert(
                vehicleID: "ฉะเชิงเทรา-7", seq: 9_007_199_254_740_991, type: .tripClosed, occurredAt: wall,
                trip: CenterAlert.Trip(
                    ignitionOffAt: wall.adding(seconds: -60), closedAt: wall, closedBy: .ignitionOn,
                    checked: .notChecked)))
        for alert in alerts {
            #expect(try CenterAlert(json: alert.json) == alert)
        }
    }

    @Test("decoding names the field that is wrong")
    func decodingErrors() throws {
        let good = CenterAlert(
            id: "0f8fad5b-d9cb-469f-a165-70867728950e", vehicleID: "van-17", seq: 1, type: .checkMissed,
            occurredAt: WallClockTime(millisecondsSinceEpoch: 0))
        func failure(_ edit: (inout JSONObject) -> Void) throws -> AlertDecodingError? {
            var object = try #require(try JSON.parse(good.json).objectValue)
            edit(&object)
            do throws(AlertDecodingError) {
                _ = try CenterAlert(json: JSON.serialize(.object(object)))
                return nil
            } catch {
                return error
            }
        }
        #expect(try failure { $0["seq"] = nil }?.field == "seq")
        #expect(try failure { $0["seq"] = .number(1.5) }?.field == "seq")
        #expect(try failure { $0["type"] = .string("panic") }?.field == "type")
        #expect(try failure { $0["occurred_at"] = .string("yesterday") }?.field == "occurred_at")
        #expect(try failure { $0["id"] = .string("not-a-uuid") }?.field == "id")
        #expect(try failure { $0["sensors"] = .array([.number(1)]) }?.field == "sensors[0]")
        #expect(try failure { $0["trip"] = .object(["closed_at": .string("x")]) }?.field == "trip.ignition_off_at")
        #expect(
            try failure {
                $0["heartbeat"] = .object([
                    "version": .string("1"), "uptime_s": .number(1), "sensors": .object(["seat.1": .string("meh")]),
                    "outbox_depth": .number(0),
                ])
            }?.field == "heartbeat.sensors.seat.1")
        // Optional fields may be absent; unknown fields are ignored.
        #expect(
            try failure {
                $0["temperature_c"] = nil; $0["trip"] = nil; $0["extra"] = .bool(true)
            } == nil)
        #expect(throws: AlertDecodingError.self) { try CenterAlert(json: "{\"id\": ") }
    }
}

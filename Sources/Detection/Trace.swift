import Formats

/// A trace in SPEC.md's format, decoded: the declared sensors, the header's policy settings and
/// the changes of signals in time order.
public struct Trace: Sendable {
    /// The declared sensors followed by the built-ins: a step's `input` indexes this table.
    public var sensors: [SensorSpec]
    /// Policy settings the header gives, by SPEC.md name, in header order.
    public var policySettings: [(name: String, value: Double)]
    public var steps: [TraceStep]
    /// The time of the `end` line, or nil when the trace has none.
    public var end: Seconds?

    public init(
        sensors: [SensorSpec], policySettings: [(name: String, value: Double)] = [], steps: [TraceStep],
        end: Seconds?
    ) {
        self.sensors = DetectionMachine.sensorTable(sensors)
        self.policySettings = policySettings
        self.steps = steps
        self.end = end
    }

    /// When the trip runs until: the `end` line, or else the last change.
    public var duration: Seconds { end ?? steps.last?.t ?? 0 }

    /// The defaults with the header's settings applied.
    public var policy: Policy {
        var policy = Policy()
        for setting in policySettings {
            // Checked when the trace was read.
            try? policy.set(setting.name, to: setting.value)
        }
        return policy
    }
}

/// One line of a trace after the header.
public struct TraceStep: Equatable, Sendable {
    public var t: Seconds
    public var input: Input
    /// 1-based line in the trace file.
    public var line: Int

    public init(t: Seconds, input: Input, line: Int = 0) {
        self.t = t
        self.input = input
        self.line = line
    }
}

/// A trace that cannot be replayed, with where and why.
public struct TraceError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    /// The JSON field at fault, when there is one.
    public var field: String?
    public var message: String

    public var description: String {
        if let field { return "\(file):\(line): \(field): \(message)" }
        return "\(file):\(line): \(message)"
    }
}

extension Trace {
    /// Reads a trace from its text. `file` names it in errors.
    public static func parse(_ text: String, file: String = "trace") throws(TraceError) -> Trace {
        var reader = TraceReader(file: file)
        var copy = text
        let result = copy.withUTF8 { bytes in
            Result { () throws(TraceError) in try reader.read(bytes) }
        }
        return try result.get()
    }
}

private struct TraceReader {
    let file: String
    var sensors: [SensorSpec] = []
    var indexByID: [String: Int] = [:]
    var policySettings: [(name: String, value: Double)] = []
    var steps: [TraceStep] = []
    var end: Seconds?
    var lastT: Seconds = 0
    var sawHeader = false

    init(file: String) { self.file = file }

    func error(_ line: Int, _ field: String?, _ message: String) -> TraceError {
        TraceError(file: file, line: line, field: field, message: message)
    }

    mutating func read(_ bytes: UnsafeBufferPointer<UInt8>) throws(TraceError) -> Trace {
        var lineNumber = 0
        var start = 0
        let count = bytes.count
        while start < count || (start == count && lineNumber == 0 && count > 0) {
            var stop = start
            while stop < count && bytes[stop] != UInt8(ascii: "\n") { stop += 1 }
            lineNumber += 1
            var lineEnd = stop
            if lineEnd > start && bytes[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            let line = UnsafeBufferPointer(rebasing: bytes[start..<lineEnd])
            start = stop + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let value: JSONValue
            do {
                value = try JSON.parse(bytes: line)
            } catch {
                throw self.error(lineNumber, nil, "not valid JSON: \(error.message) (column \(error.column))")
            }
            guard case .object(let object) = value else {
                throw self.error(lineNumber, nil, "expected a JSON object")
            }
            if !sawHeader {
                try readHeader(object, line: lineNumber)
                sawHeader = true
            } else {
                try readStep(object, line: lineNumber)
            }
        }
        guard sawHeader else {
            throw error(1, nil, "empty trace: the first line must declare the sensors ({\"headcount_trace\": 1, ...})")
        }
        return Trace(sensors: sensors, policySettings: policySettings, steps: steps, end: end)
    }

    mutating func readHeader(_ header: JSONObject, line: Int) throws(TraceError) {
        guard let version = header["headcount_trace"] else {
            throw error(
                line, "headcount_trace",
                "missing: the first line must be the header {\"headcount_trace\": 1, \"sensors\": [...]}")
        }
        guard case .number(1) = version else {
            throw error(line, "headcount_trace", "unsupported trace version \(describe(version)) (this build reads 1)")
        }
        var declared: [SensorSpec] = []
        switch header["sensors"] {
        case nil, .null:
            break
        case .array(let items)?:
            for (position, item) in items.enumerated() {
                let field = "sensors[\(position)]"
                guard case .object(let sensor) = item else {
                    throw error(line, field, "expected an object {\"id\": ..., \"kind\": ...}")
                }
                guard case .string(let id)? = sensor["id"], !id.isEmpty else {
                    throw error(line, field + ".id", "missing or not a non-empty string")
                }
                guard case .string(let kindName)? = sensor["kind"] else {
                    throw error(line, field + ".kind", "missing or not a string")
                }
                guard let kind = SensorKind(rawValue: kindName) else {
                    let kinds = SensorKind.allCases.map(\.rawValue).joined(separator: ", ")
                    throw error(line, field + ".kind", "unknown kind \"\(kindName)\" (one of: \(kinds))")
                }
                if declared.contains(where: { $0.id == id }) {
                    throw error(line, field + ".id", "sensor \"\(id)\" is declared twice")
                }
                if let builtIn = SensorSpec.builtIns.first(where: { $0.id == id }), builtIn.kind != kind {
                    throw error(
                        line, field + ".kind",
                        "\"\(id)\" is a built-in \(builtIn.kind.rawValue) signal and cannot be a \(kindName)")
                }
                declared.append(SensorSpec(id: id, kind: kind))
            }
        case .some(let other):
            throw error(line, "sensors", "expected an array, found \(describe(other))")
        }
        sensors = DetectionMachine.sensorTable(declared)
        for (index, sensor) in sensors.enumerated() { indexByID[sensor.id] = index }

        switch header["policy"] {
        case nil, .null:
            break
        case .object(let settings)?:
            var policy = Policy()
            for (name, value) in settings.entries {
                let field = "policy.\(name)"
                guard case .number(let number) = value else {
                    throw error(line, field, "expected a number, found \(describe(value))")
                }
                do {
                    try policy.set(name, to: number)
                } catch {
                    throw self.error(line, field, error.description)
                }
                policySettings.append((name, number))
            }
        case .some(let other):
            throw error(line, "policy", "expected an object, found \(describe(other))")
        }
    }

    mutating func readStep(_ object: JSONObject, line: Int) throws(TraceError) {
        if end != nil {
            throw error(line, nil, "nothing may follow the \"end\" line")
        }
        guard let tValue = object["t"] else { throw error(line, "t", "missing") }
        guard case .number(let t) = tValue else {
            throw error(line, "t", "expected seconds as a number, found \(describe(tValue))")
        }
        guard t >= 0 else { throw error(line, "t", "time \(formatNumber(t)) is before the trace start") }
        guard t >= lastT else {
            throw error(line, "t", "time goes back: \(formatNumber(t)) after \(formatNumber(lastT))")
        }
        lastT = t
        if let endValue = object["end"] {
            guard case .bool(true) = endValue else {
                throw error(line, "end", "expected true, found \(describe(endValue))")
            }
            if object["signal"] != nil {
                throw error(line, "signal", "an \"end\" line names no signal")
            }
            end = t
            return
        }
        guard let signalValue = object["signal"] else {
            throw error(line, "signal", "missing (each line after the header changes one signal, or is the end line)")
        }
        guard case .string(let signal) = signalValue else {
            throw error(line, "signal", "expected a signal name, found \(describe(signalValue))")
        }
        guard let index = indexByID[signal] else {
            let known = sensors.map(\.id).joined(separator: ", ")
            throw error(line, "signal", "\"\(signal)\" is not declared (signals: \(known))")
        }
        let kind = sensors[index].kind
        switch (object["value"], object["fault"]) {
        case (.some, .some):
            throw error(line, "fault", "a line carries either \"value\" or \"fault\", not both")
        case (nil, nil):
            throw error(line, "value", "missing (or \"fault\")")
        case (nil, .some(let fault)):
            switch fault {
            case .null:
                steps.append(TraceStep(t: t, input: .fault(sensor: index, reason: nil), line: line))
            case .string(let reason) where !reason.isEmpty:
                steps.append(TraceStep(t: t, input: .fault(sensor: index, reason: reason), line: line))
            default:
                throw error(line, "fault", "expected a reason string or null, found \(describe(fault))")
            }
        case (.some(let value), nil):
            let reading: Reading
            switch (kind, value) {
            case (.seat, .bool(let on)), (.presence, .bool(let on)), (.motion, .bool(let on)),
                (.ignition, .bool(let on)), (.door, .bool(let on)), (.button, .bool(let on)):
                reading = .flag(on)
            case (.seat, .number(let kg)):
                reading = .number(kg)
            case (.temperature, .number(let number)), (.co2, .number(let number)):
                reading = .number(number)
            default:
                let expected: String
                switch kind {
                case .seat: expected = "true/false or a weight in kg"
                case .temperature: expected = "a temperature in °C"
                case .co2: expected = "a CO2 level in ppm"
                default: expected = "true or false"
                }
                throw error(
                    line, "value",
                    "\(signal) is a \(kind.rawValue) signal: expected \(expected), found \(describe(value))"
                )
            }
            steps.append(TraceStep(t: t, input: .reading(sensor: index, reading), line: line))
        }
    }
}

/// A JSON value as an error message names it.
func describe(_ value: JSONValue) -> String {
    switch value {
    case .null: "null"
    case .bool(let flag): String(flag)
    case .number(let number): formatNumber(number)
    case .string(let text): "\"\(text.count > 40 ? String(text.prefix(40)) + "…" : text)\""
    case .array: "an array"
    case .object: "an object"
    }
}

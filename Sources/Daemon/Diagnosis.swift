import Detection
import Formats
import GPIO
import Hardware

#if canImport(Glibc)
    import Glibc
#endif

/// `headcount diagnose`: every check a technician runs on a van, each with its result, what was
/// seen, and for anything not right, what to look at.
public struct DiagnosisCheck: Equatable, Sendable {
    public enum Result: String, Sendable, Comparable {
        case pass = "PASS"
        case warn = "WARN"
        case fail = "FAIL"

        private var rank: Int {
            switch self {
            case .pass: 0
            case .warn: 1
            case .fail: 2
            }
        }

        public static func < (lhs: Result, rhs: Result) -> Bool { lhs.rank < rhs.rank }
    }

    /// What is checked: config, service, gpio, output, modbus, center, certificate, outbox, clock.
    public var area: String
    /// Which one: a GPIO role, a Modbus device, "dns"...
    public var name: String
    public var result: Result
    /// What was seen, e.g. "GPIO17 reads off (active low)".
    public var detail: String
    /// What to look at, for a WARN or FAIL.
    public var hint: String?
    /// How long the check took, where that is a figure worth seeing (round trips).
    public var milliseconds: Int?

    public init(
        _ area: String, _ name: String, _ result: Result, _ detail: String, hint: String? = nil,
        milliseconds: Int? = nil
    ) {
        self.area = area
        self.name = name
        self.result = result
        self.detail = detail
        self.hint = hint
        self.milliseconds = milliseconds
    }

    public var label: String { name.isEmpty ? area : "\(area) \(name)" }
}

/// The whole report: the checks in the order they ran, and how they add up.
public struct DiagnosisReport: Sendable {
    public var vehicleID: String
    public var board: String
    public var startedAt: String
    public var checks: [DiagnosisCheck] = []
    public var seconds: Double = 0

    public init(vehicleID: String, board: String, startedAt: String) {
        self.vehicleID = vehicleID
        self.board = board
        self.startedAt = startedAt
    }

    public func count(_ result: DiagnosisCheck.Result) -> Int { checks.filter { $0.result == result }.count }

    /// 0 when nothing failed (warnings included), 1 when something did.
    public var exitStatus: Int32 { count(.fail) > 0 ? 1 : 0 }

    /// The PASS/WARN/FAIL table, a hint under each failure, and the totals.
    public var table: String {
        let width = max(24, (checks.map(\.label.count).max() ?? 0) + 2)
        var lines = ["headcount diagnose: vehicle \(vehicleID), board \(board), \(startedAt)", ""]
        lines.append("  " + "RESULT".padded(8) + "CHECK".padded(width) + "DETAIL")
        for check in checks {
            var detail = check.detail
            if let milliseconds = check.milliseconds { detail += " (\(milliseconds) ms)" }
            lines.append("  " + check.result.rawValue.padded(8) + check.label.padded(width) + detail)
            if let hint = check.hint, check.result != .pass {
                lines.append("  " + "".padded(8) + "".padded(width) + "hint: " + hint)
            }
        }
        lines.append("")
        let seconds = (seconds * 100).rounded() / 100
        lines.append(
            "\(count(.pass)) PASS, \(count(.warn)) WARN, \(count(.fail)) FAIL in \(seconds) s"
                + (count(.fail) > 0
                    ? ": the van is NOT ready" : count(.warn) > 0 ? ": ready, see the warnings" : ": ready"))
        return lines.joined(separator: "\n")
    }

    /// One JSON object: the van, every check, the totals.
    public var json: String {
        let checks = checks.map { check -> JSONValue in
            .object([
                "area": .string(check.area), "check": .string(check.name),
                "result": .string(check.result.rawValue.lowercased()), "detail": .string(check.detail),
                "hint": check.hint.map(JSONValue.string) ?? .null,
                "ms": check.milliseconds.map { .number(Double($0)) } ?? .null,
            ])
        }
        let summary: JSONValue = .object([
            "pass": .number(Double(count(.pass))), "warn": .number(Double(count(.warn))),
            "fail": .number(Double(count(.fail))), "seconds": .number((seconds * 1000).rounded() / 1000),
            "exit_status": .number(Double(exitStatus)),
        ])
        return JSON.serialize(
            .object([
                "vehicle_id": .string(vehicleID), "board": .string(board), "started_at": .string(startedAt),
                "checks": .array(checks), "summary": summary,
            ]))
    }
}

extension String {
    fileprivate func padded(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

/// The van's GPIO lines as the daemon, `watch`, `record` and `diagnose` request them: the three
/// built-in inputs, every sensor wired to a line (its profile line, active low, bias, debounce),
/// and the profile's outputs, inactive.
public struct GPIOWiring: Sendable {
    public struct Input: Sendable {
        public var sensorID: String
        public var kind: SensorKind
        public var spec: GPIOInputSpec
    }

    public var inputs: [Input] = []
    public var outputs: [GPIOOutputSpec] = []

    /// Throws the profile's missing role (check-config reports it first; a hand-made config may not).
    public init(_ config: VanConfig) throws(DaemonError) {
        var wired: [(role: String, sensor: String, kind: SensorKind)] = SensorSpec.builtIns.map {
            ($0.id, $0.id, $0.kind)
        }
        for sensor in config.sensors {
            if case .gpio(let role) = sensor.source { wired.append((role, sensor.spec.id, sensor.spec.kind)) }
        }
        for (role, sensor, kind) in wired {
            guard let line = config.profile.input(role) else {
                throw DaemonError.config("profile \(config.profile.board) has no input \(role)")
            }
            inputs.append(
                Input(
                    sensorID: sensor, kind: kind,
                    spec: GPIOInputSpec(
                        role: role, line: line.line, activeLow: line.activeLow, bias: Self.bias(line.bias),
                        debounceMilliseconds: UInt32(line.debounceMs))))
        }
        outputs = config.profile.outputs.map {
            GPIOOutputSpec(role: $0.role, line: $0.line, activeLow: $0.activeLow, initial: false)
        }
    }

    static func bias(_ bias: LineBias) -> GPIOBias {
        switch bias {
        case .asIs: .asIs
        case .disabled: .disabled
        case .pullUp: .pullUp
        case .pullDown: .pullDown
        }
    }
}

extension Diagnosis {
    /// Opens every line (a line that cannot be opened is reported and left out, so the others are
    /// still checked) and reads the inputs' levels. The backend keeps the lines for `actuate`.
    public static func gpio(
        wiring: GPIOWiring, chipLabel: String, open: () throws(GPIOError) -> any GPIOBackend
    ) -> (checks: [DiagnosisCheck], backend: (any GPIOBackend)?, outputs: [GPIOOutputSpec]) {
        let backend: any GPIOBackend
        do {
            backend = try open()
        } catch {
            return ([chipCheck(error, label: chipLabel)], nil, [])
        }
        var checks = [DiagnosisCheck("gpio", "chip", .pass, "\"\(chipLabel)\" opened")]
        var inputs = wiring.inputs
        var outputs = wiring.outputs
        // One failed line at a time is dropped from the request, at most once per line.
        for _ in 0...(inputs.count + outputs.count) {
            do {
                try backend.request(inputs: inputs.map(\.spec), outputs: outputs)
                break
            } catch {
                guard let role = lineRole(of: error),
                    inputs.contains(where: { $0.spec.role == role }) || outputs.contains(where: { $0.role == role })
                else {
                    checks.append(
                        DiagnosisCheck("gpio", "lines", .fail, error.description, hint: "see the profile's [inputs]"))
                    backend.close()
                    return (checks, nil, [])
                }
                checks.append(lineCheck(error, role: role))
                inputs.removeAll { $0.spec.role == role }
                outputs.removeAll { $0.role == role }
            }
        }
        do {
            let levels = try backend.readInputs()
            for (input, level) in zip(inputs, levels) { checks.append(levelCheck(input, level: level)) }
        } catch {
            checks.append(
                DiagnosisCheck(
                    "gpio", "read", .fail, error.description, hint: "the chip answered the request but not the read"))
        }
        for output in outputs {
            checks.append(
                DiagnosisCheck(
                    "output", output.role, .pass,
                    "\(output.line)\(output.activeLow ? " (active low)" : "") opened, held off"))
        }
        return (checks, backend, outputs)
    }

    private static func lineRole(of error: GPIOError) -> String? {
        switch error {
        case .noSuchLine(_, _, let role), .lineBusy(_, _, let role), .requestFailed(_, _, let role, _): role
        default: nil
        }
    }

    private static func chipCheck(_ error: GPIOError, label: String) -> DiagnosisCheck {
        let hint: String
        switch error {
        case .noSuchChip(_, let found):
            hint =
                "no GPIO chip is labelled \"\(label)\" (found: \(found.isEmpty ? "none" : found.joined(separator: ", "))): "
                + "check [gpio] chip_label in the profile against `gpiodetect`, and that this is the right profile for the board"
        case .chipUnavailable:
            hint =
                "the chip exists but cannot be opened: run as root or as the headcount user (udev rule 60-headcount.rules)"
        default:
            hint = "check the profile's [gpio] section"
        }
        return DiagnosisCheck("gpio", "chip", .fail, error.description, hint: hint)
    }

    private static func lineCheck(_ error: GPIOError, role: String) -> DiagnosisCheck {
        let hint: String
        switch error {
        case .noSuchLine(let line, _, _):
            hint = "the chip has no line named \"\(line)\": check the profile's line names against `gpioinfo`"
        case .lineBusy:
            hint =
                "another program holds the line: is the headcount service running? (systemctl stop headcount) "
                + "or is the pin claimed by a device-tree overlay?"
        default:
            hint = "the kernel refused the request: check the line's bias and that the pin is not used by an overlay"
        }
        let area = HardwareProfile.outputRoles.contains(role) ? "output" : "gpio"
        return DiagnosisCheck(area, role, .fail, error.description, hint: hint)
    }

    private static func levelCheck(_ input: GPIOWiring.Input, level: Bool) -> DiagnosisCheck {
        let spec = input.spec
        let polarity = spec.activeLow ? ", active low" : ""
        let name = spec.role == input.sensorID ? spec.role : "\(input.sensorID) (\(spec.role))"
        let state: String
        switch spec.role {
        case "ignition": state = level ? "on" : "off"
        case "door": state = level ? "open" : "shut"
        case "button": state = level ? "pressed" : "released"
        default: state = level ? "active" : "inactive"
        }
        let detail = "\(spec.line) reads \(state)\(polarity)"
        if spec.role == "button" && level {
            return DiagnosisCheck(
                "gpio", name, .warn, detail,
                hint:
                    "the CHECK button reads pressed: if nobody is pressing it, it is stuck or wired the other way "
                    + "(check active_low in the profile)")
        }
        return DiagnosisCheck("gpio", name, .pass, detail)
    }

    /// Sounds each output briefly, `warningSeconds` after saying on `announce` what is about to sound.
    public static func actuate(
        backend: any GPIOBackend, outputs: [GPIOOutputSpec], warningSeconds: Double = 2,
        announce: (String) -> Void
    ) -> [DiagnosisCheck] {
        var checks: [DiagnosisCheck] = []
        let patterns: [String: (what: String, pulses: [(on: UInt32, off: UInt32)])] = [
            "buzzer": ("cabin buzzer: 3 beeps of 0.2 s", [(200, 200), (200, 200), (200, 0)]),
            "horn": ("horn: one chirp of 0.15 s", [(150, 0)]),
            "hazard": ("hazard lights: on for 1 s", [(1000, 0)]),
            "status_led": ("status LED: 2 blinks", [(300, 300), (300, 0)]),
        ]
        for (index, output) in outputs.enumerated() {
            guard let pattern = patterns[output.role] else { continue }
            announce("about to sound the \(pattern.what) (\(output.line)) in \(Diagnosis.format(warningSeconds)) s")
            usleep(UInt32(warningSeconds * 1_000_000))
            var failure: GPIOError?
            for pulse in pattern.pulses {
                do {
                    try backend.setOutput(index, to: true)
                    usleep(pulse.on * 1000)
                    try backend.setOutput(index, to: false)
                    usleep(pulse.off * 1000)
                } catch {
                    failure = error
                    break
                }
            }
            try? backend.setOutput(index, to: false)
            if let failure {
                checks.append(
                    DiagnosisCheck(
                        "output", "\(output.role) actuated", .fail, failure.description,
                        hint: "the line could not be driven: check the profile's output line"))
            } else {
                checks.append(
                    DiagnosisCheck(
                        "output", "\(output.role) actuated", .pass,
                        "\(pattern.what) driven on \(output.line): confirm you heard or saw it"))
            }
        }
        return checks
    }
}

/// The checks of `headcount diagnose`, grouped by what they look at.
public enum Diagnosis {}

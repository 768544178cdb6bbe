import ArgumentParser
import Detection
import Hardware

/// `headcount check-config`: the van's config checked against its profile and device models.
struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check a van config, its hardware profile and device models.",
        discussion: """
            Prints what the van has and where each sensor is wired; or every error of the config, \
            its profile and its device models, one a line as FILE:LINE: FIELD: message with what is \
            allowed, then how many (exit status 2). Profiles and device models are looked up in \
            $HEADCOUNT_PROFILES, /etc/headcount/profiles, /usr/share/headcount/profiles and ./HardwareProfiles.
            """
    )

    @Argument(help: "The config file, e.g. /etc/headcount/headcount.toml.")
    var file: String

    @Option(name: .customLong("profiles"), help: "Look for profiles and device models here first.")
    var profiles: String?

    func run() throws {
        let directories = (profiles.map { [$0] } ?? []) + VanConfig.Catalog.standardDirectories
        var problems = ConfigProblems()
        if let van = VanConfig.load(path: file, directories: directories, problems: &problems), problems.isEmpty {
            print(summary(van))
            return
        }
        Standard.error(problems.report(mainFile: file) + "\n")
        throw ExitCode(2)
    }

    func summary(_ van: VanConfig) -> String {
        var lines = ["\(file): OK"]
        lines.append("  vehicle \(van.vehicleId), board \(van.profile.board) (GPIO chip \"\(van.profile.chipLabel)\")")
        for sensor in van.sensors {
            let source: String
            switch sensor.source {
            case .gpio(let role):
                let line = van.profile.input(role)
                source = "GPIO \(line?.line ?? role)\(line?.activeLow == true ? ", active low" : "")"
            case .modbus(let device, let point):
                source = "Modbus \(device).\(point)"
            }
            let kind = sensor.spec.kind.rawValue
            let padding = String(repeating: " ", count: max(0, 11 - kind.count))
            lines.append("  \(kind)\(padding) \(sensor.spec.id): \(source)")
        }
        for bus in van.buses {
            switch bus.transport {
            case .rtu(let device, let baud, let parity, let dataBits, let stopBits, let rs485):
                lines.append(
                    "  bus \(bus.name): RTU \(device) \(baud) \(dataBits)\(parity.prefix(1).uppercased())\(stopBits)\(rs485 ? ", RS-485 mode" : "")"
                )
            case .tcp(let host, let port):
                lines.append("  bus \(bus.name): TCP \(host):\(port)")
            }
            for device in bus.devices {
                lines.append(
                    "    \(device.name): \(device.model.model), unit \(device.unit), every \(device.periodMs) ms, timeout \(device.timeoutMs) ms"
                )
            }
        }
        let changed = Policy.settings.filter { van.policy.value(of: $0) != Policy().value(of: $0) }
        lines.append(
            "  policy: "
                + (changed.isEmpty
                    ? "defaults"
                    : changed.map { "\($0.name) = \(formatNumber(van.policy.value(of: $0)))" }.joined(separator: ", ")))
        if let center = van.center {
            lines.append("  center: \(center.url)")
        } else {
            lines.append("  center: none configured (alerts stay in the outbox)")
        }
        return lines.joined(separator: "\n")
    }
}

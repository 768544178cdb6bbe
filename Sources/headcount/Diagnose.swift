import ArgumentParser
import Daemon
import Dispatch
import GPIO
import Hardware
import Synchronization
import Uplink

/// `headcount diagnose`: the technician's check of a van, in at most a minute.
struct Diagnose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a van: config, GPIO lines, Modbus devices, the center link, certificates, outbox, clock.",
        discussion: """
            Prints a PASS/WARN/FAIL table with a hint under each problem (or one JSON object with \
            --json). Outputs are driven only with --actuate, after saying on standard error what is \
            about to sound. While `headcount run` runs with the same config, its GPIO lines and \
            serial ports are left alone (stop the service for those checks). Exit status: 0 nothing failed (warnings \
            allowed), 1 something failed, 2 the config cannot be used. Takes at most 60 s, even \
            when every device and the center are dead.
            """
    )

    @OptionGroup var files: VanConfigOptions

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    @Flag(help: "Sound the buzzer, chirp the horn, flash the hazard lights and the status LED, briefly.")
    var actuate = false

    func run() throws {
        let started = Diagnosis.now()
        let van = try files.load()
        let config = files.config
        var report = DiagnosisReport(
            vehicleID: van.vehicleId, board: van.profile.board, startedAt: WallClockTime.now().rfc3339)
        let devices = van.buses.map(\.devices.count).reduce(0, +)
        report.checks.append(
            DiagnosisCheck(
                "config", "", .pass,
                "\(config): \(van.sensors.count) sensors, \(devices) Modbus device(s) on \(van.buses.count) bus(es)"))

        // The hardware, unless the daemon holds it.
        var gpio: (any GPIOBackend)?
        var outputs: [GPIOOutputSpec] = []
        let daemon = Diagnosis.runningDaemon(configPath: config)
        if let daemon {
            report.checks.append(
                DiagnosisCheck(
                    "service", "", .warn,
                    "headcount run is running (pid \(daemon)): GPIO lines and Modbus buses not checked",
                    hint:
                        "to check the wiring too: systemctl stop headcount; headcount diagnose; systemctl start headcount"
                ))
        } else {
            let wiring: GPIOWiring
            do {
                wiring = try GPIOWiring(van)
            } catch {
                Standard.error("headcount: \(config): \(error)\n")
                throw ExitCode(2)
            }
            let simulated = van.profile.board == "simulator"
            let chip = van.profile.chipLabel
            let opened = Diagnosis.gpio(wiring: wiring, chipLabel: chip) { () throws(GPIOError) -> any GPIOBackend in
                simulated ? SimulatedGPIO() : try LibgpiodBackend(chipLabel: chip)
            }
            report.checks += opened.checks
            gpio = opened.backend
            outputs = opened.outputs
        }

        // Modbus and the center side by side, while outputs are actuated.
        let background = Mutex<(modbus: [DiagnosisCheck], center: [DiagnosisCheck], centerTime: WallClockTime?)>(
            ([], [], nil))
        let group = DispatchGroup()
        if daemon == nil, !van.buses.isEmpty {
            let buses = van.buses
            group.enter()
            DispatchQueue.global().async {
                let checks = Diagnosis.modbus(buses: buses, budgetSeconds: 20)
                background.withLock { $0.modbus = checks }
                group.leave()
            }
        }
        if let center = van.center {
            let vehicle = van.vehicleId
            group.enter()
            DispatchQueue.global().async {
                let (checks, time) = Diagnosis.center(center, vehicleID: vehicle, version: Headcount.version)
                background.withLock {
                    $0.center = checks
                    $0.centerTime = time
                }
                group.leave()
            }
        }
        var actuated: [DiagnosisCheck] = []
        if let gpio {
            if actuate {
                actuated = Diagnosis.actuate(backend: gpio, outputs: outputs) { message in
                    Standard.error("headcount diagnose: \(message)\n")
                }
            }
            gpio.close()
        }
        // 20 s for Modbus, 6 + 6 + 10 s for the center: well inside the minute.
        if group.wait(timeout: .now() + 40) == .timedOut {
            report.checks.append(
                DiagnosisCheck(
                    "diagnose", "", .fail, "a check did not finish within 40 s",
                    hint: "report this: every check is meant to be bounded"))
        }
        let done = background.withLock { $0 }
        report.checks += actuated
        report.checks += done.modbus
        if let center = van.center {
            report.checks += done.center
            report.checks += Diagnosis.certificates(center)
        } else {
            report.checks.append(
                DiagnosisCheck(
                    "center", "", .warn, "no [center] in \(config): alerts stay in the van's outbox",
                    hint: "add [center] with url, client_cert, client_key and ca_file or pinned_key"))
        }
        report.checks += Diagnosis.outbox(stateDirectory: van.stateDirectory)
        report.checks += Diagnosis.clock(centerTime: done.centerTime)
        report.seconds = Diagnosis.now() - started

        print(json ? report.json : report.table)
        if report.exitStatus != 0 { throw ExitCode(report.exitStatus) }
    }
}

import ArgumentParser
import Daemon
import Detection
import Dispatch
import Foundation
import GPIO
import Hardware
import Uplink

/// `headcount run`: the daemon the systemd unit starts.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: watch the van, sound the alarms, tell the center.",
        discussion: """
            Opens the GPIO lines and Modbus buses of the config's profile, resumes the detection state \
            kept in the state directory, and runs until SIGTERM. Logs go to standard error with journald \
            priority prefixes. A config that cannot be used exits with status 2; hardware that cannot be \
            opened with status 1 (systemd restarts it).
            """
    )

    @Option(help: "The van's config.")
    var config: String = "/etc/headcount/headcount.toml"

    @Option(help: "Look for profiles and device models here first.")
    var profiles: String?

    @Option(help: .hidden)
    var speed: Double = 1

    @Option(
        help: ArgumentHelp(
            "Simulator profile only: play this trace's GPIO signals into the simulated lines, then stop.",
            visibility: .hidden))
    var simulate: String?

    func run() throws {
        let log = JournalLogger()
        let van: VanConfig
        do {
            van = try VanConfig.load(
                path: config, directories: (profiles.map { [$0] } ?? []) + VanConfig.Catalog.standardDirectories)
        } catch {
            FileHandle.standardError.write(Data("headcount: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        guard speed >= 1, speed <= 1000 else {
            FileHandle.standardError.write(Data("headcount: --speed must be between 1 and 1000\n".utf8))
            throw ExitCode(2)
        }
        let simulated = van.profile.board == "simulator"
        let gpio: any GPIOBackend
        do {
            gpio = simulated ? SimulatedGPIO() : try LibgpiodBackend(chipLabel: van.profile.chipLabel)
        } catch {
            log.write(.error, "cannot open the GPIO chip: \(error.description)")
            throw ExitCode(1)
        }
        var center: (any CenterLink)?
        if let link = van.center {
            do {
                center = try HTTPSClient(
                    HTTPSConfiguration(
                        url: link.url, clientCertificatePath: link.clientCertificate, clientKeyPath: link.clientKey,
                        caFilePath: link.caFile, pinnedPublicKey: link.pinnedKey, softwareVersion: Headcount.version))
            } catch {
                FileHandle.standardError.write(Data("headcount: \(config): [center]: \(error.description)\n".utf8))
                throw ExitCode(error.isConfigurationError ? 2 : 1)
            }
        } else {
            log.write(.warning, "no [center] in \(config): alerts are kept in the outbox")
        }
        var options = Van.Options()
        options.speed = speed
        options.version = Headcount.version
        let running: Van
        do {
            running = try Van(config: van, gpio: gpio, center: center, options: options, log: log.write)
        } catch {
            log.write(.error, "cannot start: \(error)")
            throw ExitCode(1)
        }
        running.start()
        log.write(
            .notice,
            "headcount \(Headcount.version) running: vehicle \(van.vehicleId), board \(van.profile.board), \(van.sensors.count) sensors"
        )

        let stop = DispatchSemaphore(value: 0)
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        if let simulate, let simulator = gpio as? SimulatedGPIO {
            try play(simulate, into: simulator, van: van, log: log, then: stop)
        }
        stop.wait()
        log.write(.notice, "stopping")
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await running.stop()
            done.signal()
        }
        _ = done.wait(timeout: .now() + 5)
        sources.forEach { $0.cancel() }
    }

    /// Schedules the trace's GPIO signals into the simulator at the engine's speed, and signals
    /// `stop` once the trace's end has passed and the outbox is empty (or 10 s after).
    private func play(
        _ path: String, into simulator: SimulatedGPIO, van: VanConfig, log: JournalLogger, then stop: DispatchSemaphore
    ) throws {
        let trace: Trace
        do {
            trace = try Trace.parse(try readInput(path), file: path)
        } catch {
            FileHandle.standardError.write(Data("headcount: \(error)\n".utf8))
            throw ExitCode(2)
        }
        var roleOf: [String: String] = ["ignition": "ignition", "door": "door", "button": "button"]
        for sensor in van.sensors { if case .gpio(let role) = sensor.source { roleOf[sensor.spec.id] = role } }
        var skipped: Set<String> = []
        for step in trace.steps {
            guard case .reading(let index, let reading) = step.input else { continue }
            let id = trace.sensors[index].id
            guard let role = roleOf[id], let line = van.profile.input(role) else {
                skipped.insert(id)
                continue
            }
            let on: Bool
            switch reading {
            case .flag(let flag): on = flag
            case .number(let value): on = value >= van.policy.childMinWeightKg
            }
            let offset = UInt64(step.t / speed * 1e9)
            try? simulator.scheduleInput(role, high: line.activeLow ? !on : on, at: offset)
        }
        if !skipped.isEmpty {
            log.write(.info, "simulate: not GPIO lines here, left out: \(skipped.sorted().joined(separator: ", "))")
        }
        let end = trace.duration / speed
        DispatchQueue.global().asyncAfter(deadline: .now() + end + 1) { stop.signal() }
    }
}

/// Journal lines on standard error: `<N>` priority prefix (sd-daemon), one write per line.
final class JournalLogger: Sendable {
    func write(_ level: LogLevel, _ message: String) {
        let line = "<\(level.rawValue)>" + message.replacingOccurrences(of: "\n", with: "\\n") + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

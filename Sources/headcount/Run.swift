import ArgumentParser
import Daemon
import Detection
import Dispatch
import GPIO
import Hardware
import Synchronization
import Uplink
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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

    @OptionGroup var files: VanConfigOptions

    @OptionGroup var simulation: SimulationOptions

    func run() throws {
        let notifier = SystemdNotifier.fromProcessEnvironment()
        let van = try files.load()
        try simulation.checkSpeed()
        let config = files.config
        let directories = files.directories
        let speed = simulation.speed
        let trace = try simulation.simulate.map(simulationTrace)
        let simulated = van.profile.board == "simulator"
        let gpio: any GPIOBackend
        do {
            gpio = simulated ? SimulatedGPIO() : try LibgpiodBackend(chipLabel: van.profile.chipLabel)
        } catch {
            Log.write(.error, "cannot open the GPIO chip: \(error.description)")
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
                Standard.error("headcount: \(config): [center]: \(error.description)\n")
                throw ExitCode(error.isConfigurationError ? 2 : 1)
            }
        } else {
            Log.write(.warning, "no [center] in \(config): alerts are kept in the outbox")
        }
        var options = Van.Options()
        options.speed = speed
        options.version = Headcount.version
        let running: Van
        do {
            running = try Van(config: van, gpio: gpio, center: center, options: options, log: Log.write)
        } catch {
            Log.write(.error, "cannot start: \(error)")
            throw ExitCode(1)
        }
        // Signals are caught before anything starts, so a SIGTERM right after READY=1 is never lost.
        let stop = DispatchSemaphore(value: 0)
        let restart = Atomic<Bool>(false)
        for number in [SIGTERM, SIGINT, SIGHUP] { signal(number, SIG_IGN) }
        var sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        // SIGHUP: the config is checked; a good one is applied by a restart (the detection state is
        // kept on disk, so the trip goes on), a bad one is reported and the running config kept.
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        let configPath = config
        hangup.setEventHandler {
            do {
                _ = try VanConfig.load(path: configPath, directories: directories)
                Log.write(.notice, "SIGHUP: \(configPath) is valid; restarting to apply it")
                restart.store(true, ordering: .relaxed)
                stop.signal()
            } catch {
                Log.write(.error, "SIGHUP: \(error); keeping the running config")
            }
        }
        hangup.resume()
        sources.append(hangup)

        running.start()
        let summary = "vehicle \(van.vehicleId), board \(van.profile.board), \(van.sensors.count) sensors"
        Log.write(.notice, "headcount \(Headcount.version) running: \(summary)")
        notifier.ready(status: "\(Van.describe(running.engine.machine)); \(summary)")

        // Every second: STATUS= when it changes, and WATCHDOG=1 only while both the input loop and
        // the engine loop have turned since the last look.
        let watch = DispatchSource.makeTimerSource(queue: .global())
        let interval = min(
            notifier.watchdogPingInterval.map {
                Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18
            } ?? 1, 1)
        let last = Mutex<(inputs: UInt64, engine: UInt64, status: String)>((0, 0, ""))
        watch.schedule(deadline: .now() + interval, repeating: interval)
        watch.setEventHandler {
            let progress = running.progress
            var status = Van.describe(running.engine.machine) + "; outbox \(running.outbox.depth)"
            if let problem = running.delivery?.lastProblem { status += "; center: \(problem)" }
            let (moved, changed) = last.withLock { last -> (Bool, Bool) in
                defer { last = (progress.inputs, progress.engine, status) }
                return (progress.inputs != last.inputs && progress.engine != last.engine, status != last.status)
            }
            if moved { notifier.watchdog() }
            if changed { notifier.status(status) }
        }
        watch.resume()

        // The trace is played at the engine's speed; the daemon stops one second after its end
        // (what is still queued stays in the outbox).
        if let trace, let simulator = gpio as? SimulatedGPIO {
            let end = play(trace, into: simulator, van: van, speed: speed)
            DispatchQueue.global().asyncAfter(deadline: .now() + end + 1) { stop.signal() }
        }
        stop.wait()
        watch.cancel()
        notifier.stopping(status: "stopping")
        Log.write(.notice, "stopping")
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await running.stop()
            done.signal()
        }
        if done.wait(timeout: .now() + 3) == .timedOut { Log.write(.warning, "stop took longer than 3 s") }
        sources.forEach { $0.cancel() }
        if restart.load(ordering: .relaxed) {
            // systemd (Restart=always) starts it again with the new config.
            throw ExitCode(0)
        }
    }
}

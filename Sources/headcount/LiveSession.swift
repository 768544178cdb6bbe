import ArgumentParser
import Daemon
import Detection
import Dispatch
import GPIO
import Hardware
import Synchronization
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads the trace of a hidden `--simulate` option; a bad one is reported with its file, line and
/// field (exit status 2) before any hardware is opened.
func simulationTrace(_ path: String) throws -> Trace {
    do {
        return try Trace.parse(try readInput(path), file: path)
    } catch let error as InputError {
        Standard.error("headcount: \(error.description)\n")
        throw ExitCode(2)
    } catch {
        Standard.error("headcount: \(error)\n")
        throw ExitCode(2)
    }
}

/// Plays `trace`'s GPIO signals into the simulator at `speed` (see `SimulatedGPIO.schedule`) and
/// returns when its end falls, in real seconds after the simulator's start.
func play(_ trace: Trace, into simulator: SimulatedGPIO, van: VanConfig, speed: Double) -> Double {
    let skipped = simulator.schedule(trace, wiredAs: van, speed: speed)
    if !skipped.isEmpty {
        Log.write(.info, "simulate: not GPIO lines here, left out: \(skipped.joined(separator: ", "))")
    }
    return trace.duration / speed
}

/// What `watch` and `record` share: the van's config, its lines opened as a technician's tool (the
/// simulator's for the simulator board, playing a trace when asked), its inputs as signals, and a
/// stop that SIGINT, SIGTERM or the tool itself asks for.
final class LiveSession: Sendable {
    let van: VanConfig
    let gpio: any GPIOBackend
    let inputs: LiveInputs
    /// CLOCK_MONOTONIC nanoseconds the session's times count from: the simulator's start, so a
    /// played trace's times come out as they were written.
    let origin: UInt64
    /// Trace seconds per real second: 1, or the simulator's `--speed`.
    let speed: Double
    /// When the simulated trace ends, in real seconds after `origin`; nil without `--simulate`.
    let simulationEnd: Double?
    private let stopper = Stopper()
    /// Set once here, cancelled once by `close()`; dispatch sources are safe to use from any thread.
    private nonisolated(unsafe) let signalSources: [any DispatchSourceSignal]

    /// Loads the config (exit status 2 when it cannot be used), opens the lines as `consumer`
    /// (exit status 1 when they cannot be had, with the reason) and starts the simulation.
    init(
        files: VanConfigOptions, simulation: SimulationOptions, consumer: String,
        log: @escaping @Sendable (LogLevel, String) -> Void
    ) throws {
        van = try files.load()
        try simulation.checkSpeed()
        let config = files.config
        let speed = simulation.speed
        let simulate = simulation.simulate
        let simulated = van.profile.board == "simulator"
        if simulate != nil && !simulated {
            throw refuse(
                "--simulate plays into the simulator board only (\(config) has \(van.profile.board))", status: 2)
        }
        let trace = try simulate.map(simulationTrace)
        self.speed = speed
        origin = GPIOClock.monotonicNanoseconds()
        do {
            gpio =
                simulated
                ? SimulatedGPIO(startNanoseconds: origin)
                : try LibgpiodBackend(chipLabel: van.profile.chipLabel, consumer: consumer)
        } catch {
            throw refuse("cannot open the GPIO chip: \(error.description)", status: 1)
        }
        do {
            inputs = try LiveInputs(config: van, gpio: gpio, log: log)
        } catch {
            switch error {
            case .config: throw refuse(error.description, status: 2)
            case .gpio: throw refuse(error.description, status: 1)
            }
        }
        if let trace, let simulator = gpio as? SimulatedGPIO {
            simulationEnd = play(trace, into: simulator, van: van, speed: speed)
        } else {
            simulationEnd = nil
        }
        // Caught from here on, so that Ctrl-C always ends the tool through `stop()`.
        for number in [SIGINT, SIGTERM] { signal(number, SIG_IGN) }
        let stopper = self.stopper
        signalSources = [SIGINT, SIGTERM].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stopper.stop() }
            source.resume()
            return source
        }
    }

    /// Asks the session to end: `wait` returns true from now on.
    func stop() { stopper.stop() }

    /// Wakes a `wait` in progress (something changed).
    func wake() { stopper.wakeup.signal() }

    /// Waits until something wakes the session or `timeout` seconds pass; true once it is stopping.
    func wait(timeout: Double) -> Bool {
        if stopper.stopping.load(ordering: .acquiring) { return true }
        _ = stopper.wakeup.wait(timeout: .now() + max(0, timeout))
        return stopper.stopping.load(ordering: .acquiring)
    }

    /// Stops the session `seconds` (real) after `origin`.
    func stop(atSecondsAfterOrigin seconds: Double) {
        let elapsed = Double(GPIOClock.monotonicNanoseconds() &- origin) / 1e9
        let stopper = self.stopper
        DispatchQueue.global().asyncAfter(deadline: .now() + max(0, seconds - elapsed)) { stopper.stop() }
    }

    /// Trace seconds since `origin` (real seconds × `speed`).
    func seconds(at nanoseconds: UInt64) -> Double {
        nanoseconds > origin ? Double(nanoseconds - origin) / 1e9 * speed : 0
    }

    /// Stops reading (within the Modbus buses' timeouts) and releases the lines; the outputs were
    /// never driven.
    func close() {
        let done = DispatchSemaphore(value: 0)
        let inputs = self.inputs
        Task.detached {
            await inputs.stop()
            done.signal()
        }
        if done.wait(timeout: .now() + 3) == .timedOut {
            Log.write(.warning, "stopping the inputs took longer than 3 s")
        }
        gpio.close()
        for source in signalSources { source.cancel() }
    }
}

/// The session's end: asked for by a signal, a timer or the tool, and waited for by the tool.
private final class Stopper: Sendable {
    let stopping = Atomic<Bool>(false)
    let wakeup = DispatchSemaphore(value: 0)

    func stop() {
        stopping.store(true, ordering: .releasing)
        wakeup.signal()
    }
}

/// Says why on standard error; the exit status to throw.
private func refuse(_ message: String, status: Int32) -> ExitCode {
    Standard.error("headcount: \(message)\n")
    return ExitCode(status)
}

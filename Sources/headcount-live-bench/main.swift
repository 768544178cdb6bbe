import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// headcount-live-bench: measured figures for SPEC.md's live-path, footprint and startup targets.
//   1. Input edge -> buzzer output through the real runtime: `Van` in-process on the simulated GPIO
//      backend (speed 1, no center, state folder in a temporary folder), from the simulator's edge
//      timestamp to the buzzer's output-change timestamp.
//   2. Confirmed alarm -> alert committed in the outbox, from the same edges.
//   3. `headcount run` (release) from spawn to READY=1 on a NOTIFY_SOCKET of the bench's.
//   4. The idle daemon on the simulator profile (16 seats, the cabin thermometer on Modbus at 4 Hz
//      against the pymodbus peer on a socat pty): RSS and CPU.
//
//     headcount-live-bench [--root REPO] [--headcount PATH] [--dir PARENT] [--seconds S]
//                          [--cycles N] [--alarms N] [--speed X] [--runs N] [--parts 1234]
//
// Every process it starts is stopped at the end, on an error, or on SIGINT/SIGTERM/SIGHUP.

struct Arguments {
    var root: URL
    var headcount: String?
    var parent = "/var/tmp"
    var seconds = 60.0
    var cycles = 200
    var alarms = 20
    var speed = 1.0
    var runs = 10
    var parts: Set<Character> = ["1", "2", "3", "4"]

    static let usage = """
        usage: headcount-live-bench [--root REPO] [--headcount PATH] [--dir PARENT] [--seconds S]
                                    [--cycles N] [--alarms N] [--speed X] [--runs N] [--parts 1234]
          --dir      where the state folders go (default /var/tmp: a disk, as /var/lib/headcount is)
          --seconds  the footprint's idle window (default 60)
          --cycles   fast ignition off/on cycles, 2 edges each (default 200)
          --alarms   alarm cycles, 4 edges and one presence alarm each (default 20; each lasts the
                     10 s exit grace at speed 1)
          --speed    engine seconds per real second for part 1-2 (default 1; only timers scale)
          --runs     startups per config (default 10)
          --parts    which of the 4 parts to run (default 1234; 1 and 2 run together)
        """

    init() throws {
        let built = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let current = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        root =
            FileManager.default.fileExists(atPath: current.appendingPathComponent("Config/simulator.toml").path)
            ? current : built
        var arguments = CommandLine.arguments.dropFirst()
        func value(_ name: String) throws -> String {
            guard let value = arguments.popFirst() else { throw BenchError(description: "\(name) needs a value") }
            return value
        }
        func number(_ name: String) throws -> Double {
            guard let number = Double(try value(name)), number > 0 else {
                throw BenchError(description: "\(name) needs a positive number")
            }
            return number
        }
        while let argument = arguments.popFirst() {
            switch argument {
            case "--root": root = URL(fileURLWithPath: try value(argument))
            case "--headcount": headcount = try value(argument)
            case "--dir": parent = try value(argument)
            case "--seconds": seconds = try number(argument)
            case "--cycles": cycles = Int(try number(argument))
            case "--alarms": alarms = Int(try number(argument))
            case "--speed": speed = try number(argument)
            case "--runs": runs = Int(try number(argument))
            case "--parts": parts = Set(try value(argument))
            case "-h", "--help":
                print(Arguments.usage)
                exit(0)
            default: throw BenchError(description: "unknown argument \(argument)\n\(Arguments.usage)")
            }
        }
    }

    var headcountPath: String {
        let path = headcount ?? root.appendingPathComponent(".build/release/headcount").path
        return path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}

func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Progress on stderr, so that stdout holds only the figures.
func note(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

func liveParts(_ arguments: Arguments) async throws {
    let options = LiveOptions(
        root: arguments.root, parent: arguments.parent, cycles: arguments.cycles, alarms: arguments.alarms,
        speed: arguments.speed)
    let bench = try LiveBench(options: options)
    say(
        "1. Input edge -> buzzer output: Van in-process on SimulatedGPIO (speed \(String(format: "%g", options.speed)), "
            + "no center, 16 seats + radar + PIR, exit_grace_s \(Int(options.exitGrace)))")
    say("   from the simulator's edge timestamp to the buzzer's output-change timestamp (both CLOCK_MONOTONIC,")
    say("   taken inside SimulatedGPIO); \(options.cycles) ignition off/on cycles, then \(options.alarms) alarm cycles")
    try await bench.run(progress: note)
    let samples = bench.samples
    for kind in EdgeKind.allCases {
        let figures = Figures(samples.filter { $0.kind == kind }.map(\.buzzer))
        guard figures.count > 0 else { continue }
        say("   \(padded(kind.label, 45)) \(padded(figures.summary, 50)) [\(kind.writesFirst) first]")
    }
    let all = Figures(samples.map(\.buzzer))
    let alarm = Figures(samples.filter { $0.kind == .pirPulseRaisesAlarm }.map(\.buzzer))
    say("   \(padded("every edge", 45)) \(all.summary)")
    for problem in bench.lost { say("   lost sample: \(problem)") }
    for problem in bench.problems.prefix(5) { say("   daemon error: \(problem)") }
    let commits = try bench.isolatedCommits()
    let plumbing = try await measurePlumbing(cycles: 200)
    let orders = try await measureWriteOrders(cycles: 100, parent: arguments.parent)
    say(
        "   the commit alone, outbox beside the van's (synchronous=FULL), 20 ms apart: state only p50 "
            + "\(ms(commits.state.p50)), p99 \(ms(commits.state.p99)); alert + state p50 \(ms(commits.alertAndState.p50)), "
            + "p99 \(ms(commits.alertAndState.p99)); back to back: p50 \(ms(commits.backToBack.p50)), "
            + "p99 \(ms(commits.backToBack.p99))")
    say(
        "   the same plumbing with no commit (reader -> AsyncStream -> task -> EngineThread -> effects.sound): "
            + "to the task p50 \(ms(plumbing.handOver.p50)), p99 \(ms(plumbing.handOver.p99)); "
            + "to the sound p50 \(ms(plumbing.engine.p50)), p99 \(ms(plumbing.engine.p99)) (n \(plumbing.engine.count))"
    )
    say("   what-if: the same EngineThread, Outbox, SavedMemory and Sounder with bench-made effects, in either order;")
    say(
        "   ignition off (state only) and on (trip_closed + state), one runtime per order, turn about, n \(orders.first?.on.count ?? 0) each:"
    )
    for order in orders {
        say(
            "   \(padded("  " + order.order.label, 45)) off -> buzzer p50 \(ms(order.off.p50)), p99 \(ms(order.off.p99)); "
                + "on -> buzzer p50 \(ms(order.on.p50)), p99 \(ms(order.on.p99)); "
                + "on -> committed p50 \(ms(order.commit.p50)), p99 \(ms(order.commit.p99))")
    }
    say(
        "   SPEC.md target: p99 <= 1 ms -> every edge: \(verdict(all.p99 <= 1)) (p99 \(ms(all.p99))); "
            + "the alarm edge: \(verdict(alarm.p99 <= 1)) (p99 \(ms(alarm.p99)), n \(alarm.count))")
    say("")

    say("2. Confirmed alarm -> alert committed in the outbox (same runs)")
    say("   from the edge's timestamp to the end of the first read of outbox.lastSeq that saw the alert (read every")
    say("   ~20 us; the read waits on the outbox's lock, held through COMMIT, so it returns just after the commit)")
    let alarmSamples = samples.filter { $0.kind == .pirPulseRaisesAlarm && $0.outbox != nil }
    let outbox = Figures(alarmSamples.compactMap(\.outbox))
    let gaps = Figures(alarmSamples.compactMap(\.pollGap))
    let waited = alarmSamples.filter { ($0.outboxRead ?? 0) > 0.05 }.count
    let after = Figures(alarmSamples.compactMap { sample in sample.outbox.map { sample.buzzer - $0 } })
    say("   \(padded("presence_alarm committed", 45)) \(outbox.summary)")
    say(
        "   \(padded("  resolution", 45)) reads every \(ms(gaps.p50)) (p50 of the longest gap), "
            + "\(waited)/\(alarmSamples.count) seeing reads waited on the commit's lock")
    say("   \(padded("  then the buzzer (buzzer - commit)", 45)) p50 \(ms(after.p50)), max \(ms(after.max))")
    let trips = Figures(samples.filter { $0.kind == .ignitionOnEndsTrip }.compactMap(\.outbox))
    say("   \(padded("trip_closed committed (ignition on)", 45)) \(trips.summary)")
    let small = outbox.count < 100 ? " (fewer than 100 samples: p99 is the max)" : ""
    say("   SPEC.md target: <= 5 ms -> \(verdict(outbox.p99 <= 5)) (p99 \(ms(outbox.p99))\(small))")
    say("")
}

func daemonParts(_ arguments: Arguments) throws {
    let options = DaemonOptions(root: arguments.root, parent: arguments.parent, headcount: arguments.headcountPath)
    guard FileManager.default.isExecutableFile(atPath: options.headcount) else {
        throw BenchError(description: "\(options.headcount) is missing: make release")
    }
    let folder = try Cleanup.makeFolder(under: arguments.parent, "daemon")
    var peer: ModbusPeerProcess?
    defer { peer?.close() }
    if arguments.parts.contains("3") || arguments.parts.contains("4") {
        peer = try ModbusPeerProcess(root: arguments.root, parent: arguments.parent)
    }
    if arguments.parts.contains("3") {
        say("3. Startup: spawn of the release `headcount run` -> READY=1 on the bench's NOTIFY_SOCKET, then SIGTERM")
        say("   \(arguments.runs) runs per config, one state folder per config (the first run makes the outbox)")
        var worst: [Double] = []
        for modbus in [false, true] {
            let state = folder + (modbus ? "/state-modbus" : "/state-gpio")
            let config = try writeSimulatorConfig(
                root: arguments.root, folder: folder, state: state, modbusDevice: modbus ? peer?.clientPath : nil)
            let (ready, stops) = try measureStartup(options, config: config, runs: arguments.runs, folder: folder)
            let label = modbus ? "simulator, Modbus on the peer" : "simulator, no Modbus"
            say(
                "   \(padded(label, 32)) median \(ms(ready.p50)), min \(ms(ready.min)), max \(ms(ready.max)); "
                    + "SIGTERM -> exit median \(ms(stops.p50))")
            worst.append(ready.max)
        }
        say(
            "   SPEC.md target: <= 500 ms -> \(verdict(worst.allSatisfy { $0 <= 500 })) (worst run \(ms(worst.max() ?? .nan)))"
        )
        say("")
    }
    if arguments.parts.contains("4"), let peer {
        let config = try writeSimulatorConfig(
            root: arguments.root, folder: folder, state: folder + "/state-footprint", modbusDevice: peer.clientPath)
        say(
            "4. Footprint: the release daemon idle on the simulator profile (16 seats, radar, PIR; climate xy-md02 "
                + "polled every 250 ms on the pymodbus peer's pty)")
        say(
            String(
                format: "   %.0f s window from 1 s after READY=1; VmRSS every second; CPU from utime+stime "
                    + "(/proc/PID/stat, %.0f ticks/s)", arguments.seconds, ProcSample.ticksPerSecond))
        let footprint = try measureFootprint(
            options, config: config, seconds: arguments.seconds, settle: 1, folder: folder, progress: note)
        let mb = { (kilobytes: Int) in String(format: "%.1f MB", Double(kilobytes) / 1024) }
        say(
            "   RSS: max \(mb(footprint.rssMaxKB)), final \(mb(footprint.rssFinalKB)), peak (VmHWM) \(mb(footprint.hwmKB)); "
                + "final anon \(mb(footprint.anonKB)) + file \(mb(footprint.fileKB)), PSS \(mb(footprint.pssKB)); "
                + "\(footprint.threads) threads")
        say(
            String(
                format:
                    "   CPU: %.2f %% of one core over %.1f s (utime+stime); %.3f %% from schedstat; busiest threads: %@",
                footprint.cpuPercent, footprint.seconds, footprint.cpuPercentExact,
                footprint.threadCPU.prefix(4).map { String(format: "%@ %.3f %%", $0.name, $0.percent) }
                    .joined(separator: ", ")))
        say(
            String(
                format: "   Modbus: %.1f write and %.1f read syscalls/s (4 Hz polling: ~4 writes/s); "
                    + "faults logged %d, recoveries %d", footprint.writeCallsPerSecond, footprint.readCallsPerSecond,
                footprint.modbusFaults, footprint.modbusRecoveries))
        let rssMet = footprint.rssMaxKB <= 20 * 1024
        say(
            "   SPEC.md targets: RSS <= 20 MB -> \(verdict(rssMet)) (max \(mb(footprint.rssMaxKB))); "
                + "CPU <= 2 % -> \(verdict(max(footprint.cpuPercent, footprint.cpuPercentExact) <= 2))"
                + String(format: " (%.2f %%)", max(footprint.cpuPercent, footprint.cpuPercentExact)))
        if footprint.modbusFaults > 0 {
            say("   (the Modbus device faulted during the run: the 4 Hz load was not all there)")
        }
        say("")
    }
}

Cleanup.installSignalHandlers()
do {
    let arguments = try Arguments()
    var system = utsname()
    uname(&system)
    let release = withUnsafeBytes(of: &system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    say(
        "headcount-live-bench on \(ProcessInfo.processInfo.activeProcessorCount) cores, Linux \(release); "
            + "state folders under \(arguments.parent) (\(fileSystemType(arguments.parent)))")
    say("")
    if arguments.parts.contains("1") || arguments.parts.contains("2") { try await liveParts(arguments) }
    if arguments.parts.contains("3") || arguments.parts.contains("4") { try daemonParts(arguments) }
    Cleanup.stopEverything()
} catch {
    FileHandle.standardError.write(Data("headcount-live-bench: \(error)\n".utf8))
    Cleanup.stopEverything()
    exit(1)
}

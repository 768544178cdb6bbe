import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The pymodbus peer of Tests/Peers/modbus_peer.py on a socat pty pair (`--direct`: libmodbus opens
/// DIR/client, pymodbus serves DIR/server), serving an xy-md02 thermometer at unit 1, as the tests
/// start it. It quits when asked or when its stdin closes; its socat dies with it (PDEATHSIG).
final class ModbusPeerProcess {
    let pid: pid_t
    let directory: String
    private let input: Int32
    private let output: Int32

    var clientPath: String { directory + "/client" }

    init(root: URL, parent: String) throws {
        let python = root.appendingPathComponent(".venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw BenchError(description: "\(python) is missing: run scripts/setup (pymodbus in .venv)")
        }
        directory = try Cleanup.makeFolder(under: parent, "modbus")
        let stdinPipe = try makePipe()
        let stdoutPipe = try makePipe()
        defer {
            Glibc.close(stdinPipe.read)
            Glibc.close(stdoutPipe.write)
        }
        pid = try spawn(
            python,
            [
                root.appendingPathComponent("Tests/Peers/modbus_peer.py").path, "rtu", "--dir", directory, "--direct",
                "--device", "1=xy-md02",
            ], name: "modbus peer", stdin: stdinPipe.read, stdout: stdoutPipe.write)
        input = stdinPipe.write
        output = stdoutPipe.read
        var line: [UInt8] = []
        let deadline = monotonicNanoseconds() + 15_000_000_000
        while monotonicNanoseconds() < deadline {
            var poller = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            var byte: UInt8 = 0
            guard read(output, &byte, 1) == 1 else { break }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        let words = String(decoding: line, as: UTF8.self).split(separator: " ")
        guard words.count == 3, words[0] == "ready" else {
            Glibc.close(input)
            Glibc.close(output)
            stop(pid, seconds: 3)
            throw BenchError(description: "the Modbus peer did not start: \"\(String(decoding: line, as: UTF8.self))\"")
        }
    }

    /// "quit", stdin closed, up to 3 s, then SIGKILL.
    func close() {
        let quit = Array("quit\n".utf8)
        _ = quit.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
        Glibc.close(input)
        Glibc.close(output)
        let deadline = monotonicNanoseconds() + 3_000_000_000
        while monotonicNanoseconds() < deadline {
            if reap(pid, block: false) != nil { return }
            sleep(seconds: 0.01)
        }
        stop(pid, signal: SIGKILL)
    }
}

struct DaemonOptions {
    var root: URL
    var parent: String
    var headcount: String
}

/// Writes the simulator config (Config/simulator.toml) with its state folder in `state` and its
/// Modbus bus on `modbusDevice`, or without the cabin thermometer and the bus when nil.
func writeSimulatorConfig(root: URL, folder: String, state: String, modbusDevice: String?) throws -> String {
    var text = try String(contentsOf: root.appendingPathComponent("Config/simulator.toml"), encoding: .utf8)
    func replace(_ old: String, _ new: String) throws {
        guard text.contains(old) else { throw BenchError(description: "Config/simulator.toml has no \(old)") }
        text = text.replacingOccurrences(of: old, with: new)
    }
    try replace("state_directory = \"/tmp/headcount-sim\"", "state_directory = \"\(state)\"")
    if let modbusDevice {
        try replace("device = \"/tmp/headcount-sim/modbus\"", "device = \"\(modbusDevice)\"")
    } else {
        guard let cabin = text.range(of: "[[sensor]]\nid = \"cabin\"") else {
            throw BenchError(description: "Config/simulator.toml has no cabin sensor where expected")
        }
        text = String(text[..<cabin.lowerBound])
    }
    let path = folder + (modbusDevice == nil ? "/simulator-no-modbus.toml" : "/simulator.toml")
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// One `headcount run` with NOTIFY_SOCKET on a socket of ours; stderr to `log`.
struct DaemonProcess {
    let pid: pid_t
    let spawnedAt: UInt64
    let log: String

    init(
        _ options: DaemonOptions, config: String, notify: NotifySocket, log: String, deathSignal: Bool = false
    ) throws {
        self.log = log
        let logFD = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw BenchError(description: "cannot write \(log)") }
        defer { close(logFD) }
        var path = options.headcount
        var arguments = [
            "run", "--config", config, "--profiles", options.root.appendingPathComponent("HardwareProfiles").path,
        ]
        // For the long footprint run: killed by the kernel should the bench itself be killed.
        if deathSignal, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") {
            arguments = ["--pdeathsig", "KILL", "--", path] + arguments
            path = "/usr/bin/setpriv"
        }
        spawnedAt = monotonicNanoseconds()
        pid = try spawn(
            path, arguments, name: "headcount run", environment: ["NOTIFY_SOCKET": notify.path], stderr: logFD)
    }

    var alive: Bool { kill(pid, 0) == 0 && reapIfGone() == nil }

    private func reapIfGone() -> Int32? { reap(pid, block: false) }

    func logTail(lines: Int = 8) -> String {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).map { "      | " + $0 }.joined(separator: "\n")
    }
}

/// Part 3: spawn to READY=1, `runs` times, then SIGTERM.
func measureStartup(_ options: DaemonOptions, config: String, runs: Int, folder: String) throws -> (
    ready: Figures, stop: Figures
) {
    let notify = try NotifySocket(path: folder + "/notify")
    var ready: [Double] = []
    var stops: [Double] = []
    for run in 0..<runs {
        let daemon = try DaemonProcess(options, config: config, notify: notify, log: folder + "/run-\(run).log")
        guard let at = notify.waitForReady(within: 10, while: { daemon.alive }) else {
            stop(daemon.pid)
            throw BenchError(
                description: "no READY=1 within 10 s from \(options.headcount); its log:\n\(daemon.logTail())")
        }
        ready.append(Double(at - daemon.spawnedAt) / 1e6)
        // Not at once: `headcount run` sends READY=1 before it handles SIGTERM (see the report).
        sleep(seconds: 0.2)
        let (status, seconds) = stop(daemon.pid)
        guard status == 0 else {
            throw BenchError(
                description: "headcount run exited with status \(status) on SIGTERM; its log:\n\(daemon.logTail())")
        }
        stops.append(seconds * 1000)
        _ = notify.drain()
    }
    return (Figures(ready), Figures(stops))
}

struct Footprint {
    var seconds: Double
    var cpuPercent: Double
    /// The same from the live threads' schedstat nanoseconds.
    var cpuPercentExact: Double
    var rssMaxKB: Int
    var rssFinalKB: Int
    var hwmKB: Int
    var anonKB: Int
    var fileKB: Int
    var pssKB: Int
    var threads: Int
    var writeCallsPerSecond: Double
    var readCallsPerSecond: Double
    var threadCPU: [(name: String, percent: Double)]
    var modbusFaults: Int
    var modbusRecoveries: Int
}

/// Part 4: the daemon on the full simulator config, Modbus on the peer, idle for `seconds` after
/// READY=1 and `settle` seconds more; RSS sampled every second, CPU from utime+stime over the window.
func measureFootprint(
    _ options: DaemonOptions, config: String, seconds: Double, settle: Double, folder: String,
    progress: (String) -> Void
) throws -> Footprint {
    let notify = try NotifySocket(path: folder + "/notify-footprint")
    let daemon = try DaemonProcess(
        options, config: config, notify: notify, log: folder + "/footprint.log", deathSignal: true)
    defer { stop(daemon.pid) }
    guard notify.waitForReady(within: 10, while: { daemon.alive }) != nil else {
        throw BenchError(description: "no READY=1 within 10 s; its log:\n\(daemon.logTail())")
    }
    sleep(seconds: settle)
    guard let first = ProcSample(pid: daemon.pid) else { throw BenchError(description: "the daemon is gone") }
    let firstThreads = threadTicks(pid: daemon.pid)
    let start = monotonicNanoseconds()
    var rssMax = first.rssKB
    var last = first
    var nextReport = 15.0
    while true {
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        if elapsed >= seconds { break }
        sleep(seconds: min(1, seconds - elapsed))
        _ = notify.drain()
        guard daemon.alive, let sample = ProcSample(pid: daemon.pid) else {
            throw BenchError(description: "the daemon exited during the footprint run; its log:\n\(daemon.logTail())")
        }
        rssMax = max(rssMax, sample.rssKB)
        last = sample
        if elapsed >= nextReport {
            progress(String(format: "   footprint: %.0f/%.0f s", elapsed, seconds))
            nextReport += 15
        }
    }
    let wall = Double(monotonicNanoseconds() - start) / 1e9
    let lastThreads = threadTicks(pid: daemon.pid)
    let cpu = Double(last.cpuTicks - first.cpuTicks) / ProcSample.ticksPerSecond / wall * 100
    var perThread: [String: Double] = [:]
    var exact: UInt64 = 0
    for (id, now) in lastThreads {
        let before = firstThreads[id]?.nanoseconds ?? 0
        let used = now.nanoseconds - min(before, now.nanoseconds)
        exact += used
        perThread[now.name, default: 0] += Double(used) / 1e9 / wall * 100
    }
    let log = (try? String(contentsOfFile: daemon.log, encoding: .utf8)) ?? ""
    let lines = log.split(separator: "\n")
    return Footprint(
        seconds: wall, cpuPercent: cpu, cpuPercentExact: Double(exact) / 1e9 / wall * 100, rssMaxKB: rssMax,
        rssFinalKB: last.rssKB, hwmKB: last.hwmKB,
        anonKB: last.anonKB, fileKB: last.fileKB, pssKB: last.pssKB, threads: last.threads,
        writeCallsPerSecond: Double(last.writeCalls - first.writeCalls) / wall,
        readCallsPerSecond: Double(last.readCalls - first.readCalls) / wall,
        threadCPU: perThread.sorted { $0.value > $1.value }.map { ($0.key, $0.value) },
        modbusFaults: lines.filter { $0.contains("Modbus device") && $0.contains("fault") }.count,
        modbusRecoveries: lines.filter { $0.contains("Modbus device") && $0.contains("recovered") }.count)
}

import Detection
import Uplink

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// headcount-outbox-bench: measured figures for the durable outbox on this disk.
//   1. Durable enqueues per second: WAL + synchronous=FULL, what the daemon uses (one fsync per commit),
//      with the latency of one enqueue (the "confirmed alarm reaches the outbox" budget).
//   2. The same with synchronous=NORMAL, for comparison only: NOT what the daemon uses.
//   3. nextDue + markDelivered cycles per second (the delivery side), FULL.
//   4. Enqueues at the size bound, where each stored heartbeat evicts the oldest one.
//
// `--crash-writer PATH N`: the child process of the kill -9 test. Enqueues N alerts into the outbox at
// PATH and prints "seq id" on stdout after each commit; the test kills it at random points.
//
// `--sender PATH N URL CERT KEY CA`: the child process of the uplink's kill -9 test. Enqueues alerts
// 1…N (ids derived from the index, so the test knows them) into the outbox at PATH while delivering
// it to the center at URL with mutual TLS, and exits 0 once all N are enqueued and delivered.
// Restarted after a kill, it goes on from the outbox's last seq.

let usage = """
    usage: headcount-outbox-bench [--dir DIR] [--count N]
           headcount-outbox-bench --crash-writer PATH N
           headcount-outbox-bench --sender PATH N URL CERT KEY CA
    """

func fail(_ message: String, status: Int32 = 2) -> Never {
    let line = message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(status)
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Writes the whole line with write(2), so it is out of the process before the next commit starts.
func emit(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
        if written < 0 {
            if errno == EINTR { continue }
            exit(4)
        }
        offset += written
    }
    bytes.removeAll()
}

/// The alerts a busy trip produces, cycling through the protocol's types.
func sampleAlert(_ index: Int, vehicle: String) -> CenterAlert {
    let when = WallClockTime(millisecondsSinceEpoch: 1_795_000_000_000 + Int64(index) * 250)
    let types: [AlertType] = [
        .presenceAlarm, .alarmEscalated, .sensorFault, .alarmAcknowledged, .sensorRecovered, .checkMissed,
        .alarmCleared, .tripClosed, .heartbeat,
    ]
    let type = types[index % types.count]
    switch type {
    case .heartbeat:
        return CenterAlert.heartbeat(
            vehicleID: vehicle, occurredAt: when, version: "0.1.0", uptimeSeconds: index,
            sensors: (1...16).map { CenterAlert.SensorHealth(id: "seat.\($0)", faulty: $0 == 3) })
    case .tripClosed:
        let trip = CenterAlert.Trip(
            ignitionOffAt: when.adding(seconds: -3600), closedAt: when, closedBy: .monitoringEnded,
            checked: .inWindow, checkedAt: when.adding(seconds: -3550), alarms: 1, escalations: 1,
            acknowledgements: 1, faults: 0, degraded: false, alarmActiveAtClose: false, maxTemperatureC: 31.5)
        return CenterAlert(vehicleID: vehicle, type: type, occurredAt: when, trip: trip)
    case .sensorFault, .sensorRecovered:
        return CenterAlert(
            vehicleID: vehicle, type: type, occurredAt: when, sensors: ["seat.3"],
            fault: type == .sensorFault ? "timeout" : nil)
    default:
        return CenterAlert(
            vehicleID: vehicle, type: type, occurredAt: when, level: index % 2 + 1, reason: .presence,
            urgent: false, sensors: ["seat.4", "radar.rear"], temperatureC: 33.5, co2ppm: 1250)
    }
}

func percentile(_ sorted: [Double], _ fraction: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))
    return sorted[index]
}

func milliseconds(_ seconds: Double) -> String {
    let value = (seconds * 100_000).rounded() / 100
    return "\(value) ms"
}

func rate(_ count: Int, _ seconds: Double) -> String {
    guard seconds > 0 else { return "n/a" }
    return "\(Int((Double(count) / seconds).rounded()))/s"
}

func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
}

/// Enqueues `count` alerts; returns the total seconds and the per-enqueue latencies, sorted.
func measureEnqueues(_ outbox: Outbox, count: Int, from start: Int = 0) throws -> (Double, [Double]) {
    var latencies: [Double] = []
    latencies.reserveCapacity(count)
    let begin = monotonicSeconds()
    for index in start..<(start + count) {
        let before = monotonicSeconds()
        try outbox.enqueue(sampleAlert(index, vehicle: "van-bench"), now: WallClockTime(millisecondsSinceEpoch: 0))
        latencies.append(monotonicSeconds() - before)
    }
    return (monotonicSeconds() - begin, latencies.sorted())
}

/// The file system type holding `directory`, from /proc/mounts (the longest mount point that contains it).
func fileSystemType(_ directory: String) -> String? {
    guard let resolved = realpath(directory, nil) else { return nil }
    let path = String(cString: resolved)
    free(resolved)
    guard let file = fopen("/proc/mounts", "r") else { return nil }
    defer { fclose(file) }
    var best: (mountPoint: String, type: String)?
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    defer { free(line) }
    var lines = 0
    while lines < 10_000, getline(&line, &capacity, file) > 0, let line {
        lines += 1
        let fields = String(cString: line).split(separator: " ")
        guard fields.count >= 3 else { continue }
        let mountPoint = String(fields[1])
        let inside = path == mountPoint || path.hasPrefix(mountPoint == "/" ? "/" : mountPoint + "/")
        if inside, mountPoint.count >= (best?.mountPoint.count ?? -1) {
            best = (mountPoint, String(fields[2]))
        }
    }
    return best?.type
}

func fileSystemNote(_ directory: String) -> String {
    guard let type = fileSystemType(directory) else { return "" }
    if type == "tmpfs" || type == "ramfs" {
        return " (\(type): fsync costs nothing here, the figures say nothing about a disk; use --dir)"
    }
    return " (\(type))"
}

func runBench(directory: String, count: Int) {
    var template = Array("\(directory)/outbox-bench-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } })
    else {
        fail("cannot create a scratch directory in \(directory) (errno \(errno))")
    }
    let scratch = String(cString: made)
    defer { rmdir(scratch) }
    print("headcount-outbox-bench: \(count) alerts per run in \(scratch)\(fileSystemNote(scratch))")
    print("  sqlite \(SQLiteLibrary.version)")
    do {
        // 1. What the daemon uses.
        let fullPath = scratch + "/full.sqlite"
        defer { removeDatabase(fullPath) }
        let full = try Outbox(path: fullPath)
        let (fullSeconds, fullLatencies) = try measureEnqueues(full, count: count)
        print(
            "  durable enqueue, WAL + synchronous=FULL (the daemon's setting): \(rate(count, fullSeconds));"
                + " latency p50 \(milliseconds(percentile(fullLatencies, 0.5)))"
                + ", p99 \(milliseconds(percentile(fullLatencies, 0.99)))"
                + ", max \(milliseconds(fullLatencies.last ?? 0))")

        // 3. The delivery side on the same file.
        let drainBegin = monotonicSeconds()
        var cycles = 0
        let farFuture = WallClockTime(millisecondsSinceEpoch: 4_000_000_000_000)
        while cycles < count + 1, let entry = try full.nextDue(now: farFuture) {
            try full.markDelivered(id: entry.id)
            cycles += 1
        }
        let drainSeconds = monotonicSeconds() - drainBegin
        print(
            "  nextDue + markDelivered, FULL: \(rate(cycles, drainSeconds)) (\(cycles) cycles, depth now \(full.depth))"
        )
        full.close()

        // 2. For comparison only.
        let normalPath = scratch + "/normal.sqlite"
        defer { removeDatabase(normalPath) }
        var normalConfiguration = Outbox.Configuration()
        normalConfiguration.synchronousNormalForBenchmarkOnly = true
        let normal = try Outbox(path: normalPath, configuration: normalConfiguration)
        let (normalSeconds, normalLatencies) = try measureEnqueues(normal, count: count)
        print(
            "  enqueue, WAL + synchronous=NORMAL (NOT what the daemon uses: can lose the last commits on power"
                + " loss): \(rate(count, normalSeconds)); latency p50 \(milliseconds(percentile(normalLatencies, 0.5)))"
                + ", p99 \(milliseconds(percentile(normalLatencies, 0.99)))")
        normal.close()

        // 4. At the bound: a long outage filled the outbox with heartbeats; each alert stored now
        //    evicts the oldest heartbeat in its transaction.
        let boundPath = scratch + "/bound.sqlite"
        defer { removeDatabase(boundPath) }
        var boundConfiguration = Outbox.Configuration()
        boundConfiguration.maxRows = 10_000
        boundConfiguration.synchronousNormalForBenchmarkOnly = true  // only to fill it quickly
        do {
            let filling = try Outbox(path: boundPath, configuration: boundConfiguration)
            for index in 0..<boundConfiguration.maxRows {
                try filling.enqueue(sampleAlert(index * 9 + 8, vehicle: "van-bench"))  // heartbeats
            }
            filling.close()
        }
        boundConfiguration.synchronousNormalForBenchmarkOnly = false
        let bound = try Outbox(path: boundPath, configuration: boundConfiguration)
        let boundCount = min(count, 5_000)
        let (boundSeconds, boundLatencies) = try measureEnqueues(bound, count: boundCount)
        print(
            "  durable enqueue at the bound (\(boundConfiguration.maxRows) rows, FULL, each evicting a heartbeat):"
                + " \(rate(boundCount, boundSeconds)); p99 \(milliseconds(percentile(boundLatencies, 0.99)));"
                + " evicted \(bound.evictionsSinceOpen), depth \(bound.depth)")
        bound.close()
    } catch {
        fail("headcount-outbox-bench: \(error)", status: 1)
    }
}

/// The kill -9 test's child: enqueue, print "seq id" after each commit, now and then defer the head
/// (an UPDATE transaction, so kills also land in those).
func runCrashWriter(path: String, count: Int) {
    var configuration = Outbox.Configuration()
    configuration.maxRows = 1_000_000
    do {
        let outbox = try Outbox(path: path, configuration: configuration)
        for index in 0..<count {
            let stored = try outbox.enqueue(sampleAlert(index, vehicle: "van-crash"))
            emit("\(stored.seq) \(stored.id)")
            if index % 7 == 6, let head = try outbox.nextDue(now: .now()) {
                try outbox.deferRetry(id: head.id, until: WallClockTime.now().adding(seconds: 1))
            }
        }
        outbox.close()
    } catch {
        fail("crash-writer: \(error)", status: 3)
    }
}

/// The id of the sender's alert number `index` (1-based): a valid v4 UUID the test can predict.
func senderID(_ index: Int) -> String {
    let hex = String(index, radix: 16)
    return "00000000-0000-4000-8000-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
}

func runSender(path: String, count: Int, url: String, certificate: String, key: String, ca: String) {
    do {
        let outbox = try Outbox(path: path)
        let client = try HTTPSClient(
            HTTPSConfiguration(
                url: url, clientCertificatePath: certificate, clientKeyPath: key, caFilePath: ca,
                softwareVersion: "sender", connectTimeout: .seconds(2), totalTimeout: .seconds(5)))
        var configuration = Delivery.Configuration()
        configuration.firstBackoffSeconds = 0.05
        configuration.maxBackoffSeconds = 0.5
        configuration.heartbeatSeconds = 0
        let delivery = Delivery(
            outbox: outbox, link: client, configuration: configuration,
            heartbeat: { sampleAlert(0, vehicle: "van-sender") }, log: { _ in })
        delivery.start()
        var index = outbox.lastSeq
        while index < count {
            index += 1
            var alert = sampleAlert(index, vehicle: "van-sender")
            alert.id = senderID(index)
            _ = try outbox.enqueue(alert)
            delivery.wake()
            usleep(2_000)
        }
        let deadline = monotonicSeconds() + 60
        while outbox.depth > 0 && monotonicSeconds() < deadline { usleep(5_000) }
        delivery.stop()
        client.shutdown()
        guard outbox.depth == 0 else { fail("sender: \(outbox.depth) alerts still queued after 60 s", status: 3) }
        outbox.close()
    } catch {
        fail("sender: \(error)", status: 3)
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--sender" {
    guard arguments.count == 7, let count = Int(arguments[2]), count >= 0 else { fail(usage) }
    runSender(
        path: arguments[1], count: count, url: arguments[3], certificate: arguments[4], key: arguments[5],
        ca: arguments[6])
} else if arguments.first == "--crash-writer" {
    guard arguments.count == 3, let count = Int(arguments[2]), count >= 0 else { fail(usage) }
    runCrashWriter(path: arguments[1], count: count)
} else {
    var directory = "."
    var count = 2_000
    var index = 0
    while index < arguments.count {
        switch arguments[index] {
        case "--dir" where index + 1 < arguments.count:
            directory = arguments[index + 1]
            index += 2
        case "--count" where index + 1 < arguments.count:
            guard let value = Int(arguments[index + 1]), value > 0 else { fail(usage) }
            count = value
            index += 2
        default:
            fail(usage)
        }
    }
    runBench(directory: directory, count: count)
}

import Detection
import Foundation

// headcount-bench: measured figures for SPEC.md's replay targets.
//   1. The detection engine alone: events decoded in advance, fed in-process through the
//      virtual-time driver (timers included), reported in events per second on one core.
//   2. `headcount replay` of a busy 1-hour trip (about 20,000 lines), process start included.

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

struct Generator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A van of 16 seats, two radars, two PIRs and a cabin thermometer.
let declared: [SensorSpec] =
    (1...16).map { SensorSpec(id: "seat.\($0)", kind: .seat) }
    + [
        SensorSpec(id: "radar.front", kind: .presence), SensorSpec(id: "radar.rear", kind: .presence),
        SensorSpec(id: "pir.mid", kind: .motion), SensorSpec(id: "pir.rear", kind: .motion),
        SensorSpec(id: "cabin", kind: .temperature),
    ]
let table = DetectionMachine.sensorTable(declared)
func index(_ id: String) -> Int { table.firstIndex { $0.id == id } ?? 0 }

/// A day of school runs: stops every few minutes (ignition off, door, children leaving, CHECK),
/// seats bouncing, radars flickering, PIR pulses and temperature readings, mostly while driving.
func busyTrip(events count: Int, seed: UInt64) -> [(Seconds, Input)] {
    var random = Generator(state: seed)
    var out: [(Seconds, Input)] = []
    out.reserveCapacity(count)
    var t: Seconds = 0
    var seats = [Bool](repeating: false, count: 16)
    var ignitionOn = false
    out.append((0, .reading(sensor: index("ignition"), .flag(true))))
    while out.count < count {
        t += Double(Int.random(in: 1...20, using: &random)) / 100
        let roll = Int.random(in: 0..<1000, using: &random)
        if roll < 2 {
            ignitionOn.toggle()
            out.append((t, .reading(sensor: index("ignition"), .flag(ignitionOn))))
        } else if roll < 10 {
            out.append((t, .reading(sensor: index("door"), .flag(Bool.random(using: &random)))))
        } else if roll < 14 {
            out.append((t, .reading(sensor: index("button"), .flag(true))))
            out.append((t + 0.3, .reading(sensor: index("button"), .flag(false))))
            t += 0.3
        } else if roll < 700 {
            let seat = Int.random(in: 0..<16, using: &random)
            seats[seat].toggle()
            out.append((t, .reading(sensor: seat, .flag(seats[seat]))))
        } else if roll < 850 {
            out.append(
                (t, .reading(sensor: 16 + Int.random(in: 0...1, using: &random), .flag(Bool.random(using: &random)))))
        } else if roll < 950 {
            out.append(
                (t, .reading(sensor: 18 + Int.random(in: 0...1, using: &random), .flag(Bool.random(using: &random)))))
        } else {
            let celsius = Double(Int.random(in: 250...340, using: &random)) / 10
            out.append((t, .reading(sensor: index("cabin"), .number(celsius))))
        }
    }
    return out
}

func measureEngine(events: [(Seconds, Input)]) -> (rate: Double, actions: Int) {
    var driver = VirtualTimeDriver(machine: DetectionMachine(sensors: declared, policy: Policy()))
    var produced = 0
    let start = monotonicSeconds()
    for (t, input) in events {
        driver.feed(input, at: t)
        produced &+= driver.actions.count
        driver.actions.removeAll(keepingCapacity: true)
    }
    driver.finish(at: events.last?.0 ?? 0)
    let elapsed = monotonicSeconds() - start
    return (Double(events.count) / elapsed, produced)
}

/// A 1-hour trace with about 20,000 lines, in SPEC.md's format.
func oneHourTrace() -> String {
    var random = Generator(state: 42)
    var lines: [String] = []
    let sensorsJSON = declared.map { "{\"id\": \"\($0.id)\", \"kind\": \"\($0.kind.rawValue)\"}" }
    lines.append("{\"headcount_trace\": 1, \"sensors\": [\(sensorsJSON.joined(separator: ", "))]}")
    var t = 0.0
    var seats = [Bool](repeating: false, count: 16)
    var ignitionOn = true
    lines.append("{\"t\": 0, \"signal\": \"ignition\", \"value\": true}")
    while lines.count < 20_000 {
        t += Double(Int.random(in: 1...30, using: &random)) / 100
        let roll = Int.random(in: 0..<1000, using: &random)
        let time = formatNumber((t * 100).rounded() / 100)
        if roll < 3 {
            ignitionOn.toggle()
            lines.append("{\"t\": \(time), \"signal\": \"ignition\", \"value\": \(ignitionOn)}")
        } else if roll < 700 {
            let seat = Int.random(in: 0..<16, using: &random)
            seats[seat].toggle()
            lines.append("{\"t\": \(time), \"signal\": \"seat.\(seat + 1)\", \"value\": \(seats[seat])}")
        } else if roll < 850 {
            lines.append("{\"t\": \(time), \"signal\": \"radar.rear\", \"value\": \(Bool.random(using: &random))}")
        } else if roll < 950 {
            lines.append("{\"t\": \(time), \"signal\": \"pir.mid\", \"value\": \(Bool.random(using: &random))}")
        } else {
            let celsius = Double(Int.random(in: 250...340, using: &random)) / 10
            lines.append("{\"t\": \(time), \"signal\": \"cabin\", \"value\": \(celsius)}")
        }
    }
    lines.append("{\"t\": \(formatNumber(max(3600, (t * 100).rounded() / 100 + 1))), \"end\": true}")
    return lines.joined(separator: "\n") + "\n"
}

/// Runs `path` with `arguments`, standard output to /dev/null, and returns its exit status.
func spawnAndWait(_ path: String, _ arguments: [String]) -> Int32? {
    var fileActions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fileActions)
    defer { posix_spawn_file_actions_destroy(&fileActions) }
    posix_spawn_file_actions_addopen(&fileActions, 1, "/dev/null", O_WRONLY, 0)
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid = pid_t()
    guard posix_spawn(&pid, path, &fileActions, nil, argv, environ) == 0 else { return nil }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

var headcountPath = ".build/release/headcount"
var arguments = CommandLine.arguments.dropFirst()
var engineEvents = 10_000_000
while let argument = arguments.popFirst() {
    switch argument {
    case "--headcount": headcountPath = arguments.popFirst() ?? headcountPath
    case "--events": engineEvents = Int(arguments.popFirst() ?? "") ?? engineEvents
    default:
        FileHandle.standardError.write(Data("usage: headcount-bench [--headcount PATH] [--events N]\n".utf8))
        exit(2)
    }
}

print(
    "headcount-bench on \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.operatingSystemVersionString)"
)
print("")
print("1. Detection engine alone (16 seats, 2 radars, 2 PIRs, cabin; events decoded in advance, timers included)")
let events = busyTrip(events: engineEvents, seed: 7)
var rates: [Double] = []
var actionCount = 0
for _ in 0..<5 {
    let (rate, actions) = measureEngine(events: events)
    rates.append(rate)
    actionCount = actions
}
print("   events: \(events.count), actions produced per run: \(actionCount)")
print(
    "   throughput: median \(Int(median(rates)).formatted()) events/s, best \(Int(rates.max() ?? 0).formatted()) events/s over 5 runs"
)
print("   SPEC.md target: >= 10,000,000 events/s -> \(median(rates) >= 10_000_000 ? "met" : "MISSED")")
print("")

print("2. headcount replay of a busy 1-hour trip, process start included")
let trace = oneHourTrace()
let path = FileManager.default.temporaryDirectory.appendingPathComponent("headcount-bench-1h.jsonl").path
guard FileManager.default.createFile(atPath: path, contents: Data(trace.utf8)) else {
    print("   cannot write \(path)")
    exit(1)
}
let lineCount = trace.split(separator: "\n").count
var walls: [Double] = []
for mode in [["--json"], []] {
    walls.removeAll()
    for _ in 0..<11 {
        // posix_spawn and waitpid: Foundation's Process polls for exit and would add its own delay.
        let start = monotonicSeconds()
        guard let status = spawnAndWait(headcountPath, ["replay", path] + mode) else {
            print("   cannot run \(headcountPath)")
            exit(1)
        }
        walls.append((monotonicSeconds() - start) * 1000)
        guard status == 0 else {
            print("   headcount replay failed with status \(status)")
            exit(1)
        }
    }
    let label = mode.isEmpty ? "timeline" : "--json  "
    print(
        "   \(label): \(lineCount) lines, wall median \(String(format: "%.1f", median(walls))) ms, "
            + "min \(String(format: "%.1f", walls.min() ?? 0)) ms, max \(String(format: "%.1f", walls.max() ?? 0)) ms (11 runs)"
    )
}
print("   SPEC.md target: < 250 ms -> \(median(walls) < 250 ? "met" : "MISSED")")
try? FileManager.default.removeItem(atPath: path)

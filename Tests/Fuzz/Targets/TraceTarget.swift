import Detection
import Formats

/// `trace`: SPEC.md's trace format as `headcount replay` reads it, then replayed through the
/// detection engine in virtual time. Bad input must come back as an error naming the line; a trace
/// that parses must replay without a crash or a hang, with its events in time order inside the trip
/// and each one a JSON object with `t` and `event` as a line of `replay --json`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTrace(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let trace: Trace
    do {
        trace = try Trace.parse(text(data, size), file: "fuzz.jsonl")
    } catch {
        require(error.line >= 1 && error.line <= lineCount(data, size), "a trace error at no line: \(error)")
        _ = error.description
        return 0
    }
    let events = trace.replay(policy: trace.policy)
    var last: Seconds = 0
    for event in events {
        require(event.t >= last, "event at \(event.t) after one at \(last)")
        require(event.t <= trace.duration, "event at \(event.t) after the trip's end at \(trace.duration)")
        last = event.t
        let line = event.json(sensors: trace.sensors)
        let parsed = try? JSON.parse(line)
        require(parsed?["t"]?.doubleValue == event.t && parsed?["event"] != nil, "not a replay --json line: \(line)")
    }
    return 0
}

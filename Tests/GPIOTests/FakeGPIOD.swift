import Synchronization

@testable import GPIO

/// A fake chip set behind `GPIODCalls`, on virtual time: `wait` jumps the clock to the next
/// scripted edge (or by the whole timeout), so debounce tests take no real time. Any call can be
/// made to fail on purpose at a named call site.
final class FakeGPIOD: GPIODCalls {
    /// Where a failure can be injected, named like the shim's functions.
    enum Site: Hashable {
        case open
        case requestInput(line: String)
        case requestOutput(line: String)
        case getValue(line: String)
        case setValue(line: String)
        case wait
        case readEdges(line: String)
    }

    /// What was asked of one requested line.
    struct Request: Equatable {
        var line: String
        var consumer: String
        var isInput: Bool
        var activeLow: Bool
        var bias: GPIOBias
        var debounceMicroseconds: UInt32
        var initial: Bool
    }

    private struct State {
        /// label -> line names, in the order chips are found.
        var chips: [(label: String, lines: Set<String>)]
        var busy: Set<String> = []
        var failures: [Site: GPIOErrno] = [:]
        var now: UInt64 = 1_000_000_000
        var openChip: GPIODChip?
        var closed = 0
        var requests: [Request] = []
        var values: [String: Bool] = [:]
        var writes: [(line: String, value: Bool)] = []
        /// Raw edges the "kernel" will queue, per line, sorted by time.
        var script: [String: [GPIODRawEdge]] = [:]
    }

    let hasKernelDebounce: Bool
    private let state: Mutex<State>

    init(chips: [(label: String, lines: Set<String>)], kernelDebounce: Bool = false) {
        hasKernelDebounce = kernelDebounce
        state = Mutex(State(chips: chips))
    }

    // MARK: Scripting

    func fail(_ site: Site, with errno: GPIOErrno) { state.withLock { $0.failures[site] = errno } }

    func markBusy(_ line: String) { state.withLock { _ = $0.busy.insert(line) } }

    func setValue(_ line: String, _ value: Bool) { state.withLock { $0.values[line] = value } }

    /// Queues raw edges on `line` at absolute virtual times.
    func script(_ line: String, _ edges: [(at: UInt64, rising: Bool)]) {
        state.withLock { state in
            state.script[line, default: []] += edges.map {
                GPIODRawEdge(timestampNanoseconds: $0.at, rising: $0.rising)
            }
            state.script[line]?.sort { $0.timestampNanoseconds < $1.timestampNanoseconds }
        }
    }

    var now: UInt64 { state.withLock { $0.now } }
    var requests: [Request] { state.withLock { $0.requests } }
    var closedCount: Int { state.withLock { $0.closed } }
    var writes: [(line: String, value: Bool)] { state.withLock { $0.writes } }

    // MARK: GPIODCalls

    func monotonicNanoseconds() -> UInt64 { now }

    func openChip(label: String) throws(GPIODOpenFailure) -> GPIODChip {
        try state.withLock { (state: inout State) throws(GPIODOpenFailure) -> GPIODChip in
            if let errno = state.failures[.open] { throw .failed(errno) }
            guard state.chips.contains(where: { $0.label == label }) else {
                throw .noSuchChip(found: state.chips.map(\.label))
            }
            let chip = GPIODChip(id: 42)
            state.openChip = chip
            return chip
        }
    }

    func requestInput(
        _ chip: GPIODChip, line: String, consumer: String, activeLow: Bool, bias: GPIOBias,
        debounceMicroseconds: UInt32
    ) throws(GPIOErrno) -> GPIODLineID {
        try request(
            Request(
                line: line, consumer: consumer, isInput: true, activeLow: activeLow, bias: bias,
                debounceMicroseconds: debounceMicroseconds, initial: false),
            site: .requestInput(line: line))
    }

    func requestOutput(
        _ chip: GPIODChip, line: String, consumer: String, activeLow: Bool, initial: Bool
    ) throws(GPIOErrno) -> GPIODLineID {
        try request(
            Request(
                line: line, consumer: consumer, isInput: false, activeLow: activeLow, bias: .asIs,
                debounceMicroseconds: 0, initial: initial),
            site: .requestOutput(line: line))
    }

    private func request(_ request: Request, site: Site) throws(GPIOErrno) -> GPIODLineID {
        try state.withLock { (state: inout State) throws(GPIOErrno) -> GPIODLineID in
            if let errno = state.failures[site] { throw errno }
            guard let chip = state.chips.first(where: { $0.label == "pinctrl-bcm2711" }) ?? state.chips.first,
                chip.lines.contains(request.line)
            else { throw .noSuchEntry }
            guard !state.busy.contains(request.line) else { throw .busy }
            state.busy.insert(request.line)
            state.requests.append(request)
            if !request.isInput { state.values[request.line] = request.initial }
            return GPIODLineID(state.requests.count - 1)
        }
    }

    func getValue(_ chip: GPIODChip, _ line: GPIODLineID) throws(GPIOErrno) -> Bool {
        try state.withLock { (state: inout State) throws(GPIOErrno) -> Bool in
            let name = state.requests[Int(line)].line
            if let errno = state.failures[.getValue(line: name)] { throw errno }
            return state.values[name] ?? false
        }
    }

    func setValue(_ chip: GPIODChip, _ line: GPIODLineID, _ value: Bool) throws(GPIOErrno) {
        try state.withLock { (state: inout State) throws(GPIOErrno) in
            let name = state.requests[Int(line)].line
            if let errno = state.failures[.setValue(line: name)] { throw errno }
            state.values[name] = value
            state.writes.append((name, value))
        }
    }

    func wait(_ chip: GPIODChip, timeoutNanoseconds: Int64) throws(GPIOErrno) -> [GPIODLineID] {
        try state.withLock { (state: inout State) throws(GPIOErrno) -> [GPIODLineID] in
            if let errno = state.failures[.wait] { throw errno }
            let limit = state.now + UInt64(max(0, timeoutNanoseconds))
            let next = state.requests.filter(\.isInput).compactMap {
                state.script[$0.line]?.first?.timestampNanoseconds
            }
            .min()
            guard let next, next <= limit else {
                state.now = limit
                return []
            }
            state.now = max(state.now, next)
            let now = state.now
            return state.requests.indices.filter { index in
                let request = state.requests[index]
                return request.isInput && (state.script[request.line]?.first?.timestampNanoseconds ?? .max) <= now
            }.map { GPIODLineID($0) }
        }
    }

    func readEdges(_ chip: GPIODChip, _ line: GPIODLineID) throws(GPIOErrno) -> [GPIODRawEdge] {
        try state.withLock { (state: inout State) throws(GPIOErrno) -> [GPIODRawEdge] in
            let name = state.requests[Int(line)].line
            if let errno = state.failures[.readEdges(line: name)] { throw errno }
            let pending = state.script[name] ?? []
            let now = state.now
            let due = pending.filter { $0.timestampNanoseconds <= now }
            state.script[name] = pending.filter { $0.timestampNanoseconds > now }
            if let last = due.last { state.values[name] = last.rising }
            return due
        }
    }

    func close(_ chip: GPIODChip) {
        state.withLock { state in
            state.closed += 1
            state.busy = []
        }
    }
}

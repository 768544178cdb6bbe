import Synchronization

/// GPIO through libgpiod (1.6 on bookworm, 2.x on trixie) on one chip chosen by its label, with
/// lines chosen by name. Every libgpiod call goes through `GPIODCalls`, so tests can fake the chip.
///
/// Debounce: on libgpiod 2.x the kernel debounces (the period is passed down in microseconds). On
/// 1.6 the kernel interface has none, so this backend debounces in software with the semantics
/// documented on `SoftwareDebouncer`: a change is reported once the line has kept it for the whole
/// period, stamped with the moment that period ended; shorter pulses are dropped. Either way,
/// `readInputs()` returns the lines' current (undebounced) values.
///
/// Threads: `waitForEdges` holds a lock of its own for its whole wait, so one thread waits while
/// others read inputs and set outputs; `close()` waits for a wait in progress to end.
public final class LibgpiodBackend: GPIOBackend {
    /// The label the chip was opened by.
    public let chipLabel: String
    private let calls: any GPIODCalls
    private let chip: GPIODChip
    private let consumer: String
    /// What readers, writers and `request` share; short critical sections only.
    private let lines: Mutex<Lines>
    /// Owned by the waiting thread for a whole `waitForEdges`; `request` and `close` take it first.
    private let waiting: Mutex<Waiting>

    private struct Line: Sendable {
        var role: String
        var name: String
        var id: GPIODLineID
    }

    private struct Lines: Sendable {
        var inputs: [Line] = []
        var outputs: [Line] = []
        var requested = false
        var closed = false
    }

    private struct Waiting: Sendable {
        var inputs: [Line] = []
        var inputByID: [GPIODLineID: Int] = [:]
        var debouncer = SoftwareDebouncer()
        var requested = false
        var closed = false
    }

    /// Opens the chip labelled `chipLabel`. Requests name the lines "<consumer>:<role>" (as
    /// `gpioinfo` shows them).
    public init(
        chipLabel: String, consumer: String = "headcount", calls: any GPIODCalls = LibgpiodCalls()
    ) throws(GPIOError) {
        self.chipLabel = chipLabel
        self.calls = calls
        self.consumer = consumer
        do throws(GPIODOpenFailure) {
            chip = try calls.openChip(label: chipLabel)
        } catch {
            switch error {
            case .noSuchChip(let found): throw .noSuchChip(label: chipLabel, found: found)
            case .failed(let errno): throw .chipUnavailable(label: chipLabel, errno: errno)
            }
        }
        lines = Mutex(Lines())
        waiting = Mutex(Waiting())
    }

    public func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {
        try waiting.withLock { (waitState: inout Waiting) throws(GPIOError) in
            try lines.withLock { (lineState: inout Lines) throws(GPIOError) in
                guard !lineState.closed else { throw .closed }
                guard !lineState.requested else { throw .invalidRequest("lines were already requested") }
                try Self.checkDistinct(inputs: inputs, outputs: outputs)
                do throws(GPIOError) {
                    try requestAll(inputs: inputs, outputs: outputs, into: &lineState, waiting: &waitState)
                } catch {
                    // All or nothing: the shim cannot release single lines, so close everything.
                    lineState.closed = true
                    waitState.closed = true
                    calls.close(chip)
                    throw error
                }
            }
        }
    }

    private func requestAll(
        inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec], into lineState: inout Lines, waiting: inout Waiting
    ) throws(GPIOError) {
        let softwareDebounce = !calls.hasKernelDebounce
        var requestedInputs: [Line] = []
        for spec in inputs {
            let (microseconds, overflow) = spec.debounceMilliseconds.multipliedReportingOverflow(by: 1000)
            let debounceMicroseconds = softwareDebounce ? 0 : overflow ? UInt32.max : microseconds
            let id: GPIODLineID
            do throws(GPIOErrno) {
                id = try calls.requestInput(
                    chip, line: spec.line, consumer: consumerName(spec.role), activeLow: spec.activeLow,
                    bias: spec.bias, debounceMicroseconds: debounceMicroseconds)
            } catch {
                throw requestError(error, line: spec.line, role: spec.role)
            }
            requestedInputs.append(Line(role: spec.role, name: spec.line, id: id))
        }
        var requestedOutputs: [Line] = []
        for spec in outputs {
            let id: GPIODLineID
            do throws(GPIOErrno) {
                id = try calls.requestOutput(
                    chip, line: spec.line, consumer: consumerName(spec.role), activeLow: spec.activeLow,
                    initial: spec.initial)
            } catch {
                throw requestError(error, line: spec.line, role: spec.role)
            }
            requestedOutputs.append(Line(role: spec.role, name: spec.line, id: id))
        }
        var debouncer = SoftwareDebouncer()
        if softwareDebounce {
            for (index, spec) in inputs.enumerated() where spec.debounceMilliseconds > 0 {
                let line = requestedInputs[index]
                let value: Bool
                do throws(GPIOErrno) {
                    value = try calls.getValue(chip, line.id)
                } catch {
                    throw .readFailed(line: line.name, chip: chipLabel, role: line.role, errno: error)
                }
                debouncer.track(
                    input: index, periodNanoseconds: UInt64(spec.debounceMilliseconds) * 1_000_000, value: value)
            }
        }
        lineState.inputs = requestedInputs
        lineState.outputs = requestedOutputs
        lineState.requested = true
        waiting.inputs = requestedInputs
        waiting.inputByID = Dictionary(
            requestedInputs.enumerated().map { ($0.element.id, $0.offset) }, uniquingKeysWith: { first, _ in first })
        waiting.debouncer = debouncer
        waiting.requested = true
    }

    public func readInputs() throws(GPIOError) -> [Bool] {
        try lines.withLock { (state: inout Lines) throws(GPIOError) -> [Bool] in
            guard !state.closed else { throw .closed }
            var values: [Bool] = []
            for line in state.inputs {
                do throws(GPIOErrno) {
                    values.append(try calls.getValue(chip, line.id))
                } catch {
                    throw .readFailed(line: line.name, chip: chipLabel, role: line.role, errno: error)
                }
            }
            return values
        }
    }

    public func setOutput(_ index: Int, to value: Bool) throws(GPIOError) {
        try lines.withLock { (state: inout Lines) throws(GPIOError) in
            guard !state.closed else { throw .closed }
            guard state.outputs.indices.contains(index) else {
                throw .invalidRequest("no output \(index) (\(state.outputs.count) requested)")
            }
            let line = state.outputs[index]
            do throws(GPIOErrno) {
                try calls.setValue(chip, line.id, value)
            } catch {
                throw .writeFailed(line: line.name, chip: chipLabel, role: line.role, errno: error)
            }
        }
    }

    public func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge] {
        try waiting.withLock { (state: inout Waiting) throws(GPIOError) -> [GPIOEdge] in
            guard !state.closed else { throw .closed }
            guard state.requested else { throw .invalidRequest("no lines requested yet") }
            return try waitLocked(&state, timeoutNanoseconds: UInt64(max(0, timeoutNanoseconds)))
        }
    }

    /// Bounds the rounds of one wait; each round blocks until an edge, a debounce deadline or the
    /// timeout, so this many rounds take at least the timeout unless edges keep bouncing.
    private static let maximumRounds = 10_000

    private func waitLocked(_ state: inout Waiting, timeoutNanoseconds: UInt64) throws(GPIOError) -> [GPIOEdge] {
        var now = calls.monotonicNanoseconds()
        let deadline = now &+ timeoutNanoseconds
        var edges: [GPIOEdge] = state.debouncer.due(at: now)
        var round = 0
        while edges.isEmpty && round < Self.maximumRounds {
            round += 1
            var wait = deadline > now ? deadline - now : 0
            if let next = state.debouncer.nextDeadline {
                wait = min(wait, next > now ? next - now : 0)
            }
            let ready: [GPIODLineID]
            do throws(GPIOErrno) {
                ready = try calls.wait(chip, timeoutNanoseconds: Int64(clamping: wait))
            } catch {
                throw .waitFailed(chip: chipLabel, errno: error)
            }
            var raw: [(input: Int, edge: GPIODRawEdge)] = []
            for id in ready {
                guard let input = state.inputByID[id] else { continue }
                do throws(GPIOErrno) {
                    raw += try calls.readEdges(chip, id).map { (input, $0) }
                } catch {
                    let line = state.inputs[input]
                    throw .readFailed(line: line.name, chip: chipLabel, role: line.role, errno: error)
                }
            }
            // Per line the kernel's order is kept; across lines, timestamps decide.
            raw = raw.enumerated().sorted {
                ($0.element.edge.timestampNanoseconds, $0.offset) < ($1.element.edge.timestampNanoseconds, $1.offset)
            }.map(\.element)
            for (input, edge) in raw {
                if state.debouncer.isTracking(input) {
                    if let confirmed = state.debouncer.edge(
                        input: input, value: edge.rising, at: edge.timestampNanoseconds)
                    {
                        edges.append(confirmed)
                    }
                } else {
                    edges.append(
                        GPIOEdge(input: input, value: edge.rising, timestampNanoseconds: edge.timestampNanoseconds))
                }
            }
            now = calls.monotonicNanoseconds()
            edges += state.debouncer.due(at: now)
            if now >= deadline { break }
        }
        return edges.enumerated().sorted {
            ($0.element.timestampNanoseconds, $0.offset) < ($1.element.timestampNanoseconds, $1.offset)
        }.map(\.element)
    }

    public func close() {
        waiting.withLock { waitState in
            lines.withLock { lineState in
                guard !lineState.closed else { return }
                lineState.closed = true
                waitState.closed = true
                calls.close(chip)
            }
        }
    }

    private func consumerName(_ role: String) -> String {
        // The kernel keeps 31 bytes of a consumer name.
        String(decoding: Array("\(consumer):\(role)".utf8.prefix(31)), as: UTF8.self)
    }

    private func requestError(_ error: GPIOErrno, line: String, role: String) -> GPIOError {
        switch error.code {
        case GPIOErrno.noSuchEntry.code: .noSuchLine(line: line, chip: chipLabel, role: role)
        case GPIOErrno.busy.code: .lineBusy(line: line, chip: chipLabel, role: role)
        default: .requestFailed(line: line, chip: chipLabel, role: role, errno: error)
        }
    }

    private static func checkDistinct(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {
        var roleSeen: Set<String> = []
        var lineRole: [String: String] = [:]
        let all = inputs.map { ($0.role, $0.line) } + outputs.map { ($0.role, $0.line) }
        for (role, line) in all {
            guard roleSeen.insert(role).inserted else { throw .invalidRequest("role \(role) is given twice") }
            if let other = lineRole[line] {
                throw .invalidRequest("line \(line) is given to two roles, \(other) and \(role)")
            }
            lineRole[line] = role
        }
    }
}

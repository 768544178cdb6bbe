/// The deterministic stand-in for a GPIO chip, behind the same `GPIOBackend` protocol as
/// `LibgpiodBackend` (what NIOEmbedded's EmbeddedChannel is to a socket): a test or the demo
/// drives the input lines, now or at scheduled monotonic times, and reads back every output change.
///
/// - Inputs start inactive (an active-low input starts at a high level). `setInput(_:high:)` and
///   `scheduleInput(_:high:at:)` set the electrical level; edges carry the logical value, active-low
///   applied, and the timestamp given (now, or `startNanoseconds` + the offset).
/// - A level change becomes an edge when its time has come; setting the level a line already has
///   makes no edge. `waitForEdges` returns due edges in timestamp order (ties in the order they were
///   set), waits at most its timeout, and wakes as soon as an input is set or a scheduled change
///   falls due. Scheduling a change in the past delivers it at once, with its past timestamp.
/// - The simulated lines are clean: debounce is recorded in `inputSpecs` but not applied.
/// - Outputs: every change of value, and the initial value, is recorded with its timestamp.
public final class SimulatedGPIO: GPIOBackend {
    /// CLOCK_MONOTONIC nanoseconds that scheduled offsets count from.
    public let startNanoseconds: UInt64
    private let state: ConditionLock<State>

    /// One recorded output value.
    public struct OutputChange: Sendable, Hashable {
        public var output: Int
        public var role: String
        public var value: Bool
        public var timestampNanoseconds: UInt64
    }

    private struct LevelChange: Sendable {
        var input: Int
        var high: Bool
        var timestampNanoseconds: UInt64
        var sequence: Int
    }

    private struct State: Sendable {
        var inputs: [GPIOInputSpec] = []
        var outputs: [GPIOOutputSpec] = []
        var requested = false
        var closed = false
        var levels: [Bool] = []
        var outputValues: [Bool] = []
        var outputChanges: [OutputChange] = []
        /// Level changes, sorted by (timestamp, sequence); those from `nextDue` on are not due yet.
        /// Applied ones are skipped by index and dropped in bulk, and a change is placed by binary
        /// search: a trace of tens of thousands of changes (a soak run) is scheduled in
        /// milliseconds, and taking a due change does not move the rest under the lock.
        var scheduled: [LevelChange] = []
        var nextDue = 0
        var sequence = 0
        /// Edges due and not yet returned by `waitForEdges`.
        var edges: [GPIOEdge] = []

        /// The earliest change not yet due.
        var nextPending: LevelChange? { nextDue < scheduled.count ? scheduled[nextDue] : nil }

        mutating func applyDue(at now: UInt64) {
            while let first = nextPending, first.timestampNanoseconds <= now {
                nextDue += 1
                guard levels[first.input] != first.high else { continue }
                levels[first.input] = first.high
                edges.append(
                    GPIOEdge(
                        input: first.input, value: first.high != inputs[first.input].activeLow,
                        timestampNanoseconds: first.timestampNanoseconds))
            }
            if nextDue >= 1024 && nextDue * 2 >= scheduled.count {
                scheduled.removeFirst(nextDue)
                nextDue = 0
            }
        }

        mutating func insert(input: Int, high: Bool, at timestamp: UInt64) {
            sequence += 1
            let change = LevelChange(input: input, high: high, timestampNanoseconds: timestamp, sequence: sequence)
            // After every pending change that is not later (ties keep the order they were set in).
            var lower = nextDue
            var upper = scheduled.count
            while lower < upper {
                let middle = (lower + upper) / 2
                let other = scheduled[middle]
                if (other.timestampNanoseconds, other.sequence) > (change.timestampNanoseconds, change.sequence) {
                    upper = middle
                } else {
                    lower = middle + 1
                }
            }
            scheduled.insert(change, at: lower)
        }

        func inputIndex(_ role: String) throws(GPIOError) -> Int {
            guard !closed else { throw .closed }
            guard let index = inputs.firstIndex(where: { $0.role == role }) else {
                throw .invalidRequest("no simulated input with role \(role)")
            }
            return index
        }
    }

    public init(startNanoseconds: UInt64 = GPIOClock.monotonicNanoseconds()) {
        self.startNanoseconds = startNanoseconds
        state = ConditionLock(State())
    }

    // MARK: GPIOBackend

    public func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {
        try state.withLock { (state: inout State) throws(GPIOError) in
            guard !state.closed else { throw .closed }
            guard !state.requested else { throw .invalidRequest("lines were already requested") }
            let roles = inputs.map(\.role) + outputs.map(\.role)
            guard Set(roles).count == roles.count else { throw .invalidRequest("a role is given twice") }
            let now = GPIOClock.monotonicNanoseconds()
            state.inputs = inputs
            state.outputs = outputs
            state.levels = inputs.map(\.activeLow)
            state.outputValues = outputs.map(\.initial)
            state.outputChanges = outputs.enumerated().map {
                OutputChange(
                    output: $0.offset, role: $0.element.role, value: $0.element.initial, timestampNanoseconds: now)
            }
            state.requested = true
        }
    }

    public func readInputs() throws(GPIOError) -> [Bool] {
        try state.withLock { (state: inout State) throws(GPIOError) -> [Bool] in
            guard !state.closed else { throw .closed }
            state.applyDue(at: GPIOClock.monotonicNanoseconds())
            return zip(state.levels, state.inputs).map { level, spec in level != spec.activeLow }
        }
    }

    public func setOutput(_ index: Int, to value: Bool) throws(GPIOError) {
        try state.withLock { (state: inout State) throws(GPIOError) in
            guard !state.closed else { throw .closed }
            guard state.outputs.indices.contains(index) else {
                throw .invalidRequest("no output \(index) (\(state.outputs.count) requested)")
            }
            guard state.outputValues[index] != value else { return }
            state.outputValues[index] = value
            state.outputChanges.append(
                OutputChange(
                    output: index, role: state.outputs[index].role, value: value,
                    timestampNanoseconds: GPIOClock.monotonicNanoseconds()))
        }
    }

    public func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge] {
        let deadline = GPIOClock.monotonicNanoseconds() &+ UInt64(max(0, timeoutNanoseconds))
        return try state.waitLoop(maximumSteps: 100_000, exhausted: []) {
            (state: inout State, now: UInt64) throws(GPIOError) -> ConditionLock<State>.Step<[GPIOEdge]> in
            guard !state.closed else { throw .closed }
            state.applyDue(at: now)
            if !state.edges.isEmpty {
                let edges = state.edges
                state.edges = []
                return .done(edges)
            }
            if now >= deadline { return .done([]) }
            let wake = min(deadline, state.nextPending?.timestampNanoseconds ?? deadline)
            return .sleep(until: wake)
        }
    }

    public func close() {
        state.withLockBroadcasting { $0.closed = true }
    }

    // MARK: Driving the simulation

    /// Sets the electrical level of the input playing `role`, now.
    public func setInput(_ role: String, high: Bool) throws(GPIOError) {
        try state.withLockBroadcasting { (state: inout State) throws(GPIOError) in
            let index = try state.inputIndex(role)
            let now = GPIOClock.monotonicNanoseconds()
            state.applyDue(at: now)
            state.insert(input: index, high: high, at: now)
            state.applyDue(at: now)
        }
    }

    /// Sets the electrical level of the input playing `role` at `startNanoseconds` + `offset`.
    public func scheduleInput(_ role: String, high: Bool, at offsetNanoseconds: UInt64) throws(GPIOError) {
        try state.withLockBroadcasting { (state: inout State) throws(GPIOError) in
            let index = try state.inputIndex(role)
            state.insert(input: index, high: high, at: startNanoseconds &+ offsetNanoseconds)
        }
    }

    /// Every output value so far, the initial ones first, oldest first.
    public var outputChanges: [OutputChange] { state.withLock { $0.outputChanges } }

    /// The current value of the output playing `role`, if there is one.
    public func output(_ role: String) -> Bool? {
        state.withLock { state in state.outputs.firstIndex { $0.role == role }.map { state.outputValues[$0] } }
    }

    /// The inputs as requested (debounce included, though not simulated).
    public var inputSpecs: [GPIOInputSpec] { state.withLock { $0.inputs } }

    /// The outputs as requested.
    public var outputSpecs: [GPIOOutputSpec] { state.withLock { $0.outputs } }
}

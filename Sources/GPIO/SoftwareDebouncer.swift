/// Debounces input edges in software, for libgpiod 1.6 whose kernel interface (GPIO uAPI v1)
/// cannot: a pure value, fed raw edges and the time, that says which edges count.
///
/// The semantics, per debounced input with period P:
/// - A raw edge to the value the input already has (as last reported) cancels any pending change:
///   the line bounced back before it settled, and nothing is reported.
/// - A raw edge to the other value at time t makes that change pending since t, replacing any
///   earlier pending change.
/// - A pending change is confirmed once the line has kept its value for P, that is when no raw
///   edge came in (t, t + P]. It is reported with the timestamp t + P: the moment it had been
///   stable for the whole period. This matches the kernel's debouncer (uAPI v2, libgpiod 2.x),
///   which stamps a debounced edge when its debounce timer expires.
/// - So a pulse shorter than P is never reported; a change is reported no earlier than P after
///   the line settled; and the reported value always differs from the one reported before it.
///
/// The initial value is the one read when the line was requested.
struct SoftwareDebouncer: Sendable {
    private struct Line: Sendable {
        var period: UInt64
        var stable: Bool
        var pending: (value: Bool, since: UInt64)?

        var deadline: UInt64? { pending.map { $0.since &+ period } }
    }

    private var lines: [Int: Line] = [:]

    /// Starts debouncing `input` with `periodNanoseconds` (> 0), its current value being `value`.
    mutating func track(input: Int, periodNanoseconds: UInt64, value: Bool) {
        lines[input] = Line(period: periodNanoseconds, stable: value, pending: nil)
    }

    func isTracking(_ input: Int) -> Bool { lines[input] != nil }

    /// Feeds one raw edge of a tracked input; returns the edge it confirms, if the input's pending
    /// change had already been stable for the period when this edge came.
    mutating func edge(input: Int, value: Bool, at time: UInt64) -> GPIOEdge? {
        guard var line = lines[input] else { return nil }
        var confirmed: GPIOEdge?
        if let pending = line.pending, let deadline = line.deadline, deadline <= time {
            confirmed = GPIOEdge(input: input, value: pending.value, timestampNanoseconds: deadline)
            line.stable = pending.value
            line.pending = nil
        }
        line.pending = value == line.stable ? nil : (value, time)
        lines[input] = line
        return confirmed
    }

    /// The edges confirmed by `now`, oldest first.
    mutating func due(at now: UInt64) -> [GPIOEdge] {
        var confirmed: [GPIOEdge] = []
        for (input, var line) in lines {
            guard let pending = line.pending, let deadline = line.deadline, deadline <= now else { continue }
            confirmed.append(GPIOEdge(input: input, value: pending.value, timestampNanoseconds: deadline))
            line.stable = pending.value
            line.pending = nil
            lines[input] = line
        }
        return confirmed.sorted { ($0.timestampNanoseconds, $0.input) < ($1.timestampNanoseconds, $1.input) }
    }

    /// When the earliest pending change will be confirmed, if any is pending.
    var nextDeadline: UInt64? { lines.values.compactMap(\.deadline).min() }
}

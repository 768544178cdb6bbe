/// The internal pull resistor to ask for on an input line.
public enum GPIOBias: Sendable, Hashable {
    /// Leave whatever the firmware or device tree set.
    case asIs
    /// Neither pull-up nor pull-down (the circuit drives the line, e.g. an opto-coupler).
    case disabled
    case pullUp
    case pullDown
}

/// One input line to request: which role it plays in the van, and how it is wired.
public struct GPIOInputSpec: Sendable, Hashable {
    /// The role in the van's words: "ignition", "door", "button", "seat.1", ...
    public var role: String
    /// The line's name on the chip (`gpioinfo` shows it), e.g. "GPIO17"; never a number.
    public var line: String
    /// True when the line reads low while the signal is active (e.g. a switch to ground).
    public var activeLow: Bool
    public var bias: GPIOBias
    /// How long the line must be stable before a change counts; 0 for none.
    public var debounceMilliseconds: UInt32

    public init(
        role: String, line: String, activeLow: Bool = false, bias: GPIOBias = .asIs, debounceMilliseconds: UInt32 = 0
    ) {
        self.role = role
        self.line = line
        self.activeLow = activeLow
        self.bias = bias
        self.debounceMilliseconds = debounceMilliseconds
    }
}

/// One output line to request: a buzzer, a relay or an LED.
public struct GPIOOutputSpec: Sendable, Hashable {
    /// The role in the van's words: "buzzer", "horn", "hazard", "status-led", ...
    public var role: String
    /// The line's name on the chip, e.g. "GPIO23"; never a number.
    public var line: String
    /// True when driving the line low switches the load on.
    public var activeLow: Bool
    /// The logical value the line is driven to as soon as it is requested.
    public var initial: Bool

    public init(role: String, line: String, activeLow: Bool = false, initial: Bool = false) {
        self.role = role
        self.line = line
        self.activeLow = activeLow
        self.initial = initial
    }
}

/// A change of one input, as the kernel (or the simulator) saw it.
public struct GPIOEdge: Sendable, Hashable, CustomStringConvertible {
    /// Index of the input in the `inputs` array given to `GPIOBackend.request(inputs:outputs:)`.
    public var input: Int
    /// The logical value after the edge, active-low already applied: true = active.
    public var value: Bool
    /// When it happened, CLOCK_MONOTONIC nanoseconds (the kernel's event timestamp).
    public var timestampNanoseconds: UInt64

    public init(input: Int, value: Bool, timestampNanoseconds: UInt64) {
        self.input = input
        self.value = value
        self.timestampNanoseconds = timestampNanoseconds
    }

    public var description: String { "input \(input) -> \(value ? 1 : 0) at \(timestampNanoseconds) ns" }
}

/// Where GPIO lines come from: libgpiod on a real chip (`LibgpiodBackend`) or a test double driven
/// by a test or a demo (`SimulatedGPIO`).
///
/// The life of a backend: `request(inputs:outputs:)` once, then any number of `readInputs()`,
/// `setOutput(_:to:)` and `waitForEdges(timeoutNanoseconds:)`, then `close()`. One thread (the
/// `GPIOInputReader`'s) waits for edges while others may read inputs and set outputs.
public protocol GPIOBackend: AnyObject, Sendable {
    /// Requests every line, inputs with edge detection on both edges. All or nothing: a failure
    /// closes the backend, releasing whatever it had requested.
    func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError)

    /// The current logical value of every input, in request order.
    func readInputs() throws(GPIOError) -> [Bool]

    /// Drives output `index` (in request order) to a logical value.
    func setOutput(_ index: Int, to value: Bool) throws(GPIOError)

    /// Waits up to `timeoutNanoseconds` (negative counts as 0) for input edges and returns those
    /// that arrived, oldest first; an empty array when the time ran out.
    func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge]

    /// Releases every line. Later calls throw `GPIOError.closed`; closing again does nothing.
    func close()
}

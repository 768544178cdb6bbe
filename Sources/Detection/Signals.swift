/// What a signal measures, in SPEC.md's words.
public enum SensorKind: String, Sendable, CaseIterable {
    case ignition, door, button, seat, presence, motion, temperature, co2

    /// Seats, radars and PIRs are what can show a child is aboard.
    public var isEvidence: Bool {
        switch self {
        case .seat, .presence, .motion: true
        default: false
        }
    }
}

/// One declared signal: its name in traces, config and alerts, and its kind.
public struct SensorSpec: Equatable, Sendable {
    public var id: String
    public var kind: SensorKind

    public init(id: String, kind: SensorKind) {
        self.id = id
        self.kind = kind
    }

    /// The three built-in signals every van has, which traces need not declare.
    public static let builtIns: [SensorSpec] = [
        SensorSpec(id: "ignition", kind: .ignition),
        SensorSpec(id: "door", kind: .door),
        SensorSpec(id: "button", kind: .button),
    ]
}

/// A reading of one signal: on/off, or a number (a weight in kg, °C, ppm).
public enum Reading: Equatable, Sendable {
    case flag(Bool)
    case number(Double)
}

/// One change in the world, as the edges decode it, for the sensor at `sensor` (an index into the
/// engine's sensor table).
public enum Input: Equatable, Sendable {
    /// The sensor now reads this.
    case reading(sensor: Int, Reading)
    /// The sensor stopped answering, answers garbage or sticks; `nil` means it is back.
    case fault(sensor: Int, reason: String?)
}

/// Seconds on whatever clock drives the engine: trace time in replay, the monotonic clock in the van.
public typealias Seconds = Double

/// The detection policy of SPEC.md: every value has a default and bounds, and no value outside
/// the bounds is ever accepted, so no setting can disable detection.
public struct Policy: Equatable, Sendable {
    /// After ignition off, the driver has this long to press CHECK at the rear.
    public var checkWindow: Seconds = 120
    /// After a CHECK press or a door closing, sensor evidence is ignored this long.
    public var exitGrace: Seconds = 30
    /// A seat occupied this long, continuously, is evidence.
    public var seatConfirm: Seconds = 5
    /// Radar presence this long, continuously, is evidence.
    public var presenceConfirm: Seconds = 10
    /// This many motion pulses within `motionWindow` is evidence.
    public var motionPulses: Int = 2
    /// The window in which `motionPulses` pulses must fall.
    public var motionWindow: Seconds = 60
    /// A seat that reports a weight counts only at or above this many kilograms.
    public var childMinWeightKg: Double = 8
    /// An alarm not acknowledged rises from level 1 to level 2 after this long.
    public var escalateAfter: Seconds = 60
    /// A press this long at the rear button acknowledges an alarm.
    public var ackHold: Seconds = 2
    /// After an acknowledgement, if evidence is still there this long after, the alarm comes back.
    public var recheckAfter: Seconds = 120
    /// How long after ignition off the sensors are watched.
    public var monitorFor: Seconds = 3600
    /// Cabin temperature at which an alarm jumps straight to level 2 and is marked urgent.
    public var heatC: Double = 35

    public init() {}

    /// Every setting by its SPEC.md name, with its bounds, in the order of SPEC.md's table.
    public static let settings: [PolicySetting] = [
        PolicySetting("check_window_s", 30...120, \.checkWindow),
        PolicySetting("exit_grace_s", 10...60, \.exitGrace),
        PolicySetting("seat_confirm_s", 1...30, \.seatConfirm),
        PolicySetting("presence_confirm_s", 1...60, \.presenceConfirm),
        PolicySetting("motion_pulses", 2...50, integral: \.motionPulses),
        PolicySetting("motion_window_s", 10...300, \.motionWindow),
        PolicySetting("child_min_weight_kg", 3...15, \.childMinWeightKg),
        PolicySetting("escalate_after_s", 10...120, \.escalateAfter),
        PolicySetting("ack_hold_s", 1...5, \.ackHold),
        PolicySetting("recheck_after_s", 30...600, \.recheckAfter),
        PolicySetting("monitor_for_s", 600...14400, \.monitorFor),
        PolicySetting("heat_c", 28...45, \.heatC),
    ]

    /// The setting called `name`, or nil when SPEC.md has no such setting.
    public static func setting(named name: String) -> PolicySetting? {
        settings.first { $0.name == name }
    }

    /// Sets the value called `name`, refusing unknown names, non-integers where an integer is
    /// needed, and anything outside the bounds.
    public mutating func set(_ name: String, to value: Double) throws(PolicyError) {
        guard let setting = Policy.setting(named: name) else {
            throw .unknownSetting(name)
        }
        try setting.apply(value, to: &self)
    }

    /// The value of the setting called `name`.
    public func value(of setting: PolicySetting) -> Double {
        setting.read(self)
    }
}

/// One named, bounded value of the policy.
public struct PolicySetting: Sendable {
    public let name: String
    public let bounds: ClosedRange<Double>
    public let integral: Bool
    let read: @Sendable (Policy) -> Double
    let write: @Sendable (inout Policy, Double) -> Void

    init(_ name: String, _ bounds: ClosedRange<Double>, _ keyPath: WritableKeyPath<Policy, Double> & Sendable) {
        self.name = name
        self.bounds = bounds
        self.integral = false
        self.read = { $0[keyPath: keyPath] }
        self.write = { $0[keyPath: keyPath] = $1 }
    }

    init(_ name: String, _ bounds: ClosedRange<Double>, integral keyPath: WritableKeyPath<Policy, Int> & Sendable) {
        self.name = name
        self.bounds = bounds
        self.integral = true
        self.read = { Double($0[keyPath: keyPath]) }
        self.write = { $0[keyPath: keyPath] = Int($1) }
    }

    /// The bounds as a person reads them: "30–120".
    public var boundsText: String {
        "\(formatNumber(bounds.lowerBound))–\(formatNumber(bounds.upperBound))"
    }

    func apply(_ value: Double, to policy: inout Policy) throws(PolicyError) {
        guard value.isFinite, bounds.contains(value) else {
            throw .outOfBounds(name: name, value: value, bounds: boundsText)
        }
        if integral && value.rounded() != value {
            throw .notAWholeNumber(name: name, value: value)
        }
        write(&policy, value)
    }
}

/// Why a policy value was refused.
public enum PolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownSetting(String)
    case outOfBounds(name: String, value: Double, bounds: String)
    case notAWholeNumber(name: String, value: Double)
    case notANumber(name: String)

    public var description: String {
        switch self {
        case .unknownSetting(let name):
            let known = Policy.settings.map(\.name).joined(separator: ", ")
            return "unknown policy setting \"\(name)\" (known: \(known))"
        case .outOfBounds(let name, let value, let bounds):
            return "\(name) = \(formatNumber(value)) is out of bounds \(bounds)"
        case .notAWholeNumber(let name, let value):
            return "\(name) = \(formatNumber(value)) must be a whole number"
        case .notANumber(let name):
            return "\(name) must be a number"
        }
    }
}

/// Shortest text for a number: 640 rather than 640.0, 640.3 as it is.
public func formatNumber(_ value: Double) -> String {
    if value.isFinite, value.rounded() == value, abs(value) < 1e15 {
        return String(Int64(value))
    }
    return value.description
}

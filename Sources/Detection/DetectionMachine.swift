/// The detection state machine of SPEC.md: after the ignition goes off it runs the check window,
/// watches the seats, radars and PIRs, and raises, escalates, silences and clears alarms.
///
/// It is a plain value: each mutating method takes one input (a reading, a fault, a timer that
/// fired) at the time it is given and appends what to do to `actions`: timers to start or cancel,
/// sounds, contract events and alerts. It reads no clock and does no I/O. The driver (replay, the
/// daemon) runs the timers and calls `timerFired` when one is due; timers due at an instant fire
/// before inputs at that instant, except the check window, which fires after them.
public struct DetectionMachine: Sendable {
    /// Where the van is in its trip.
    public enum State: Equatable, Sendable {
        /// Powered up, the ignition not yet seen on or turned off.
        case parked
        /// Ignition on: nothing sounds.
        case driving
        /// Ignition off at `offAt`; the driver has until `deadline` to press CHECK.
        case checkWindow(offAt: Seconds, deadline: Seconds)
        /// Checked, or the window ran out: the sensors are watched.
        case closed(offAt: Seconds)
        /// Monitoring is over and the trip closed; an alarm still active is carried to its end.
        case monitoringEnded(offAt: Seconds)
    }

    /// One alarm: why it started, why it sounds now, and how loud.
    public struct Alarm: Equatable, Sendable {
        /// `checkMissed` (ended by a CHECK press) or `presence` (ended only by an acknowledgement).
        public var origin: AlarmReason
        /// What the alarm reports now; `heat` once the cabin got too hot.
        public var reason: AlarmReason
        public var level: Int
        public var since: Seconds
    }

    /// Whether an alarm is active.
    public enum AlarmState: Equatable, Sendable {
        case quiet
        case sounding(Alarm)
        /// Acknowledged at the rear button; the evidence is looked at again at `recheckAt`.
        case silenced(Alarm, recheckAt: Seconds)
    }

    public internal(set) var state: State = .parked
    public internal(set) var alarm: AlarmState = .quiet
    public let policy: Policy
    public let sensors: [SensorSpec]
    /// Inputs naming a sensor the machine does not have; they are dropped, never trapped on.
    public private(set) var rejectedInputs = 0

    private struct SensorState {
        let kind: SensorKind
        /// Seat occupied, radar or PIR on, door open, button pressed, ignition on.
        var active = false
        var activeSince: Seconds = 0
        /// Active continuously for its confirm time (seats and radars).
        var confirmed = false
        var faulty = false
        /// The last numeric reading: kg, °C or ppm.
        var number: Double?
    }

    private var table: [SensorState]
    /// Motion pulses counted while watching: a ring of the last `motionPulses` per PIR.
    private var pulseTimes: [Seconds]
    private var pulseCount: [Int]
    private var pulseNext: [Int]
    private var pulseSlot: [Int]
    private let doorIndices: [Int]
    private let buttonIndices: [Int]
    private let ignitionIndices: [Int]
    private let temperatureIndices: [Int]
    private let co2Indices: [Int]
    private let evidenceIndices: [Int]

    private var doorOpen = false
    private var buttonDown = false
    var ignitionOn = false
    var graceEnd: Seconds = -.infinity
    var sound: SoundPattern = .silent
    var trip = TripStats()

    struct TripStats: Equatable {
        var checked: CheckOutcome = .notChecked
        var checkedAt: Seconds?
        var alarms = 0
        var escalations = 0
        var acknowledgements = 0
        var faults = 0
        var degraded = false
        var maxTemperature: Double?
    }

    /// A machine for a van with these sensors (the built-ins need not be listed) under `policy`.
    public init(sensors: [SensorSpec], policy: Policy) {
        let all = DetectionMachine.sensorTable(sensors)
        self.sensors = all
        self.policy = policy
        self.table = all.map { SensorState(kind: $0.kind) }
        func indices(_ kind: SensorKind) -> [Int] { all.indices.filter { all[$0].kind == kind } }
        doorIndices = indices(.door)
        buttonIndices = indices(.button)
        ignitionIndices = indices(.ignition)
        temperatureIndices = indices(.temperature)
        co2Indices = indices(.co2)
        evidenceIndices = all.indices.filter { all[$0].kind.isEvidence }
        var slots = [Int](repeating: -1, count: all.count)
        var motionCount = 0
        for index in all.indices where all[index].kind == .motion {
            slots[index] = motionCount
            motionCount += 1
        }
        pulseSlot = slots
        pulseTimes = [Seconds](repeating: 0, count: motionCount * policy.motionPulses)
        pulseCount = [Int](repeating: 0, count: motionCount)
        pulseNext = [Int](repeating: 0, count: motionCount)
    }

    /// The machine's sensor table for these declared sensors: them in order, then each built-in
    /// signal not declared. Inputs name sensors by their index in this table.
    public static func sensorTable(_ declared: [SensorSpec]) -> [SensorSpec] {
        var all = declared
        for builtIn in SensorSpec.builtIns where !all.contains(where: { $0.id == builtIn.id }) {
            all.append(builtIn)
        }
        return all
    }

    /// The index of the sensor called `id`.
    public func index(of id: String) -> Int? {
        sensors.firstIndex { $0.id == id }
    }

    /// The highest cabin temperature from a sensor that works, if any.
    public var cabinTemperature: Double? {
        var best: Double?
        for index in temperatureIndices where !table[index].faulty {
            if let value = table[index].number, value > (best ?? -.infinity) { best = value }
        }
        return best
    }

    /// What the buzzer, horn and hazard lights are doing now.
    public var currentSound: SoundPattern { sound }

    /// Whether the sensor at `index` is faulty now.
    public func isFaulty(_ index: Int) -> Bool { table.indices.contains(index) && table[index].faulty }

    // MARK: - Inputs

    /// Power-up: the self-test chirp tells the driver the system is alive; then whatever this state
    /// sounds (after a restart, an alarm that was sounding sounds again).
    public mutating func powerUp(into actions: inout [Action]) {
        let resumed = sound
        actions.append(.sound(.selfTest))
        sound = .selfTest
        setSound(resumed, into: &actions)
    }

    /// One input at time `now`.
    public mutating func handle(_ input: Input, at now: Seconds, into actions: inout [Action]) {
        switch input {
        case .reading(let index, let reading):
            guard table.indices.contains(index) else {
                rejectedInputs += 1
                return
            }
            read(reading, sensor: index, at: now, into: &actions)
        case .fault(let index, let reason):
            guard table.indices.contains(index) else {
                rejectedInputs += 1
                return
            }
            if let reason {
                fault(index, reason: reason, at: now, into: &actions)
            } else {
                recover(index, at: now, into: &actions)
            }
        }
    }

    private mutating func read(_ reading: Reading, sensor index: Int, at now: Seconds, into actions: inout [Action]) {
        let kind = table[index].kind
        switch kind {
        case .seat:
            let occupied: Bool
            switch reading {
            case .flag(let on):
                occupied = on
                table[index].number = nil
            case .number(let kg):
                occupied = kg >= policy.childMinWeightKg
                table[index].number = kg
            }
            setLevel(index, occupied, at: now, confirm: policy.seatConfirm, into: &actions)
        case .presence:
            setLevel(index, reading.isOn, at: now, confirm: policy.presenceConfirm, into: &actions)
        case .motion:
            let on = reading.isOn
            table[index].active = on
            // Every "on" reading is a pulse; a PIR that sticks on gives no new ones.
            if on && !table[index].faulty && countsEvidence(at: now) {
                recordPulse(index, at: now)
                evaluate(at: now, into: &actions)
            }
        case .door:
            table[index].active = reading.isOn
            updateDoor(at: now, into: &actions)
        case .button:
            table[index].active = reading.isOn
            let down = buttonIndices.contains { table[$0].active }
            if down && !buttonDown {
                buttonDown = true
                press(at: now, into: &actions)
            } else if !down && buttonDown {
                buttonDown = false
                actions.append(.cancelTimer(.ackHold))
            }
        case .ignition:
            table[index].active = reading.isOn
            let on = ignitionIndices.contains { table[$0].active }
            if on && !ignitionOn {
                ignitionOn = true
                ignitionTurnedOn(at: now, into: &actions)
            } else if !on && (ignitionOn || state == .parked) {
                // An explicit "off" with no trip yet starts one too: the van was parked at power-up.
                ignitionOn = false
                ignitionTurnedOff(at: now, into: &actions)
            }
        case .temperature:
            guard case .number(let celsius) = reading else { return }
            table[index].number = celsius
            if !table[index].faulty {
                if isTripActive { trip.maxTemperature = max(trip.maxTemperature ?? celsius, celsius) }
                if isHot { heatEscalate(at: now, into: &actions) }
            }
        case .co2:
            if case .number(let ppm) = reading { table[index].number = ppm }
        }
    }

    /// A seat or radar turned on or off: its confirm timer starts or stops.
    private mutating func setLevel(
        _ index: Int, _ on: Bool, at now: Seconds, confirm: Seconds, into actions: inout [Action]
    ) {
        guard on != table[index].active else { return }
        table[index].active = on
        table[index].confirmed = false
        guard !table[index].faulty else { return }
        if on {
            table[index].activeSince = now
            actions.append(.startTimer(.confirm(index), at: now + confirm))
        } else {
            actions.append(.cancelTimer(.confirm(index)))
        }
    }

    private mutating func fault(_ index: Int, reason: String, at now: Seconds, into actions: inout [Action]) {
        guard !table[index].faulty else { return }
        table[index].faulty = true
        table[index].confirmed = false
        switch table[index].kind {
        case .seat, .presence:
            actions.append(.cancelTimer(.confirm(index)))
        case .motion:
            pulseCount[pulseSlot[index]] = 0
        case .door:
            updateDoor(at: now, into: &actions)
        default:
            break
        }
        if isTripActive {
            trip.faults += 1
            trip.degraded = true
        }
        queueAlert(.sensorFault, at: now, sensors: [index], fault: reason, into: &actions)
    }

    private mutating func recover(_ index: Int, at now: Seconds, into actions: inout [Action]) {
        guard table[index].faulty else { return }
        table[index].faulty = false
        queueAlert(.sensorRecovered, at: now, sensors: [index], into: &actions)
        switch table[index].kind {
        case .seat, .presence:
            // What happened while it was faulty is unknown: confirmation starts again now.
            if table[index].active {
                table[index].activeSince = now
                let confirm = table[index].kind == .seat ? policy.seatConfirm : policy.presenceConfirm
                actions.append(.startTimer(.confirm(index), at: now + confirm))
            }
        case .door:
            updateDoor(at: now, into: &actions)
        case .temperature:
            if isHot { heatEscalate(at: now, into: &actions) }
        default:
            break
        }
    }

    /// A door that opens stops detection; one that closes starts exit grace. A faulty door switch
    /// counts as shut, so a broken switch can never hold detection off.
    private mutating func updateDoor(at now: Seconds, into actions: inout [Action]) {
        let open = doorIndices.contains { table[$0].active && !table[$0].faulty }
        guard open != doorOpen else { return }
        doorOpen = open
        if !open { startGrace(at: now, into: &actions) }
    }

    private mutating func startGrace(at now: Seconds, into actions: inout [Action]) {
        let end = now + policy.exitGrace
        guard end > graceEnd else { return }
        graceEnd = end
        actions.append(.startTimer(.exitGrace, at: end))
    }

    // MARK: - Timers

    /// A timer the machine asked for is due.
    public mutating func timerFired(_ timer: TimerID, at now: Seconds, into actions: inout [Action]) {
        switch timer {
        case .confirm(let index):
            guard table.indices.contains(index), table[index].active, !table[index].faulty else { return }
            table[index].confirmed = true
            evaluate(at: now, into: &actions)
        case .exitGrace:
            evaluate(at: now, into: &actions)
        case .checkWindow:
            guard case .checkWindow(let offAt, _) = state else { return }
            state = .closed(offAt: offAt)
            startAlarm(origin: .checkMissed, at: now, into: &actions)
            evaluate(at: now, into: &actions)
        case .escalation:
            guard case .sounding(var current) = alarm, current.level == 1 else { return }
            current.level = 2
            alarm = .sounding(current)
            trip.escalations += 1
            actions.append(.event(.alarm(level: 2, reason: current.reason), at: now))
            queueAlert(.alarmEscalated, at: now, sensors: evidenceSensors(at: now), into: &actions)
            setSound(.level2, into: &actions)
        case .ackHold:
            guard buttonDown, case .sounding(let current) = alarm, current.origin == .presence else { return }
            alarm = .silenced(current, recheckAt: now + policy.recheckAfter)
            trip.acknowledgements += 1
            actions.append(.cancelTimer(.escalation))
            actions.append(.event(.silenced, at: now))
            queueAlert(.alarmAcknowledged, at: now, level: current.level, reason: current.reason, into: &actions)
            setSound(.silent, into: &actions)
            actions.append(.startTimer(.recheck, at: now + policy.recheckAfter))
        case .recheck:
            guard case .silenced(let previous, _) = alarm else { return }
            if hasEvidence(at: now) {
                alarm = .quiet
                startAlarm(origin: .presence, at: now, into: &actions)
            } else {
                alarm = .quiet
                actions.append(.event(.alarmCleared, at: now))
                queueAlert(.alarmCleared, at: now, level: 0, reason: previous.reason, into: &actions)
            }
        case .monitorEnd:
            guard case .closed(let offAt) = state else { return }
            closeTrip(offAt: offAt, by: .monitoringEnded, at: now, into: &actions)
            state = .monitoringEnded(offAt: offAt)
        }
    }

    // MARK: - The trip

    private var isTripActive: Bool {
        switch state {
        case .checkWindow, .closed, .monitoringEnded: true
        case .parked, .driving: false
        }
    }

    private mutating func ignitionTurnedOff(at now: Seconds, into actions: inout [Action]) {
        switch state {
        case .parked, .driving:
            break
        case .checkWindow, .closed, .monitoringEnded:
            return
        }
        let deadline = now + policy.checkWindow
        state = .checkWindow(offAt: now, deadline: deadline)
        trip = TripStats()
        trip.degraded = table.contains { $0.faulty }
        trip.maxTemperature = cabinTemperature
        for slot in pulseCount.indices { pulseCount[slot] = 0 }
        actions.append(.event(.reminder, at: now))
        setSound(.reminder, into: &actions)
        actions.append(.startTimer(.checkWindow, at: deadline))
        actions.append(.startTimer(.monitorEnd, at: now + policy.monitorFor))
    }

    private mutating func ignitionTurnedOn(at now: Seconds, into actions: inout [Action]) {
        let offAt: Seconds
        let tripOpen: Bool
        switch state {
        case .parked, .driving:
            state = .driving
            return
        case .checkWindow(let at, _), .closed(let at):
            offAt = at
            tripOpen = true
        case .monitoringEnded(let at):
            offAt = at
            tripOpen = false
        }
        let wasActive = alarm != .quiet
        if case .sounding(let current) = alarm {
            clearAlarm(current, at: now, into: &actions)
        } else if case .silenced(let current, _) = alarm {
            clearAlarm(current, at: now, into: &actions)
        }
        for timer in [TimerID.checkWindow, .monitorEnd, .escalation, .recheck, .ackHold] {
            actions.append(.cancelTimer(timer))
        }
        if tripOpen {
            closeTrip(offAt: offAt, by: .ignitionOn, at: now, alarmActive: wasActive, into: &actions)
        }
        state = .driving
        setSound(.silent, into: &actions)
    }

    private mutating func closeTrip(
        offAt: Seconds, by end: TripEnd, at now: Seconds, alarmActive: Bool? = nil, into actions: inout [Action]
    ) {
        let summary = TripSummary(
            ignitionOffAt: offAt, closedAt: now, closedBy: end, checked: trip.checked, checkedAt: trip.checkedAt,
            alarms: trip.alarms, escalations: trip.escalations, acknowledgements: trip.acknowledgements,
            faults: trip.faults, degraded: trip.degraded, alarmActiveAtClose: alarmActive ?? (alarm != .quiet),
            maxTemperatureC: trip.maxTemperature)
        queueAlert(.tripClosed, at: now, trip: summary, into: &actions)
    }

    /// A press of the rear button (its leading edge). Any press during the window is the check; a
    /// press ends a check_missed alarm; every press starts exit grace and may become an
    /// acknowledgement if held.
    private mutating func press(at now: Seconds, into actions: inout [Action]) {
        switch state {
        case .parked, .driving:
            return
        case .checkWindow(let offAt, _):
            state = .closed(offAt: offAt)
            actions.append(.cancelTimer(.checkWindow))
            trip.checked = .inWindow
            trip.checkedAt = now
            actions.append(.event(.checked, at: now))
            setSound(.silent, into: &actions)
        case .closed, .monitoringEnded:
            if trip.checked == .notChecked {
                trip.checked = .late
                trip.checkedAt = now
                actions.append(.event(.checked, at: now))
                if case .sounding(let current) = alarm, current.origin == .checkMissed {
                    clearAlarm(current, at: now, into: &actions)
                }
            }
        }
        startGrace(at: now, into: &actions)
        actions.append(.startTimer(.ackHold, at: now + policy.ackHold))
    }

    // MARK: - Alarms

    /// Sensor evidence counts while the van is closed (or an alarm is carried past monitoring),
    /// the doors are shut and exit grace is over.
    private func countsEvidence(at now: Seconds) -> Bool {
        switch state {
        case .closed, .monitoringEnded:
            return !doorOpen && now >= graceEnd
        case .parked, .driving, .checkWindow:
            return false
        }
    }

    private var isHot: Bool {
        guard let celsius = cabinTemperature else { return false }
        return celsius >= policy.heatC
    }

    /// Whether any working seat, radar or PIR shows a child now.
    private func hasEvidence(at now: Seconds) -> Bool {
        for index in evidenceIndices where shows(index, at: now) { return true }
        return false
    }

    private func evidenceSensors(at now: Seconds) -> [Int] {
        evidenceIndices.filter { shows($0, at: now) }
    }

    private func shows(_ index: Int, at now: Seconds) -> Bool {
        let sensor = table[index]
        guard !sensor.faulty else { return false }
        if sensor.kind != .motion { return sensor.confirmed }
        let slot = pulseSlot[index]
        let needed = policy.motionPulses
        guard pulseCount[slot] >= needed else { return false }
        // The ring holds exactly the last `needed` pulses; the oldest sits where the next goes.
        let oldest = pulseTimes[slot * needed + pulseNext[slot]]
        return oldest >= now - policy.motionWindow
    }

    private mutating func recordPulse(_ index: Int, at now: Seconds) {
        let slot = pulseSlot[index]
        let needed = policy.motionPulses
        pulseTimes[slot * needed + pulseNext[slot]] = now
        pulseNext[slot] = (pulseNext[slot] + 1) % needed
        pulseCount[slot] = min(pulseCount[slot] + 1, needed)
    }

    /// Rule 4: while closed, outside exit grace and with the doors shut, confirmed evidence raises a
    /// presence alarm, or turns a sounding check_missed alarm into one.
    private mutating func evaluate(at now: Seconds, into actions: inout [Action]) {
        guard case .closed = state, countsEvidence(at: now) else { return }
        switch alarm {
        case .quiet:
            if hasEvidence(at: now) { startAlarm(origin: .presence, at: now, into: &actions) }
        case .sounding(var current) where current.origin == .checkMissed:
            guard hasEvidence(at: now) else { return }
            current.origin = .presence
            if current.reason == .checkMissed { current.reason = .presence }
            alarm = .sounding(current)
            actions.append(.event(.alarm(level: current.level, reason: .presence), at: now))
            queueAlert(.presenceAlarm, at: now, reason: .presence, sensors: evidenceSensors(at: now), into: &actions)
        case .sounding, .silenced:
            return
        }
    }

    private mutating func startAlarm(origin: AlarmReason, at now: Seconds, into actions: inout [Action]) {
        alarm = .sounding(Alarm(origin: origin, reason: origin, level: 1, since: now))
        trip.alarms += 1
        actions.append(.event(.alarm(level: 1, reason: origin), at: now))
        let type: AlertType = origin == .checkMissed ? .checkMissed : .presenceAlarm
        queueAlert(type, at: now, sensors: evidenceSensors(at: now), into: &actions)
        setSound(.level1, into: &actions)
        actions.append(.startTimer(.escalation, at: now + policy.escalateAfter))
        if isHot { heatEscalate(at: now, into: &actions) }
    }

    /// Rule 6: a hot cabin during an alarm takes it to level 2 at once, urgent.
    private mutating func heatEscalate(at now: Seconds, into actions: inout [Action]) {
        guard case .sounding(var current) = alarm, current.reason != .heat else { return }
        if current.level == 1 {
            trip.escalations += 1
            actions.append(.cancelTimer(.escalation))
        }
        current.level = 2
        current.reason = .heat
        alarm = .sounding(current)
        actions.append(.event(.alarm(level: 2, reason: .heat), at: now))
        queueAlert(.alarmEscalated, at: now, sensors: evidenceSensors(at: now), into: &actions)
        setSound(.level2, into: &actions)
    }

    private mutating func clearAlarm(_ current: Alarm, at now: Seconds, into actions: inout [Action]) {
        alarm = .quiet
        actions.append(.cancelTimer(.escalation))
        actions.append(.cancelTimer(.recheck))
        actions.append(.event(.alarmCleared, at: now))
        queueAlert(.alarmCleared, at: now, level: 0, reason: current.reason, into: &actions)
        setSound(.silent, into: &actions)
    }

    private mutating func setSound(_ pattern: SoundPattern, into actions: inout [Action]) {
        guard pattern != sound else { return }
        sound = pattern
        actions.append(.sound(pattern))
    }

    private func queueAlert(
        _ type: AlertType, at now: Seconds, level: Int? = nil, reason: AlarmReason? = nil, sensors: [Int] = [],
        fault: String? = nil, trip summary: TripSummary? = nil, into actions: inout [Action]
    ) {
        var currentLevel = 0
        var currentReason: AlarmReason?
        if case .sounding(let current) = alarm {
            currentLevel = current.level
            currentReason = current.reason
        }
        let temperature = cabinTemperature
        let urgent = currentReason == .heat || (currentLevel > 0 && isHot)
        var co2: Double?
        for index in co2Indices where !table[index].faulty { co2 = table[index].number ?? co2 }
        actions.append(
            .queueAlert(
                Alert(
                    type: type, at: now, level: level ?? currentLevel, reason: reason ?? currentReason, urgent: urgent,
                    sensors: sensors, temperatureC: temperature, co2ppm: co2, fault: fault, trip: summary)))
    }
}

extension Reading {
    /// On/off as a boolean signal reads it: a number counts as on when it is not zero.
    var isOn: Bool {
        switch self {
        case .flag(let on): on
        case .number(let value): value != 0
        }
    }
}

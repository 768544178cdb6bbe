import Detection
import Testing

/// The machine driven by hand, one transition at a time, checking the actions it returns:
/// timers it asks for, sounds, events and alerts.
struct Van {
    var machine: DetectionMachine
    var actions: [Action] = []
    let seat: Int
    let radar: Int
    let pir: Int
    let cabin: Int
    let ignition: Int
    let door: Int
    let button: Int

    init(policy: Policy = Policy()) {
        machine = DetectionMachine(
            sensors: [
                SensorSpec(id: "seat.1", kind: .seat), SensorSpec(id: "radar", kind: .presence),
                SensorSpec(id: "pir", kind: .motion), SensorSpec(id: "cabin", kind: .temperature),
            ], policy: policy)
        seat = 0
        radar = 1
        pir = 2
        cabin = 3
        ignition = 4
        door = 5
        button = 6
    }

    /// Gives the machine one reading and returns what it asked for.
    @discardableResult
    mutating func set(_ sensor: Int, _ reading: Reading, at t: Seconds) -> [Action] {
        actions.removeAll()
        machine.handle(.reading(sensor: sensor, reading), at: t, into: &actions)
        return actions
    }

    @discardableResult
    mutating func set(_ sensor: Int, _ on: Bool, at t: Seconds) -> [Action] { set(sensor, .flag(on), at: t) }

    @discardableResult
    mutating func fire(_ timer: TimerID, at t: Seconds) -> [Action] {
        actions.removeAll()
        machine.timerFired(timer, at: t, into: &actions)
        return actions
    }

    /// Drives to "ignition off at 600".
    mutating func parkAt600() {
        set(ignition, true, at: 0)
        set(ignition, false, at: 600)
    }
}

extension [Action] {
    var events: [DetectionEvent] { compactMap { if case .event(let event, _) = $0 { event } else { nil } } }
    var alerts: [AlertType] { compactMap { if case .queueAlert(let alert) = $0 { alert.type } else { nil } } }
    var sounds: [SoundPattern] { compactMap { if case .sound(let pattern) = $0 { pattern } else { nil } } }
    func starts(_ timer: TimerID) -> Seconds? {
        for case .startTimer(timer, let at) in self { return at }
        return nil
    }
    func cancels(_ timer: TimerID) -> Bool { contains(.cancelTimer(timer)) }
}

@Suite("DetectionMachine transitions")
struct DetectionMachineTests {
    @Test("power-up chirps once and falls silent")
    func powerUp() {
        var van = Van()
        van.machine.powerUp(into: &van.actions)
        #expect(van.actions.sounds == [.selfTest, .silent])
    }

    @Test("ignition on from parked: driving, nothing sounds, no timers")
    func ignitionOn() {
        var van = Van()
        let actions = van.set(van.ignition, true, at: 0)
        #expect(actions.isEmpty)
        #expect(van.machine.state == .driving)
    }

    @Test("ignition off: reminder, chimes, the check window and monitoring start")
    func ignitionOff() {
        var van = Van()
        van.set(van.ignition, true, at: 0)
        let actions = van.set(van.ignition, false, at: 600)
        #expect(actions.events == [.reminder])
        #expect(actions.sounds == [.reminder])
        #expect(actions.starts(.checkWindow) == 720)
        #expect(actions.starts(.monitorEnd) == 4200)
        #expect(van.machine.state == .checkWindow(offAt: 600, deadline: 720))
    }

    @Test("a press in the window checks the van, stops the chimes and starts exit grace")
    func checkPress() {
        var van = Van()
        van.parkAt600()
        let actions = van.set(van.button, true, at: 640)
        #expect(actions.events == [.checked])
        #expect(actions.cancels(.checkWindow))
        #expect(actions.sounds == [.silent])
        #expect(actions.starts(.exitGrace) == 670)
        #expect(actions.starts(.ackHold) == 642)
        #expect(van.machine.state == .closed(offAt: 600))
        #expect(van.set(van.button, false, at: 640.2).cancels(.ackHold))
    }

    @Test("the window running out raises check_missed at level 1 with its alert, escalation timed")
    func windowRunsOut() {
        var van = Van()
        van.parkAt600()
        let actions = van.fire(.checkWindow, at: 720)
        #expect(actions.events == [.alarm(level: 1, reason: .checkMissed)])
        #expect(actions.alerts == [.checkMissed])
        #expect(actions.sounds == [.level1])
        #expect(actions.starts(.escalation) == 780)
        let escalation = van.fire(.escalation, at: 780)
        #expect(escalation.events == [.alarm(level: 2, reason: .checkMissed)])
        #expect(escalation.alerts == [.alarmEscalated])
        #expect(escalation.sounds == [.level2])
    }

    @Test("the alert is queued before anything sounds")
    func alertBeforeSound() throws {
        var van = Van()
        van.parkAt600()
        let actions = van.fire(.checkWindow, at: 720)
        let alert = try #require(actions.firstIndex { if case .queueAlert = $0 { true } else { false } })
        let sound = try #require(actions.firstIndex { if case .sound = $0 { true } else { false } })
        #expect(alert < sound)
    }

    @Test("a late press ends a check_missed alarm")
    func latePress() {
        var van = Van()
        van.parkAt600()
        van.fire(.checkWindow, at: 720)
        let actions = van.set(van.button, true, at: 730)
        #expect(actions.events == [.checked, .alarmCleared])
        #expect(actions.alerts == [.alarmCleared])
        #expect(actions.cancels(.escalation))
        #expect(van.machine.alarm == .quiet)
    }

    @Test("a seat occupied asks for its confirmation; vacated, it is cancelled")
    func seatConfirmTimer() {
        var van = Van()
        #expect(van.set(van.seat, true, at: 10).starts(.confirm(0)) == 15)
        #expect(van.set(van.seat, false, at: 12).cancels(.confirm(0)))
        // A weight below the child minimum is an empty seat; at the minimum it is occupied.
        #expect(van.set(van.seat, .number(7.9), at: 20).isEmpty)
        #expect(van.set(van.seat, .number(8), at: 21).starts(.confirm(0)) == 26)
        // Weight changes above the threshold do not restart confirmation.
        #expect(van.set(van.seat, .number(14.2), at: 22).isEmpty)
    }

    @Test("confirmed evidence while closed and outside grace raises a presence alarm at once")
    func presenceAlarm() {
        var van = Van()
        van.set(van.seat, true, at: 1)
        van.fire(.confirm(0), at: 6)
        van.parkAt600()
        van.set(van.button, true, at: 640)
        // Inside grace: nothing.
        #expect(van.fire(.confirm(0), at: 650).events.isEmpty)
        let actions = van.fire(.exitGrace, at: 670)
        #expect(actions.events == [.alarm(level: 1, reason: .presence)])
        #expect(actions.alerts == [.presenceAlarm])
        #expect(actions.starts(.escalation) == 730)
    }

    @Test("an open door holds detection off; closing it starts grace")
    func doorOpen() {
        var van = Van()
        van.parkAt600()
        van.set(van.button, true, at: 610)
        van.set(van.button, false, at: 610.5)
        van.set(van.door, true, at: 620)
        van.set(van.seat, true, at: 650)
        #expect(van.fire(.confirm(0), at: 655).events.isEmpty)
        #expect(van.set(van.door, false, at: 660).starts(.exitGrace) == 690)
        #expect(van.fire(.exitGrace, at: 690).events == [.alarm(level: 1, reason: .presence)])
    }

    @Test("a held press acknowledges a presence alarm; recheck brings it back or clears it")
    func acknowledgeAndRecheck() {
        var van = Van()
        van.set(van.seat, true, at: 1)
        van.fire(.confirm(0), at: 6)
        van.parkAt600()
        van.fire(.checkWindow, at: 720)
        #expect(van.machine.alarm != .quiet)
        van.set(van.button, true, at: 730)  // ends check_missed? No: the evidence made it a presence alarm.
        let ack = van.fire(.ackHold, at: 732)
        #expect(ack.events == [.silenced])
        #expect(ack.alerts == [.alarmAcknowledged])
        #expect(ack.sounds == [.silent])
        #expect(ack.starts(.recheck) == 852)
        van.set(van.button, false, at: 733)
        let back = van.fire(.recheck, at: 852)
        #expect(back.events == [.alarm(level: 1, reason: .presence)])
        van.set(van.button, true, at: 860)
        van.fire(.ackHold, at: 862)
        van.set(van.button, false, at: 863)
        van.set(van.seat, false, at: 900)
        let cleared = van.fire(.recheck, at: 982)
        #expect(cleared.events == [.alarmCleared])
        #expect(cleared.alerts == [.alarmCleared])
    }

    @Test("a check_missed alarm meeting evidence becomes a presence alarm a CHECK press does not end")
    func upgrade() {
        var van = Van()
        van.set(van.seat, true, at: 1)
        van.fire(.confirm(0), at: 6)
        van.parkAt600()
        let actions = van.fire(.checkWindow, at: 720)
        #expect(actions.events == [.alarm(level: 1, reason: .checkMissed), .alarm(level: 1, reason: .presence)])
        #expect(actions.alerts == [.checkMissed, .presenceAlarm])
        let press = van.set(van.button, true, at: 725)
        #expect(press.events == [.checked])
        #expect(van.machine.alarm != .quiet)
    }

    @Test("a stuck button never acknowledges an alarm that starts later")
    func stuckButton() {
        var van = Van()
        van.parkAt600()
        van.set(van.button, true, at: 610)
        van.fire(.ackHold, at: 612)  // no alarm yet: nothing
        van.set(van.seat, true, at: 700)
        van.fire(.confirm(0), at: 705)
        #expect(van.machine.alarm != .quiet)
        // The hold timer already fired; nothing else silences it while the button stays down.
        #expect(van.fire(.escalation, at: 765).events == [.alarm(level: 2, reason: .presence)])
    }

    @Test("heat during an alarm: level 2 at once, urgent; heat without an alarm: nothing")
    func heat() throws {
        var van = Van()
        van.parkAt600()
        #expect(van.set(van.cabin, .number(40), at: 650).events.isEmpty)
        van.set(van.cabin, .number(30), at: 660)
        van.fire(.checkWindow, at: 720)
        let hot = van.set(van.cabin, .number(35), at: 730)
        #expect(hot.events == [.alarm(level: 2, reason: .heat)])
        #expect(hot.cancels(.escalation))
        let alert = try #require(hot.compactMap { if case .queueAlert(let a) = $0 { a } else { nil } }.first)
        #expect(alert.type == .alarmEscalated && alert.urgent && alert.level == 2 && alert.temperatureC == 35)
        // Once per alarm.
        #expect(van.set(van.cabin, .number(36), at: 740).events.isEmpty)
    }

    @Test("a fault is reported at once and takes the sensor's evidence away; recovery reconfirms")
    func faults() {
        var van = Van()
        van.set(van.seat, true, at: 1)
        van.fire(.confirm(0), at: 6)
        van.actions.removeAll()
        van.machine.handle(.fault(sensor: van.seat, reason: "timeout"), at: 10, into: &van.actions)
        #expect(van.actions.alerts == [.sensorFault])
        #expect(van.actions.cancels(.confirm(0)))
        #expect(van.machine.isFaulty(van.seat))
        van.actions.removeAll()
        van.machine.handle(.fault(sensor: van.seat, reason: "crc"), at: 11, into: &van.actions)
        #expect(van.actions.isEmpty)
        van.actions.removeAll()
        van.machine.handle(.fault(sensor: van.seat, reason: nil), at: 20, into: &van.actions)
        #expect(van.actions.alerts == [.sensorRecovered])
        #expect(van.actions.starts(.confirm(0)) == 25)
    }

    @Test("ignition on ends every alarm and closes the trip")
    func ignitionOnEndsAlarm() throws {
        var van = Van()
        van.parkAt600()
        van.fire(.checkWindow, at: 720)
        let actions = van.set(van.ignition, true, at: 750)
        #expect(actions.events == [.alarmCleared])
        #expect(actions.alerts == [.alarmCleared, .tripClosed])
        #expect(actions.sounds == [.silent])
        let trip = try #require(
            actions.compactMap { if case .queueAlert(let a) = $0 { a.trip } else { nil } }.first)
        #expect(trip.closedBy == .ignitionOn && trip.checked == .notChecked && trip.alarms == 1)
        #expect(van.machine.state == .driving)
    }

    @Test("end of monitoring closes the trip but never silences a sounding alarm")
    func monitorEnd() {
        var van = Van()
        van.parkAt600()
        van.fire(.checkWindow, at: 720)
        let actions = van.fire(.monitorEnd, at: 4200)
        #expect(actions.alerts == [.tripClosed])
        #expect(actions.sounds.isEmpty)
        #expect(van.machine.alarm != .quiet)
    }

    @Test("two PIR pulses within the window are evidence; one is not")
    func motion() {
        var van = Van()
        van.parkAt600()
        van.set(van.button, true, at: 610)
        van.set(van.button, false, at: 610.5)
        #expect(van.set(van.pir, true, at: 700).events.isEmpty)
        van.set(van.pir, false, at: 701)
        #expect(van.set(van.pir, true, at: 760).events == [.alarm(level: 1, reason: .presence)])
    }

    @Test("inputs for sensors the machine does not have are counted and dropped, never trapped on")
    func unknownSensor() {
        var van = Van()
        van.actions.removeAll()
        van.machine.handle(.reading(sensor: 99, .flag(true)), at: 1, into: &van.actions)
        van.machine.handle(.fault(sensor: -1, reason: "x"), at: 1, into: &van.actions)
        #expect(van.actions.isEmpty)
        #expect(van.machine.rejectedInputs == 2)
    }
}

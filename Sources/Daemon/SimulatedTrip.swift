import Detection
import GPIO
import Hardware

extension SimulatedGPIO {
    /// Schedules the GPIO signals of `trace` on the simulator's lines, wired as `config` says
    /// (ignition, door, button and every sensor on a GPIO line), `speed` times faster than the
    /// trace's time: a change at `t` falls at `startNanoseconds` + t / speed. A seat's weight is
    /// played as its mat would show it (occupied at or above the policy's child weight); active-low
    /// lines get the opposite level. Faults cannot be played on a simulated line and are left out.
    ///
    /// Returns the ids of the trace's signals with readings that are not GPIO lines here (a Modbus
    /// thermometer, a sensor this van does not have), sorted: those are left out too.
    @discardableResult
    public func schedule(_ trace: Trace, wiredAs config: VanConfig, speed: Double) -> [String] {
        var roleOf: [String: String] = [:]
        for role in HardwareProfile.builtInInputRoles { roleOf[role] = role }
        for sensor in config.sensors { if case .gpio(let role) = sensor.source { roleOf[sensor.spec.id] = role } }
        var skipped: Set<String> = []
        for step in trace.steps {
            guard case .reading(let index, let reading) = step.input else { continue }
            let id = trace.sensors[index].id
            guard let role = roleOf[id], let line = config.profile.input(role) else {
                skipped.insert(id)
                continue
            }
            let on: Bool
            switch reading {
            case .flag(let flag): on = flag
            case .number(let value): on = value >= config.policy.childMinWeightKg
            }
            let offset = UInt64(max(0, step.t / speed * 1e9))
            // The role was requested with the config's lines; a simulator without it has nothing to play.
            try? scheduleInput(role, high: line.activeLow ? !on : on, at: offset)
        }
        return skipped.sorted()
    }
}

import Dispatch
import Hardware
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension Diagnosis {
    /// Polls every device of every bus (buses side by side) until each has answered once or failed
    /// twice, within `budgetSeconds` in all; reports each device's round trip and its values
    /// checked against the model's sane ranges, or why it did not answer and what to look at.
    public static func modbus(
        buses: [BusConfig], budgetSeconds: Double = 20, driver: any ModbusDriver = LibModbusDriver()
    ) -> [DiagnosisCheck] {
        let results = Mutex<[Int: [DiagnosisCheck]]>([:])
        let group = DispatchGroup()
        for (index, bus) in buses.enumerated() {
            group.enter()
            DispatchQueue(label: "diagnose modbus \(bus.name)").async {
                let checks = Self.modbus(bus: bus, budgetSeconds: budgetSeconds, driver: driver)
                results.withLock { $0[index] = checks }
                group.leave()
            }
        }
        _ = group.wait(timeout: .now() + budgetSeconds + 5)
        return results.withLock { results in buses.indices.flatMap { results[$0] ?? [] } }
    }

    private static func modbus(bus: BusConfig, budgetSeconds: Double, driver: any ModbusDriver) -> [DiagnosisCheck] {
        // Polled quickly, two failures make a verdict: a dead bus costs about two timeouts a device.
        var quick = bus
        for index in quick.devices.indices { quick.devices[index].periodMs = 100 }
        let firstValues = Mutex<[String: [String: Double]]>([:])
        let probe = ModbusBus(
            quick, options: ModbusBus.Options(failuresForFault: 2, faultedPeriodMs: 100, reconnectBackoffMs: 200...400),
            driver: driver
        ) { event in
            if case .values(let device, let values, _) = event {
                firstValues.withLock { seen in if seen[device] == nil { seen[device] = values } }
            }
        }
        let perDevice = bus.devices.map { 2 * Double($0.timeoutMs) / 1000 + 0.5 }.reduce(0, +)
        let deadline = Diagnosis.now() + min(budgetSeconds, perDevice + 1.5)
        probe.start()
        while Diagnosis.now() < deadline {
            let stats = probe.stats()
            let seen = firstValues.withLock { $0 }
            let settled = bus.devices.allSatisfy { device in
                seen[device.name] != nil || (stats.devices[device.name]?.failures ?? 0) >= 2
            }
            if settled { break }
            usleep(20_000)
        }
        let stopped = DispatchSemaphore(value: 0)
        Task.detached {
            await probe.stop()
            stopped.signal()
        }
        _ = stopped.wait(timeout: .now() + 3)

        let stats = probe.stats()
        let seen = firstValues.withLock { $0 }
        return bus.devices.map { device in
            let name = "\(bus.name)/\(device.name)"
            let deviceStats = stats.devices[device.name] ?? ModbusDeviceStats()
            let place = Self.place(device: device, bus: bus)
            if let values = seen[device.name] {
                return valuesCheck(
                    name: name, device: device, values: values,
                    milliseconds: deviceStats.lastRoundTripMicroseconds.map { max(1, ($0 + 500) / 1000) })
            }
            guard let reason = deviceStats.lastFailure else {
                return DiagnosisCheck(
                    "modbus", name, .fail, "\(device.model.model) \(place): not polled within the time allowed",
                    hint: "the bus is slow or busy: check the other devices on \(Self.describe(bus.transport))")
            }
            let detail =
                "\(device.model.model) \(place): \(reason)" + (deviceStats.lastFailureDetail.map { " — \($0)" } ?? "")
            return DiagnosisCheck(
                "modbus", name, .fail, detail,
                hint: hint(for: reason, detail: deviceStats.lastFailureDetail ?? "", device: device, bus: bus))
        }
    }

    /// The values a device answered with; the bus has already refused any outside the model's
    /// sane range (an `outOfRange` failure), so these are readings.
    private static func valuesCheck(
        name: String, device: DeviceConfig, values: [String: Double], milliseconds: Int?
    ) -> DiagnosisCheck {
        let shown = device.model.points.compactMap { point in
            values[point.name].map { "\(point.name) \(Self.format($0))\(point.unit.map { " \($0)" } ?? "")" }
        }
        let detail = "\(device.model.model) unit \(device.unit) answered: " + shown.joined(separator: ", ")
        return DiagnosisCheck("modbus", name, .pass, detail, milliseconds: milliseconds)
    }

    private static func place(device: DeviceConfig, bus: BusConfig) -> String {
        switch bus.transport {
        case .rtu(let path, _, _, _, _, _): "unit \(device.unit) on \(path)"
        case .tcp(let host, let port): "unit \(device.unit) at \(host):\(port)"
        }
    }

    private static func describe(_ transport: BusConfig.Transport) -> String {
        switch transport {
        case .rtu(let path, let baud, let parity, let dataBits, let stopBits, _):
            "\(path) (\(baud) \(dataBits)\(parity.prefix(1).uppercased())\(stopBits))"
        case .tcp(let host, let port): "\(host):\(port)"
        }
    }

    /// Where the config differs from how the model's devices leave the factory (its `[defaults]`):
    /// a device fitted new answers there until someone sets it up.
    static func factorySettings(_ device: DeviceConfig, _ bus: BusConfig) -> String {
        guard case .rtu(_, let baud, let parity, _, _, _) = bus.transport else { return "" }
        let model = device.model
        var differences: [String] = []
        if let factory = model.defaultUnit, factory != device.unit { differences.append("as unit \(factory)") }
        if let factory = model.defaultBaud, factory != baud { differences.append("at \(factory) baud") }
        if let factory = model.defaultParity, factory != parity {
            differences.append(factory == "none" ? "without parity" : "with \(factory) parity")
        }
        guard !differences.isEmpty else { return "" }
        return "; a new \(model.model) answers " + differences.joined(separator: ", ") + " until it is set up"
    }

    /// What a technician should look at for each way a device fails.
    public static func hint(for reason: ModbusFaultReason, detail: String, device: DeviceConfig, bus: BusConfig)
        -> String
    {
        let place = describe(bus.transport)
        let unit = device.unit
        switch reason {
        case .timeout:
            if case .tcp = bus.transport {
                return "no answer from unit \(unit) through the gateway \(place): check the gateway's serial side "
                    + "(wiring, baud) and the unit address"
            }
            return "no answer from unit \(unit) on \(place): check A/B wiring (try swapping A and B) and termination "
                + "(120 Ω at both ends), that the device is powered, its address is \(unit) and it talks "
                + "\(place.split(separator: "(").last.map { "(" + $0 } ?? "")" + factorySettings(device, bus)
        case .crc:
            return "garbled answers from unit \(unit) on \(place): check that baud and parity match the device, "
                + "the termination and the cable's shield and ground" + factorySettings(device, bus)
        case .badData:
            return "unit \(unit) answered something else than asked: another master on the bus (is the headcount "
                + "service running? systemctl stop headcount), or the wrong model (\(device.model.model))"
        case .outOfRange:
            return "unit \(unit) answers, but with a value outside what a \(device.model.model) can read: a broken or "
                + "unplugged probe, or the wrong model (check model = in the config)"
        case .wrongUnit:
            return "another unit answered for \(unit): two devices share an address on \(place)?"
        case .noDevice:
            if detail.contains("Permission denied") {
                return "permission denied on the serial device: run as root, or add the user to the dialout group"
            }
            return "cannot open \(place): is the USB–RS-485 adapter plugged in? `ls -l /dev/serial/by-id/` shows it; "
                + "set device = to that path"
        case .noConnection:
            return "cannot connect to the Modbus TCP gateway \(place): check its address, port and power"
        case .rs485Unsupported:
            return "the serial driver refuses RS-485 mode (USB adapters switch direction themselves): "
                + "remove rs485 = true from the bus"
        case .illegalFunction, .illegalAddress, .illegalValue:
            return "unit \(unit) refused the register read (\(reason)): is it really a \(device.model.model)? "
                + "check model = in the config"
        case .deviceFailure, .deviceBusy, .exception:
            return "unit \(unit) reports a fault of its own (\(reason)): power-cycle it; check its manual"
        case .other:
            return "libmodbus failed: \(detail)"
        }
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e9 { return String(Int(value)) }
        return String((value * 100).rounded() / 100)
    }

    /// CLOCK_MONOTONIC in seconds, for the checks' deadlines.
    public static func now() -> Double { Double(ModbusBus.monotonicNanoseconds()) / 1e9 }
}

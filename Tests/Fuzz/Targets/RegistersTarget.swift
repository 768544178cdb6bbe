import Detection
import Hardware

/// `registers`: Modbus answers decoded into point values through each bundled device model, the
/// way `ModbusBus` polls them, then given to the detection engine the way the daemon does. The
/// first byte picks the model; the rest are the answers, poll after poll (bit reads one bit per
/// coil, 8 to a byte; register reads two bytes per register, high byte first) until they run out.
/// Every point of a whole poll must decode, and the engine must take any values without a crash,
/// its events in time order.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRegisters(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let model = Bundled.models[Int(bytes[0]) % Bundled.models.count].model
    checkReads(of: model)

    // The sensors a config could hang on the model's points, as `VanConfig` allows them.
    let kinds: [SensorKind] = [.seat, .presence, .motion, .temperature, .co2, .door]
    var sensors: [SensorSpec] = []
    var sensorOfPoint: [String: Int] = [:]
    for point in model.points {
        guard let kind = point.feeds ?? (point.type == .bit ? .seat : nil), kinds.contains(kind) else { continue }
        sensorOfPoint[point.name] = sensors.count
        sensors.append(SensorSpec(id: point.name, kind: kind))
    }
    var driver = VirtualTimeDriver(machine: DetectionMachine(sensors: sensors, policy: Policy()))
    let ignition = driver.machine.index(of: "ignition") ?? 0
    driver.feed(.reading(sensor: ignition, .flag(true)), at: 0)
    driver.feed(.reading(sensor: ignition, .flag(false)), at: 1)

    let reads = model.reads
    let longest = reads.map(\.count).max() ?? 1
    var registers = [UInt16](repeating: 0, count: longest)
    var bits = [UInt8](repeating: 0, count: longest)
    var last: [Int: Reading] = [:]
    var next = 1
    var t: Seconds = 1
    polls: while next < size {
        var values: [String: Double] = [:]
        for read in reads {
            if read.function.readsBits {
                let needed = (read.count + 7) / 8
                guard next + needed <= size else { break polls }
                for bit in 0..<read.count { bits[bit] = (bytes[next + bit / 8] >> UInt8(bit % 8)) & 1 }
                next += needed
            } else {
                guard next + read.count * 2 <= size else { break polls }
                for index in 0..<read.count {
                    registers[index] = UInt16(bytes[next + 2 * index]) << 8 | UInt16(bytes[next + 2 * index + 1])
                }
                next += read.count * 2
            }
            for index in read.points {
                let point = model.points[index]
                let offset = point.address - read.address
                let value =
                    read.function.readsBits
                    ? point.decode(bit: bits[offset] != 0)
                    : point.decode(registers: registers[offset..<offset + point.span])
                // Only a float that is not a number may fail to decode; the bus counts it as bad data.
                guard let value else {
                    require(point.type.width == 2, "\(point.name) does not decode")
                    continue polls
                }
                values[point.name] = value
            }
        }
        t += 2.5
        // What the daemon gives the engine: numbers for temperature and CO2, a seat's 0/1 as a flag
        // and anything else as a weight, other kinds on or off; only changes.
        for (name, value) in values {
            guard let sensor = sensorOfPoint[name] else { continue }
            let reading: Reading
            switch sensors[sensor].kind {
            case .temperature, .co2: reading = .number(value)
            case .seat: reading = value == 0 || value == 1 ? .flag(value == 1) : .number(value)
            default: reading = .flag(value != 0)
            }
            guard last[sensor] != reading else { continue }
            last[sensor] = reading
            driver.feed(.reading(sensor: sensor, reading), at: t)
        }
    }
    driver.finish(at: t + driver.machine.policy.monitorFor)
    var previous: Seconds = 0
    for case .event(_, let at) in driver.actions {
        require(at >= previous, "event at \(at) after one at \(previous)")
        previous = at
    }
    return 0
}

/// Why a Modbus device's poll failed; a device's FAULT carries the reason of the poll that made it
/// one. The description is the word the trace format and the center's `sensor_fault` alert use.
public enum ModbusFaultReason: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// No answer within the device's timeout.
    case timeout
    /// An answer whose CRC does not match.
    case crc
    /// Bytes that are not the answer asked for (wrong length or function, garbage), or a value
    /// that does not decode (a NaN float).
    case badData
    /// A value outside the device model's sane `range` (a disconnected probe reading 0x7FFF as
    /// 3276.7 °C, a load cell's 0xFFFF as 6553.5 kg): the device answers, but what it says is not a
    /// reading, and it never reaches the engine.
    case outOfRange
    /// An answer from another unit than the one asked.
    case wrongUnit
    /// The serial device is gone or cannot be opened (unplugged USB adapter, no such path).
    case noDevice
    /// The TCP gateway refuses the connection or dropped it.
    case noConnection
    /// The bus config asks for RS-485 mode and the serial driver refuses it (USB adapters do).
    case rs485Unsupported
    // The device answered with a Modbus exception.
    case illegalFunction
    case illegalAddress
    case illegalValue
    case deviceFailure
    case deviceBusy
    case exception(Int)
    /// Anything else libmodbus reported.
    case other(ModbusErrorCode)

    public var description: String {
        switch self {
        case .timeout: "timeout"
        case .crc: "crc"
        case .badData: "bad data"
        case .outOfRange: "out of range"
        case .wrongUnit: "wrong unit"
        case .noDevice: "no device"
        case .noConnection: "no connection"
        case .rs485Unsupported: "rs485 unsupported"
        case .illegalFunction: "illegal function"
        case .illegalAddress: "illegal address"
        case .illegalValue: "illegal value"
        case .deviceFailure: "device failure"
        case .deviceBusy: "device busy"
        case .exception(let code): "exception \(code)"
        case .other(let code): "error: \(code)"
        }
    }
}

/// What the bus does about a failed call before the next one.
public enum ModbusRecovery: Equatable, Sendable {
    /// The line is fine: the device answered (with an exception), or nothing was sent.
    case none
    /// The line may hold the rest of a bad or late answer: `modbus_flush` now, and again before
    /// the next request (a late answer landing after the first flush would otherwise pass for the
    /// answer to the next request).
    case flush
    /// The descriptor is dead (device unplugged, TCP peer gone): close the context and open a new
    /// one, with a bounded backoff.
    case reconnect
}

extension ModbusError {
    /// The fault reason and the recovery for this error, on a serial line (`serial`) or on TCP.
    public func classify(serial: Bool) -> (reason: ModbusFaultReason, recovery: ModbusRecovery) {
        let lost: ModbusFaultReason = serial ? .noDevice : .noConnection
        if call == .setSerialModeRS485 { return (.rs485Unsupported, .reconnect) }
        switch code {
        case .timedOut: return (call == .connect ? lost : .timeout, call == .connect ? .reconnect : .flush)
        case .badCRC: return (.crc, .flush)
        case .badData, .tooMuchData, .badException, .unknownException: return (.badData, .flush)
        case .wrongUnit: return (.wrongUnit, .flush)
        case .illegalFunction: return (.illegalFunction, .none)
        case .illegalAddress: return (.illegalAddress, .none)
        case .illegalValue: return (.illegalValue, .none)
        case .deviceFailure: return (.deviceFailure, .none)
        case .deviceBusy, .acknowledge: return (.deviceBusy, .none)
        case .negativeAcknowledge, .memoryParity, .gatewayPath, .gatewayTarget:
            return (.exception(Int(code.rawValue - ModbusErrorCode.illegalFunction.rawValue + 1)), .none)
        case .ioError, .badDescriptor, .connectionReset, .brokenPipe, .notConnected, .noSuchFile, .noSuchDevice,
            .noSuchDeviceOrAddress, .connectionRefused:
            return (lost, .reconnect)
        default:
            if call == .connect { return (serial ? .noDevice : .noConnection, .reconnect) }
            return (.other(code), .flush)
        }
    }
}

/// One device's health, as a plain state machine (no I/O, no clock): failing `failuresForFault`
/// polls in a row makes the device a FAULT, reported once with the reason of the last failure;
/// its next good poll reports RECOVERED.
public struct ModbusDeviceHealth: Equatable, Sendable {
    /// What to report after a poll.
    public enum Action: Equatable, Sendable {
        case reportFault(ModbusFaultReason)
        case reportRecovered
    }

    public var failuresForFault: Int
    public private(set) var consecutiveFailures = 0
    /// The reason reported, while the device is a FAULT.
    public private(set) var fault: ModbusFaultReason?

    public init(failuresForFault: Int = 3) { self.failuresForFault = max(1, failuresForFault) }

    public mutating func pollFailed(_ reason: ModbusFaultReason) -> Action? {
        consecutiveFailures += 1
        guard fault == nil, consecutiveFailures >= failuresForFault else { return nil }
        fault = reason
        return .reportFault(reason)
    }

    public mutating func pollSucceeded() -> Action? {
        consecutiveFailures = 0
        guard fault != nil else { return nil }
        fault = nil
        return .reportRecovered
    }
}

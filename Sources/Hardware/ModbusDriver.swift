internal import CModbus

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The libmodbus calls headcount makes, by name: every call goes through a `ModbusDriver` or a
/// `ModbusContext`, so a test can make any one of them fail on purpose (hostapd's named call
/// sites, swift-system's one place for syscalls).
public enum ModbusCall: String, Sendable, CaseIterable, CustomStringConvertible {
    /// `modbus_new_rtu` / `modbus_new_tcp_pi`, then `modbus_connect`.
    case connect = "modbus_connect"
    /// `modbus_rtu_set_serial_mode(ctx, MODBUS_RTU_RS485)`: only when the bus config asks for it.
    case setSerialModeRS485 = "modbus_rtu_set_serial_mode"
    case setSlave = "modbus_set_slave"
    case setResponseTimeout = "modbus_set_response_timeout"
    case readBits = "modbus_read_bits"
    case readInputBits = "modbus_read_input_bits"
    case readRegisters = "modbus_read_registers"
    case readInputRegisters = "modbus_read_input_registers"
    case flush = "modbus_flush"
    /// `modbus_close` and `modbus_free`: it cannot fail, but tests count it.
    case close = "modbus_close"

    public var description: String { rawValue }

    /// The read call for a function code.
    public static func read(_ function: ModbusFunction) -> ModbusCall {
        switch function {
        case .coils: .readBits
        case .discreteInputs: .readInputBits
        case .holdingRegisters: .readRegisters
        case .inputRegisters: .readInputRegisters
        }
    }
}

/// An error number from libmodbus: an `errno` value, or one of libmodbus's own codes (a Modbus
/// exception the device answered with, or a frame libmodbus refused).
public struct ModbusErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    init(_ value: Int32) { self.rawValue = value }
    init(_ value: Int) { self.rawValue = Int32(truncatingIfNeeded: value) }

    // The device answered with a Modbus exception.
    public static let illegalFunction = ModbusErrorCode(CMODBUS_EMBXILFUN)
    public static let illegalAddress = ModbusErrorCode(CMODBUS_EMBXILADD)
    public static let illegalValue = ModbusErrorCode(CMODBUS_EMBXILVAL)
    public static let deviceFailure = ModbusErrorCode(CMODBUS_EMBXSFAIL)
    public static let acknowledge = ModbusErrorCode(CMODBUS_EMBXACK)
    public static let deviceBusy = ModbusErrorCode(CMODBUS_EMBXSBUSY)
    public static let negativeAcknowledge = ModbusErrorCode(CMODBUS_EMBXNACK)
    public static let memoryParity = ModbusErrorCode(CMODBUS_EMBXMEMPAR)
    public static let gatewayPath = ModbusErrorCode(CMODBUS_EMBXGPATH)
    public static let gatewayTarget = ModbusErrorCode(CMODBUS_EMBXGTAR)
    // libmodbus refused the answer.
    public static let badCRC = ModbusErrorCode(CMODBUS_EMBBADCRC)
    public static let badData = ModbusErrorCode(CMODBUS_EMBBADDATA)
    public static let badException = ModbusErrorCode(CMODBUS_EMBBADEXC)
    public static let unknownException = ModbusErrorCode(CMODBUS_EMBUNKEXC)
    public static let tooMuchData = ModbusErrorCode(CMODBUS_EMBMDATA)
    /// The answer came from another unit than the one asked.
    public static let wrongUnit = ModbusErrorCode(CMODBUS_EMBBADSLAVE)
    // errno values libmodbus passes on.
    public static let timedOut = ModbusErrorCode(ETIMEDOUT)
    public static let ioError = ModbusErrorCode(EIO)
    public static let badDescriptor = ModbusErrorCode(EBADF)
    public static let connectionReset = ModbusErrorCode(ECONNRESET)
    public static let connectionRefused = ModbusErrorCode(ECONNREFUSED)
    public static let brokenPipe = ModbusErrorCode(EPIPE)
    public static let notConnected = ModbusErrorCode(ENOTCONN)
    public static let noSuchFile = ModbusErrorCode(ENOENT)
    public static let noSuchDevice = ModbusErrorCode(ENODEV)
    public static let noSuchDeviceOrAddress = ModbusErrorCode(ENXIO)
    public static let notATerminal = ModbusErrorCode(ENOTTY)
    public static let invalidArgument = ModbusErrorCode(EINVAL)
    public static let permissionDenied = ModbusErrorCode(EACCES)
    public static let busy = ModbusErrorCode(EBUSY)

    /// What libmodbus says about the code (`modbus_strerror`).
    public var description: String {
        guard let text = modbus_strerror(rawValue) else { return "error \(rawValue)" }
        return String(cString: text)
    }
}

/// A failed libmodbus call: which call, and the error number it left.
public struct ModbusError: Error, Equatable, Sendable, CustomStringConvertible {
    public var call: ModbusCall
    public var code: ModbusErrorCode

    public init(call: ModbusCall, code: ModbusErrorCode) {
        self.call = call
        self.code = code
    }

    public var description: String { "\(call.rawValue): \(code)" }
}

/// Opens libmodbus contexts. The production driver is `LibModbusDriver`; tests wrap it in a
/// `FaultInjectingModbusDriver` to make named calls fail.
public protocol ModbusDriver: Sendable {
    /// Makes a context for the transport and connects it (opens the serial device, or connects
    /// the TCP socket within `timeoutMicroseconds`). libmodbus's error recovery stays off and the
    /// byte timeout is disabled, so one answer takes at most the response timeout in all.
    func connect(_ transport: BusConfig.Transport, timeoutMicroseconds: Int) throws(ModbusError) -> any ModbusContext
}

/// One connected libmodbus context. Not thread-safe, like libmodbus itself: one owner thread
/// makes every call. `close()` frees it; no call may follow.
public protocol ModbusContext: AnyObject {
    func setSerialModeRS485() throws(ModbusError)
    func setSlave(_ unit: Int) throws(ModbusError)
    func setResponseTimeout(microseconds: Int) throws(ModbusError)
    /// Function 01: one byte (0 or 1) per coil into `bits`, which must hold `count`.
    func readBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError)
    /// Function 02.
    func readInputBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError)
    /// Function 03: into `registers`, which must hold `count`.
    func readRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError)
    /// Function 04.
    func readInputRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError)
    /// Drops whatever is waiting on the line (`tcflush` on a serial port, a non-blocking drain on TCP).
    func flush() throws(ModbusError)
    func close()
}

/// The production driver: libmodbus itself.
public struct LibModbusDriver: ModbusDriver {
    public init() {}

    public func connect(
        _ transport: BusConfig.Transport, timeoutMicroseconds: Int
    ) throws(ModbusError) -> any ModbusContext {
        let handle: OpaquePointer?
        switch transport {
        case .rtu(let device, let baud, let parity, let dataBits, let stopBits, _):
            let parityCode: CChar
            switch parity {
            case "even": parityCode = CChar(UInt8(ascii: "E"))
            case "odd": parityCode = CChar(UInt8(ascii: "O"))
            default: parityCode = CChar(UInt8(ascii: "N"))
            }
            handle = modbus_new_rtu(device, Int32(baud), parityCode, Int32(dataBits), Int32(stopBits))
        case .tcp(let host, let port):
            // The _pi variant resolves host names too (a gateway may be configured by name).
            handle = modbus_new_tcp_pi(host, String(port))
        }
        guard let handle else { throw LibModbusContext.lastError(.connect) }
        let context = LibModbusContext(handle)
        // Never MODBUS_ERROR_RECOVERY_LINK: its reconnect loop can hang. ModbusBus closes and
        // reopens the context itself, with a bounded backoff.
        modbus_set_error_recovery(handle, MODBUS_ERROR_RECOVERY_NONE)
        // No byte timeout: the response timeout then bounds the whole answer, not only its first byte.
        modbus_set_byte_timeout(handle, 0, 0)
        do {
            try context.setResponseTimeout(microseconds: timeoutMicroseconds)
        } catch {
            context.close()
            throw ModbusError(call: .connect, code: error.code)
        }
        guard modbus_connect(handle) == 0 else {
            let error = LibModbusContext.lastError(.connect)
            context.close()
            throw error
        }
        return context
    }
}

/// A libmodbus context (`modbus_t *`), freed by `close()` or, at the latest, when dropped.
final class LibModbusContext: ModbusContext {
    private var handle: OpaquePointer?

    init(_ handle: OpaquePointer) { self.handle = handle }

    deinit { close() }

    /// The error the last libmodbus call left in errno; called right after the call failed.
    static func lastError(_ call: ModbusCall) -> ModbusError {
        ModbusError(call: call, code: ModbusErrorCode(rawValue: cmodbus_errno()))
    }

    private func live(_ call: ModbusCall) throws(ModbusError) -> OpaquePointer {
        guard let handle else { throw ModbusError(call: call, code: .badDescriptor) }
        return handle
    }

    func setSerialModeRS485() throws(ModbusError) {
        guard modbus_rtu_set_serial_mode(try live(.setSerialModeRS485), MODBUS_RTU_RS485) == 0 else {
            throw Self.lastError(.setSerialModeRS485)
        }
    }

    func setSlave(_ unit: Int) throws(ModbusError) {
        guard modbus_set_slave(try live(.setSlave), Int32(unit)) == 0 else { throw Self.lastError(.setSlave) }
    }

    func setResponseTimeout(microseconds: Int) throws(ModbusError) {
        let clamped = max(microseconds, 1000)
        let seconds = UInt32(clamped / 1_000_000)
        let rest = UInt32(clamped % 1_000_000)
        guard modbus_set_response_timeout(try live(.setResponseTimeout), seconds, rest) == 0 else {
            throw Self.lastError(.setResponseTimeout)
        }
    }

    func readBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
        try readBits(.readBits, address: address, count: count, into: &bits)
    }

    func readInputBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
        try readBits(.readInputBits, address: address, count: count, into: &bits)
    }

    func readRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
        try readRegisters(.readRegisters, address: address, count: count, into: &registers)
    }

    func readInputRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
        try readRegisters(.readInputRegisters, address: address, count: count, into: &registers)
    }

    private func readBits(
        _ call: ModbusCall, address: Int, count: Int, into bits: inout [UInt8]
    ) throws(ModbusError) {
        let handle = try live(call)
        guard count > 0, bits.count >= count else { throw ModbusError(call: call, code: .invalidArgument) }
        let read = bits.withUnsafeMutableBufferPointer { buffer in
            call == .readBits
                ? modbus_read_bits(handle, Int32(address), Int32(count), buffer.baseAddress)
                : modbus_read_input_bits(handle, Int32(address), Int32(count), buffer.baseAddress)
        }
        guard read >= 0 else { throw Self.lastError(call) }
        guard read == count else { throw ModbusError(call: call, code: .badData) }
    }

    private func readRegisters(
        _ call: ModbusCall, address: Int, count: Int, into registers: inout [UInt16]
    ) throws(ModbusError) {
        let handle = try live(call)
        guard count > 0, registers.count >= count else { throw ModbusError(call: call, code: .invalidArgument) }
        let read = registers.withUnsafeMutableBufferPointer { buffer in
            call == .readRegisters
                ? modbus_read_registers(handle, Int32(address), Int32(count), buffer.baseAddress)
                : modbus_read_input_registers(handle, Int32(address), Int32(count), buffer.baseAddress)
        }
        guard read >= 0 else { throw Self.lastError(call) }
        guard read == count else { throw ModbusError(call: call, code: .badData) }
    }

    func flush() throws(ModbusError) {
        guard modbus_flush(try live(.flush)) >= 0 else { throw Self.lastError(.flush) }
    }

    func close() {
        guard let handle else { return }
        self.handle = nil
        modbus_close(handle)
        modbus_free(handle)
    }
}

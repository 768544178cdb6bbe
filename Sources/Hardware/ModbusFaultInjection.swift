import Synchronization

/// A driver that makes named libmodbus calls fail on purpose, around a real driver (hostapd's
/// `TEST_FAIL` at named call sites; swift-system's mockable syscall layer). A call picked for
/// failure returns the given error without reaching libmodbus; every other call goes through.
/// It also counts the calls made, so tests can check that a flush or a reopen happened.
///
/// The test double of `LibModbusDriver`, kept beside it (as NIOEmbedded sits beside NIOPosix) so
/// that any module's tests can use it.
public final class FaultInjectingModbusDriver: ModbusDriver {
    struct Rule {
        var code: ModbusErrorCode
        /// Failures left; nil fails until cleared.
        var remaining: Int?
    }

    struct State {
        var rules: [ModbusCall: Rule] = [:]
        var calls: [ModbusCall: Int] = [:]
        var injected: [ModbusCall: Int] = [:]
    }

    private let inner: any ModbusDriver
    private let state = Mutex(State())

    public init(wrapping inner: any ModbusDriver = LibModbusDriver()) { self.inner = inner }

    /// The next `times` calls of `call` fail with `code`; `times: nil` fails them until `clear`.
    public func inject(_ code: ModbusErrorCode, at call: ModbusCall, times: Int? = 1) {
        state.withLock { $0.rules[call] = Rule(code: code, remaining: times) }
    }

    /// Stops failing `call`, or every call.
    public func clear(_ call: ModbusCall? = nil) {
        state.withLock { state in
            if let call { state.rules[call] = nil } else { state.rules = [:] }
        }
    }

    /// How many times `call` was made (failed on purpose or not).
    public func count(_ call: ModbusCall) -> Int { state.withLock { $0.calls[call] ?? 0 } }

    /// How many times `call` was failed on purpose.
    public func injectedCount(_ call: ModbusCall) -> Int { state.withLock { $0.injected[call] ?? 0 } }

    /// Counts the call and throws if it is to fail.
    func check(_ call: ModbusCall) throws(ModbusError) {
        let code: ModbusErrorCode? = state.withLock { state in
            state.calls[call, default: 0] += 1
            guard var rule = state.rules[call] else { return nil }
            if let remaining = rule.remaining {
                rule.remaining = remaining - 1
                state.rules[call] = remaining - 1 > 0 ? rule : nil
            }
            state.injected[call, default: 0] += 1
            return rule.code
        }
        if let code { throw ModbusError(call: call, code: code) }
    }

    public func connect(
        _ transport: BusConfig.Transport, timeoutMicroseconds: Int
    ) throws(ModbusError) -> any ModbusContext {
        try check(.connect)
        return FaultInjectingContext(
            inner: try inner.connect(transport, timeoutMicroseconds: timeoutMicroseconds), driver: self)
    }
}

/// A context whose calls pass through the driver's rules first.
final class FaultInjectingContext: ModbusContext {
    let inner: any ModbusContext
    let driver: FaultInjectingModbusDriver

    init(inner: any ModbusContext, driver: FaultInjectingModbusDriver) {
        self.inner = inner
        self.driver = driver
    }

    func setSerialModeRS485() throws(ModbusError) {
        try driver.check(.setSerialModeRS485)
        try inner.setSerialModeRS485()
    }

    func setSlave(_ unit: Int) throws(ModbusError) {
        try driver.check(.setSlave)
        try inner.setSlave(unit)
    }

    func setResponseTimeout(microseconds: Int) throws(ModbusError) {
        try driver.check(.setResponseTimeout)
        try inner.setResponseTimeout(microseconds: microseconds)
    }

    func readBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
        try driver.check(.readBits)
        try inner.readBits(address: address, count: count, into: &bits)
    }

    func readInputBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
        try driver.check(.readInputBits)
        try inner.readInputBits(address: address, count: count, into: &bits)
    }

    func readRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
        try driver.check(.readRegisters)
        try inner.readRegisters(address: address, count: count, into: &registers)
    }

    func readInputRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
        try driver.check(.readInputRegisters)
        try inner.readInputRegisters(address: address, count: count, into: &registers)
    }

    func flush() throws(ModbusError) {
        try driver.check(.flush)
        try inner.flush()
    }

    func close() {
        // Counted, never failed: closing always frees the context.
        try? driver.check(.close)
        inner.close()
    }
}

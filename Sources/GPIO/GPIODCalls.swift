import CGPIOD
import Glibc

/// An open chip as `GPIODCalls` knows it: an opaque number (the production calls keep the shim's
/// handle pointer in it; a fake picks its own).
public struct GPIODChip: Sendable, Hashable {
    public var id: UInt

    public init(id: UInt) {
        self.id = id
    }
}

/// A requested line on one chip, numbered by the shim in request order.
public typealias GPIODLineID = Int32

/// One edge event as the shim reports it, before roles and debouncing.
public struct GPIODRawEdge: Sendable, Hashable {
    /// Kernel timestamp, CLOCK_MONOTONIC nanoseconds.
    public var timestampNanoseconds: UInt64
    /// True for inactive -> active (logical, active-low applied by the kernel).
    public var rising: Bool

    public init(timestampNanoseconds: UInt64, rising: Bool) {
        self.timestampNanoseconds = timestampNanoseconds
        self.rising = rising
    }
}

/// Why opening a chip by label failed.
public enum GPIODOpenFailure: Error, Sendable, Hashable {
    /// No chip with that label; `found` describes every chip device seen ("pinctrl-bcm2711", or
    /// "gpiochip3 (unreadable: Permission denied)").
    case noSuchChip(found: [String])
    case failed(GPIOErrno)
}

/// Every call `LibgpiodBackend` makes into libgpiod, in one place, so that tests can stand in a
/// fake chip set and make any named call fail on purpose (the swift-system / hostapd pattern).
/// `LibgpiodCalls` is the production implementation, through the CGPIOD shim.
///
/// Each method maps to one shim function (see Sources/CGPIOD/include/cgpiod.h) and throws the
/// errno it set.
public protocol GPIODCalls: Sendable {
    /// True when the kernel debounces (libgpiod 2.x); false on 1.6, where the backend debounces
    /// in software and must pass a debounce of 0.
    var hasKernelDebounce: Bool { get }

    /// The clock edge timestamps are on (CLOCK_MONOTONIC), for software debouncing.
    func monotonicNanoseconds() -> UInt64

    func openChip(label: String) throws(GPIODOpenFailure) -> GPIODChip

    func requestInput(
        _ chip: GPIODChip, line: String, consumer: String, activeLow: Bool, bias: GPIOBias,
        debounceMicroseconds: UInt32
    ) throws(GPIOErrno) -> GPIODLineID

    func requestOutput(
        _ chip: GPIODChip, line: String, consumer: String, activeLow: Bool, initial: Bool
    ) throws(GPIOErrno) -> GPIODLineID

    func getValue(_ chip: GPIODChip, _ line: GPIODLineID) throws(GPIOErrno) -> Bool

    func setValue(_ chip: GPIODChip, _ line: GPIODLineID, _ value: Bool) throws(GPIOErrno)

    /// Waits up to `timeoutNanoseconds` for inputs with pending edges; returns them ([] on timeout).
    func wait(_ chip: GPIODChip, timeoutNanoseconds: Int64) throws(GPIOErrno) -> [GPIODLineID]

    /// Reads the pending edges of one input, oldest first (call after `wait` named it).
    func readEdges(_ chip: GPIODChip, _ line: GPIODLineID) throws(GPIOErrno) -> [GPIODRawEdge]

    /// Releases every line and closes the chip.
    func close(_ chip: GPIODChip)
}

/// The production `GPIODCalls`: the CGPIOD shim over the installed libgpiod (1.6 or 2.x).
public struct LibgpiodCalls: GPIODCalls {
    /// Where to look for "gpiochip*" devices.
    public var deviceDirectory: String

    public init(deviceDirectory: String = "/dev") {
        self.deviceDirectory = deviceDirectory
    }

    /// Which libgpiod the shim was built against.
    public static var isLibgpiodV1: Bool { hc_gpio_is_libgpiod_v1() != 0 }

    public var hasKernelDebounce: Bool { hc_gpio_has_kernel_debounce() != 0 }

    public func monotonicNanoseconds() -> UInt64 { GPIOClock.monotonicNanoseconds() }

    public func openChip(label: String) throws(GPIODOpenFailure) -> GPIODChip {
        var found = [CChar](repeating: 0, count: 8192)
        var handle: OpaquePointer?
        let result = hc_gpio_chip_open_by_label(deviceDirectory, label, &handle, &found, found.count)
        let code = errno
        let seen = Self.describeChips(found)
        guard result == 0, let handle else {
            if code == ENOENT { throw .noSuchChip(found: seen) }
            throw .failed(GPIOErrno(code))
        }
        return GPIODChip(id: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle))))
    }

    public func requestInput(
        _ chip: GPIODChip, line: String, consumer: String, activeLow: Bool, bias: GPIOBias,
        debounceMicroseconds: UInt32
    ) throws(GPIOErrno) -> GPIODLineID {
        let id = hc_gpio_request_input(
            try pointer(chip), line, consumer, activeLow ? 1 : 0, Self.shimBias(bias), debounceMicroseconds)
        if id < 0 { throw GPIOErrno(errno) }
        return id
    }

    public func requestOutput(
        _ chip: GPIODChip, line: String, consumer: String, activeLow: Bool, initial: Bool
    ) throws(GPIOErrno) -> GPIODLineID {
        let id = hc_gpio_request_output(try pointer(chip), line, consumer, activeLow ? 1 : 0, initial ? 1 : 0)
        if id < 0 { throw GPIOErrno(errno) }
        return id
    }

    public func getValue(_ chip: GPIODChip, _ line: GPIODLineID) throws(GPIOErrno) -> Bool {
        let value = hc_gpio_get_value(try pointer(chip), line)
        if value < 0 { throw GPIOErrno(errno) }
        return value != 0
    }

    public func setValue(_ chip: GPIODChip, _ line: GPIODLineID, _ value: Bool) throws(GPIOErrno) {
        if hc_gpio_set_value(try pointer(chip), line, value ? 1 : 0) < 0 { throw GPIOErrno(errno) }
    }

    public func wait(_ chip: GPIODChip, timeoutNanoseconds: Int64) throws(GPIOErrno) -> [GPIODLineID] {
        let handle = try pointer(chip)
        var ready = [Int32](repeating: 0, count: Int(HC_GPIO_MAX_LINES))
        let count = hc_gpio_wait(handle, timeoutNanoseconds, &ready, Int32(ready.count))
        if count < 0 { throw GPIOErrno(errno) }
        return Array(ready.prefix(Int(count)))
    }

    public func readEdges(_ chip: GPIODChip, _ line: GPIODLineID) throws(GPIOErrno) -> [GPIODRawEdge] {
        let handle = try pointer(chip)
        var edges = [hc_gpio_edge](repeating: hc_gpio_edge(), count: Int(HC_GPIO_MAX_EDGES))
        let count = hc_gpio_read_edges(handle, line, &edges, Int32(edges.count))
        if count < 0 { throw GPIOErrno(errno) }
        return edges.prefix(Int(count)).map {
            GPIODRawEdge(timestampNanoseconds: $0.timestamp_ns, rising: $0.rising != 0)
        }
    }

    public func close(_ chip: GPIODChip) {
        guard let handle = try? pointer(chip) else { return }
        hc_gpio_chip_close(handle)
    }

    private func pointer(_ chip: GPIODChip) throws(GPIOErrno) -> OpaquePointer {
        guard let raw = UnsafeRawPointer(bitPattern: Int(bitPattern: chip.id)) else { throw GPIOErrno(EBADF) }
        return OpaquePointer(raw)
    }

    private static func shimBias(_ bias: GPIOBias) -> Int32 {
        switch bias {
        case .asIs: Int32(HC_GPIO_BIAS_AS_IS.rawValue)
        case .disabled: Int32(HC_GPIO_BIAS_DISABLED.rawValue)
        case .pullUp: Int32(HC_GPIO_BIAS_PULL_UP.rawValue)
        case .pullDown: Int32(HC_GPIO_BIAS_PULL_DOWN.rawValue)
        }
    }

    /// Turns the shim's "name\tlabel\terrno" lines into what an error message lists.
    static func describeChips(_ buffer: [CChar]) -> [String] {
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "\n").map { entry in
            let fields = entry.split(separator: "\t", omittingEmptySubsequences: false)
            let name = fields.first.map(String.init) ?? "?"
            let label = fields.count > 1 ? String(fields[1]) : ""
            let code = fields.count > 2 ? Int32(fields[2]) ?? 0 : 0
            if code != 0 { return "\(name) (unreadable: \(GPIOErrno(code)))" }
            return label.isEmpty ? "\(name) (no label)" : label
        }
    }
}

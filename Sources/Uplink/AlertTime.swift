#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A wall-clock instant with millisecond resolution, as the center sees it: `occurred_at` of an
/// alert, `created_at` and `next_attempt_at` in the outbox.
///
/// The detection engine runs on its own clock (`Seconds` since its start, or trace time); the edge
/// that turns an engine `Alert` into a `CenterAlert` gives the wall time of that moment. Values are
/// clamped to 1970-01-01T00:00:00.000Z ... 9999-12-31T23:59:59.999Z, the range RFC 3339's four-digit
/// years can write; a board without a real-time clock that boots in 1970 still produces valid text.
public struct WallClockTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The latest instant RFC 3339 can write: 9999-12-31T23:59:59.999Z.
    public static let maximumMilliseconds: Int64 = 253_402_300_799_999

    /// Milliseconds since 1970-01-01T00:00:00Z, within 0 ... `maximumMilliseconds`.
    public let millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = min(max(millisecondsSinceEpoch, 0), Self.maximumMilliseconds)
    }

    /// Seconds since the epoch, rounded down to the millisecond; NaN counts as the epoch.
    public init(secondsSinceEpoch: Double) {
        let milliseconds = (secondsSinceEpoch * 1000).rounded(.down)
        guard !milliseconds.isNaN else {
            self.init(millisecondsSinceEpoch: 0)
            return
        }
        if milliseconds >= Double(Self.maximumMilliseconds) {
            self.init(millisecondsSinceEpoch: Self.maximumMilliseconds)
        } else if milliseconds <= 0 {
            self.init(millisecondsSinceEpoch: 0)
        } else {
            self.init(millisecondsSinceEpoch: Int64(milliseconds))
        }
    }

    /// The system's real-time clock (CLOCK_REALTIME). Only edges call this; the engine is given its time.
    public static func now() -> WallClockTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallClockTime(millisecondsSinceEpoch: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    public var secondsSinceEpoch: Double { Double(millisecondsSinceEpoch) / 1000 }

    /// This instant moved by `seconds` (rounded down to the millisecond), clamped to the valid range.
    public func adding(seconds: Double) -> WallClockTime {
        let delta = (seconds * 1000).rounded(.down)
        guard delta.isFinite else {
            return delta > 0 ? WallClockTime(millisecondsSinceEpoch: Self.maximumMilliseconds) : self
        }
        let bounded = min(max(delta, -Double(Self.maximumMilliseconds)), Double(Self.maximumMilliseconds))
        return WallClockTime(millisecondsSinceEpoch: millisecondsSinceEpoch + Int64(bounded))
    }

    public static func < (lhs: WallClockTime, rhs: WallClockTime) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    public var description: String { rfc3339 }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T12:00:00.123Z`; computed with `gmtime_r`,
    /// independent of the locale and the time zone.
    public var rfc3339: String {
        var seconds = time_t(millisecondsSinceEpoch / 1000)
        let milliseconds = Int(millisecondsSinceEpoch % 1000)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "1970-01-01T00:00:00.000Z" }
        var text = ""
        text.reserveCapacity(24)
        Self.append(Int(parts.tm_year) + 1900, digits: 4, to: &text)
        text.append("-")
        Self.append(Int(parts.tm_mon) + 1, digits: 2, to: &text)
        text.append("-")
        Self.append(Int(parts.tm_mday), digits: 2, to: &text)
        text.append("T")
        Self.append(Int(parts.tm_hour), digits: 2, to: &text)
        text.append(":")
        Self.append(Int(parts.tm_min), digits: 2, to: &text)
        text.append(":")
        Self.append(Int(parts.tm_sec), digits: 2, to: &text)
        text.append(".")
        Self.append(milliseconds, digits: 3, to: &text)
        text.append("Z")
        return text
    }

    private static func append(_ value: Int, digits: Int, to text: inout String) {
        var scratch: [UInt8] = Array(repeating: UInt8(ascii: "0"), count: digits)
        var rest = value
        var index = digits - 1
        while index >= 0 {
            scratch[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            index -= 1
        }
        text.append(String(decoding: scratch, as: UTF8.self))
    }

    /// Reads RFC 3339 text: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (`T` and `Z` in either
    /// case). Fractions beyond milliseconds are cut off; a leap second (`:60`) counts as the next second's
    /// start. Nil for anything else, including dates that do not exist (2026-02-30).
    public init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20 else { return nil }
        func number(_ start: Int, _ count: Int) -> Int? {
            var value = 0
            for index in start..<(start + count) {
                let byte = bytes[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
            let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
            (1...12).contains(month), (1...31).contains(day), (0...23).contains(hour),
            (0...59).contains(minute), (0...60).contains(second)
        else { return nil }

        var index = 19
        var milliseconds = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                if index - start < 3 { milliseconds = milliseconds * 10 + Int(bytes[index] - UInt8(ascii: "0")) }
                index += 1
            }
            let digits = index - start
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 3) { milliseconds *= 10 }
        }
        guard index < bytes.count else { return nil }
        var offsetSeconds = 0
        if bytes[index] == UInt8(ascii: "Z") || bytes[index] == UInt8(ascii: "z") {
            index += 1
        } else if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            guard index + 6 == bytes.count, bytes[index + 3] == UInt8(ascii: ":"),
                let offsetHours = number(index + 1, 2), let offsetMinutes = number(index + 4, 2),
                (0...23).contains(offsetHours), (0...59).contains(offsetMinutes)
            else { return nil }
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }

        // Does the date exist? timegm normalises 02-30 to 03-02; compare the day back.
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        var midnight = timegm(&parts)
        var check = tm()
        guard gmtime_r(&midnight, &check) != nil, Int(check.tm_mday) == day, Int(check.tm_mon) == month - 1
        else { return nil }
        let seconds = Int64(midnight) + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        self.init(millisecondsSinceEpoch: seconds * 1000 + Int64(milliseconds))
    }
}

/// Alert ids: random (version 4) UUIDs in lowercase canonical text, also sent as `Idempotency-Key`.
public enum AlertID {
    /// A fresh id from the system's random source (`getrandom` on Linux).
    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A version 4 UUID from `generator` (tests pass a seeded one).
    public static func random<Generator: RandomNumberGenerator>(using generator: inout Generator) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let high = generator.next()
        let low = generator.next()
        for index in 0..<8 {
            bytes[index] = UInt8(truncatingIfNeeded: high >> (8 * UInt64(index)))
            bytes[index + 8] = UInt8(truncatingIfNeeded: low >> (8 * UInt64(index)))
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// True for canonical lowercase UUID text: 8-4-4-4-12 hexadecimal digits.
    public static func isValid(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return false }
            } else {
                let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
                let letter = byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f")
                guard digit || letter else { return false }
            }
        }
        return true
    }
}

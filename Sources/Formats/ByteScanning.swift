// Small byte-level helpers shared by the JSON and TOML readers. Pure stdlib, no allocation on the hot path.

/// The maximum nesting depth (arrays and objects/tables) either reader accepts before reporting an error.
let maximumNestingDepth = 64

enum ASCII {
    static let tab: UInt8 = 0x09
    static let newline: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22  // "
    static let hash: UInt8 = 0x23  // #
    static let apostrophe: UInt8 = 0x27  // '
    static let plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let zero: UInt8 = 0x30
    static let one: UInt8 = 0x31
    static let seven: UInt8 = 0x37
    static let nine: UInt8 = 0x39
    static let colon: UInt8 = 0x3A
    static let equals: UInt8 = 0x3D
    static let upperE: UInt8 = 0x45
    static let upperT: UInt8 = 0x54
    static let upperZ: UInt8 = 0x5A
    static let leftBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let rightBracket: UInt8 = 0x5D
    static let underscore: UInt8 = 0x5F
    static let lowerB: UInt8 = 0x62
    static let lowerE: UInt8 = 0x65
    static let lowerF: UInt8 = 0x66
    static let lowerN: UInt8 = 0x6E
    static let lowerO: UInt8 = 0x6F
    static let lowerR: UInt8 = 0x72
    static let lowerT: UInt8 = 0x74
    static let lowerU: UInt8 = 0x75
    static let upperU: UInt8 = 0x55
    static let lowerX: UInt8 = 0x78
    static let lowerZ: UInt8 = 0x7A
    static let leftBrace: UInt8 = 0x7B
    static let rightBrace: UInt8 = 0x7D
    static let delete: UInt8 = 0x7F

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- zero < 10 }

    @inline(__always)
    static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) &- 0x61 < 26 }

    /// The value of a hexadecimal digit, or nil.
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt32? {
        if isDigit(b) { return UInt32(b &- zero) }
        let lower = b | 0x20
        if lower >= 0x61 && lower <= 0x66 { return UInt32(lower - 0x61 + 10) }
        return nil
    }
}

enum UTF8Scan {
    /// Length of the well-formed UTF-8 sequence that starts at `i` (whose first byte is >= 0x80), or nil when the
    /// bytes there are not well-formed UTF-8 (overlong forms, surrogates, values above U+10FFFF and truncated
    /// sequences are all rejected).
    @inline(__always)
    static func sequenceLength(_ buf: UnsafeBufferPointer<UInt8>, at i: Int) -> Int? {
        let count = buf.count
        let b0 = buf[i]
        func cont(_ j: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool {
            j < count && buf[j] >= low && buf[j] <= high
        }
        switch b0 {
        case 0xC2...0xDF:
            return cont(i + 1) ? 2 : nil
        case 0xE0:
            return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : nil
        case 0xE1...0xEC, 0xEE...0xEF:
            return cont(i + 1) && cont(i + 2) ? 3 : nil
        case 0xED:
            return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : nil
        case 0xF0:
            return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : nil
        case 0xF1...0xF3:
            return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : nil
        case 0xF4:
            return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : nil
        default:
            return nil
        }
    }

    /// Appends the UTF-8 encoding of a Unicode scalar value to `out`.
    static func append(scalar value: UInt32, to out: inout [UInt8]) {
        switch value {
        case 0..<0x80:
            out.append(UInt8(truncatingIfNeeded: value))
        case 0x80..<0x800:
            out.append(UInt8(truncatingIfNeeded: 0xC0 | (value >> 6)))
            out.append(UInt8(truncatingIfNeeded: 0x80 | (value & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(truncatingIfNeeded: 0xE0 | (value >> 12)))
            out.append(UInt8(truncatingIfNeeded: 0x80 | ((value >> 6) & 0x3F)))
            out.append(UInt8(truncatingIfNeeded: 0x80 | (value & 0x3F)))
        default:
            out.append(UInt8(truncatingIfNeeded: 0xF0 | (value >> 18)))
            out.append(UInt8(truncatingIfNeeded: 0x80 | ((value >> 12) & 0x3F)))
            out.append(UInt8(truncatingIfNeeded: 0x80 | ((value >> 6) & 0x3F)))
            out.append(UInt8(truncatingIfNeeded: 0x80 | (value & 0x3F)))
        }
    }

    /// Makes a String from bytes already known to be valid UTF-8.
    @inline(__always)
    static func string(_ buf: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: buf[range]), as: UTF8.self)
    }

    /// A short, printable rendering of the byte range for error messages (ASCII only, truncated).
    static func snippet(_ buf: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, limit: Int = 40) -> String {
        var out = ""
        var n = 0
        for i in range {
            if n >= limit {
                out += "…"
                break
            }
            let b = buf[i]
            if b >= 0x20 && b < 0x7F {
                out.unicodeScalars.append(Unicode.Scalar(b))
            } else {
                out += "\\x" + hex2(b)
            }
            n += 1
        }
        return out
    }

    /// Describes one byte for an "unexpected character" message: `'x'` for printable ASCII, otherwise its code.
    static func describe(byte b: UInt8) -> String {
        if b >= 0x21 && b < 0x7F { return "'" + String(Unicode.Scalar(b)) + "'" }
        if b == ASCII.space { return "space" }
        if b < 0x80 { return "control character U+00" + hex2(b) }
        return "byte 0x" + hex2(b)
    }

    static func hex2(_ b: UInt8) -> String {
        let digits: [Character] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F"]
        return String(digits[Int(b >> 4)]) + String(digits[Int(b & 0x0F)])
    }
}

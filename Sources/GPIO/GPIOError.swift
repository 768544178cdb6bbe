import Glibc

/// An errno value from a failed C call, shown with the C library's text for it.
public struct GPIOErrno: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Int32

    public init(_ code: Int32) {
        self.code = code
    }

    public static let noSuchEntry = GPIOErrno(ENOENT)
    public static let busy = GPIOErrno(EBUSY)
    public static let ioError = GPIOErrno(EIO)
    public static let permissionDenied = GPIOErrno(EACCES)
    public static let notSupported = GPIOErrno(EOPNOTSUPP)

    /// "Device or resource busy", as strerror(3) says it.
    public var description: String {
        // strerror returns a constant string for every known code (glibc); unknown codes print
        // as "Unknown error N" from a buffer, which is still fine for a message.
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }
}

/// Why a GPIO operation failed, with the chip, line and role it concerned.
public enum GPIOError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No chip carries `label`; `found` says what there was (labels, or unreadable devices).
    case noSuchChip(label: String, found: [String])
    /// Opening or listing chips failed for another reason.
    case chipUnavailable(label: String, errno: GPIOErrno)
    /// The chip has no line of that name.
    case noSuchLine(line: String, chip: String, role: String)
    /// Another consumer (another program, or the kernel) holds the line.
    case lineBusy(line: String, chip: String, role: String)
    /// The kernel refused the request for another reason.
    case requestFailed(line: String, chip: String, role: String, errno: GPIOErrno)
    /// Reading the line's value or its edge events failed.
    case readFailed(line: String, chip: String, role: String, errno: GPIOErrno)
    /// Setting an output failed.
    case writeFailed(line: String, chip: String, role: String, errno: GPIOErrno)
    /// Waiting for edges failed as a whole (not on one line).
    case waitFailed(chip: String, errno: GPIOErrno)
    /// The caller asked for something that cannot be: a line twice, an unknown index or role.
    case invalidRequest(String)
    /// The backend was closed (or a failed request closed it).
    case closed

    public var description: String {
        switch self {
        case .noSuchChip(let label, let found):
            let list = found.isEmpty ? "none" : found.joined(separator: ", ")
            return "no GPIO chip labelled \"\(label)\" (found: \(list))"
        case .chipUnavailable(let label, let errno):
            return "cannot open the GPIO chip labelled \"\(label)\": \(errno)"
        case .noSuchLine(let line, let chip, let role):
            return "no line named \"\(line)\" on chip \"\(chip)\" (for role \(role))"
        case .lineBusy(let line, let chip, let role):
            return "line \(line) is busy (used by another program?) on chip \"\(chip)\" (for role \(role))"
        case .requestFailed(let line, let chip, let role, let errno):
            return "cannot request line \(line) on chip \"\(chip)\" (for role \(role)): \(errno)"
        case .readFailed(let line, let chip, let role, let errno):
            return "cannot read line \(line) on chip \"\(chip)\" (for role \(role)): \(errno)"
        case .writeFailed(let line, let chip, let role, let errno):
            return "cannot set line \(line) on chip \"\(chip)\" (for role \(role)): \(errno)"
        case .waitFailed(let chip, let errno):
            return "waiting for GPIO edges on chip \"\(chip)\" failed: \(errno)"
        case .invalidRequest(let what):
            return "invalid GPIO request: \(what)"
        case .closed:
            return "the GPIO backend is closed"
        }
    }
}

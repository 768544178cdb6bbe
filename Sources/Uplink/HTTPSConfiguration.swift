#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How the van reaches the center: the URL, the van's client certificate and key, how the center is
/// checked (a CA file, a pinned public key, or both), and the limits that keep a bad link from
/// holding the delivery up.
///
/// `validate()` checks all of it before anything is sent: an `http://` URL, a missing or unreadable
/// file, or a key file that the group or others can read are refused with a message naming the file.
public struct HTTPSConfiguration: Sendable, Equatable {
    /// The center's alert endpoint, `https://...` (for example `https://center.example/alerts`).
    public var url: String
    /// The van's client certificate (PEM), sent in the TLS handshake.
    public var clientCertificatePath: String
    /// Its private key (PEM, unencrypted); must not be readable by group or others (`chmod 600`).
    public var clientKeyPath: String
    /// The CA that signed the center's certificate (PEM). Only this CA is trusted, not the system's.
    public var caFilePath: String?
    /// The center's public key, `sha256//BASE64` (several may be joined with `;`). With a pin and no CA
    /// file, the pin alone decides whether the center is trusted (a self-signed center works).
    public var pinnedPublicKey: String?
    /// headcount's version, sent as `User-Agent: headcount/VERSION`.
    public var softwareVersion: String
    /// Time allowed to set up a connection (TCP and TLS).
    public var connectTimeout: Duration
    /// Time allowed for a whole POST, connecting included.
    public var totalTimeout: Duration
    /// A transfer slower than this many bytes per second for `lowSpeedTime` is aborted as stalled.
    public var lowSpeedLimitBytesPerSecond: Int
    public var lowSpeedTime: Duration
    /// Longest answer body accepted; a longer one aborts the transfer (`answerTooLarge`).
    public var maxResponseBytes: Int
    /// Whether the client certificate is sent. Only tests turn it off, to see how a center that
    /// requires one refuses a client without.
    var sendsClientCertificate = true

    public init(
        url: String, clientCertificatePath: String, clientKeyPath: String, caFilePath: String? = nil,
        pinnedPublicKey: String? = nil, softwareVersion: String, connectTimeout: Duration = .seconds(10),
        totalTimeout: Duration = .seconds(30), lowSpeedLimitBytesPerSecond: Int = 1,
        lowSpeedTime: Duration = .seconds(20), maxResponseBytes: Int = 64 * 1024
    ) {
        self.url = url
        self.clientCertificatePath = clientCertificatePath
        self.clientKeyPath = clientKeyPath
        self.caFilePath = caFilePath
        self.pinnedPublicKey = pinnedPublicKey
        self.softwareVersion = softwareVersion
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.lowSpeedLimitBytesPerSecond = lowSpeedLimitBytesPerSecond
        self.lowSpeedTime = lowSpeedTime
        self.maxResponseBytes = maxResponseBytes
    }

    /// Checks everything that can be checked without connecting: the URL is https, the center can be
    /// checked (CA file or pin), the pin is well formed, the files exist and can be read, the key is
    /// private to its owner, and the limits are in bounds.
    public func validate() throws(HTTPSError) {
        try Self.checkURL(url)
        if caFilePath == nil && pinnedPublicKey == nil { throw HTTPSError(.noServerCheck) }
        if let pinnedPublicKey { try Self.checkPin(pinnedPublicKey) }
        if let caFilePath { try Self.checkReadable(caFilePath, role: .caFile) }
        if sendsClientCertificate {
            try Self.checkReadable(clientCertificatePath, role: .clientCertificate)
            try Self.checkPrivateKey(clientKeyPath)
        }
        for (name, value) in [("connect timeout", connectTimeout), ("total timeout", totalTimeout)] {
            guard value >= .milliseconds(1) else { throw HTTPSError(.badSetting("\(name) must be positive")) }
        }
        guard lowSpeedLimitBytesPerSecond >= 1, lowSpeedTime >= .seconds(1) else {
            throw HTTPSError(.badSetting("the low-speed limit must be at least 1 byte/s over at least 1 s"))
        }
        guard maxResponseBytes >= 1 else { throw HTTPSError(.badSetting("the answer cap must be positive")) }
    }

    /// The User-Agent header's value.
    public var userAgent: String { "headcount/\(softwareVersion)" }

    static func checkURL(_ url: String) throws(HTTPSError) {
        let lowered = url.lowercased()
        if lowered.hasPrefix("http://") { throw HTTPSError(.plainHTTPRefused(url: url)) }
        guard lowered.hasPrefix("https://") else { throw HTTPSError(.unsupportedURL(url: url)) }
        let rest = url.utf8.dropFirst("https://".utf8.count)
        let host = rest.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        let printable = url.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
        guard !host.isEmpty, printable else { throw HTTPSError(.unsupportedURL(url: url)) }
    }

    static func checkPin(_ pin: String) throws(HTTPSError) {
        let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".utf8)
        for part in pin.split(separator: ";", omittingEmptySubsequences: false) {
            let value = part.utf8
            let prefix = "sha256//".utf8
            guard value.starts(with: prefix) else { throw HTTPSError(.badPinnedKey(pin)) }
            let encoded = value.dropFirst(prefix.count)
            // The base64 of 32 bytes: 44 characters, the last one "=".
            guard encoded.count == 44, encoded.allSatisfy(base64.contains) else {
                throw HTTPSError(.badPinnedKey(pin))
            }
        }
    }

    /// The file exists, is a regular file and this process can read it.
    static func checkReadable(_ path: String, role: HTTPSError.FileRole) throws(HTTPSError) {
        _ = try status(of: path, role: role)
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw HTTPSError(.fileUnusable(role: role, path: path, reason: reason(errno)))
        }
        close(descriptor)
    }

    /// Like `checkReadable`, and the permission bits give nothing to group or others.
    static func checkPrivateKey(_ path: String) throws(HTTPSError) {
        let mode = try status(of: path, role: .clientKey)
        if mode & 0o077 != 0 { throw HTTPSError(.keyFileExposed(path: path, mode: mode & 0o7777)) }
        try checkReadable(path, role: .clientKey)
    }

    /// The file's mode, after checking that it is there and is a regular file.
    private static func status(of path: String, role: HTTPSError.FileRole) throws(HTTPSError) -> UInt32 {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw HTTPSError(.fileUnusable(role: role, path: path, reason: reason(errno)))
        }
        let mode = UInt32(info.st_mode)
        guard mode & UInt32(S_IFMT) == UInt32(S_IFREG) else {
            throw HTTPSError(.fileUnusable(role: role, path: path, reason: "not a regular file"))
        }
        guard info.st_size > 0 else { throw HTTPSError(.fileUnusable(role: role, path: path, reason: "empty file")) }
        return mode
    }

    private static func reason(_ code: Int32) -> String {
        switch code {
        case ENOENT: "no such file"
        case EACCES: "permission denied (the daemon's user cannot read it)"
        case ENOTDIR: "a directory on the path is not a directory"
        default: String(cString: strerror(code))
        }
    }
}

import CCurl

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why a POST to the center did not get an HTTP answer, in words a technician can act on, with
/// libcurl's own explanation (its CURLOPT_ERRORBUFFER text) kept beside it.
///
/// `description` is the line for the journal and `headcount diagnose`, for example
/// `TLS: server certificate not trusted by /etc/headcount/tls/center-ca.crt (curl: SSL certificate
/// problem: unable to get local issuer certificate)`.
///
/// An HTTP answer of any status (4xx and 5xx included) is not an error: it comes back as
/// `HTTPSResponse`, and the delivery decides what it means.
public struct HTTPSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which file of the configuration a `.fileUnusable` error is about.
    public enum FileRole: String, Sendable, Equatable {
        case clientCertificate = "client certificate"
        case clientKey = "client key"
        case caFile = "CA file"
    }

    /// What went wrong. The first group is found before anything is sent (fix the configuration or the
    /// files; retrying does not help); the rest happen on the wire.
    public enum Kind: Sendable, Equatable {
        /// The center URL is `http://`: refused up front, nothing is sent.
        case plainHTTPRefused(url: String)
        /// The center URL is not an `https://host...` URL.
        case unsupportedURL(url: String)
        /// Neither a CA file nor a pinned key: the center could not be checked.
        case noServerCheck
        /// A pinned key that is not `sha256//` and base64.
        case badPinnedKey(String)
        /// A certificate, key or CA file that is missing or cannot be read.
        case fileUnusable(role: FileRole, path: String, reason: String)
        /// The client key can be read by the group or others (`mode` holds the permission bits).
        case keyFileExposed(path: String, mode: UInt32)
        /// A setting out of its bounds (a timeout, the answer cap).
        case badSetting(String)
        /// The request itself cannot be sent (an Idempotency-Key that is not a header value).
        case badRequest(String)

        /// The center's certificate does not chain to the configured CA (or has the wrong name, or has
        /// expired).
        case serverNotTrusted(caFile: String?)
        /// The center's public key is not the pinned one.
        case pinnedKeyMismatch
        /// The center refused our client certificate during the handshake; `alert` is what it said
        /// ("certificate expired", "unknown ca", "certificate required"...).
        case clientCertificateRejected(alert: String)
        /// libcurl could not use our certificate and key (not PEM, or they do not belong together).
        case clientCertificateUnusable(certificate: String, key: String)
        /// libcurl could not load the CA file.
        case caFileUnusable(path: String)
        /// The TLS handshake failed for another reason (no common version or cipher...).
        case tlsHandshakeFailed

        /// The center's name does not resolve.
        case couldNotResolve
        /// Nothing listens on the center's port.
        case connectionRefused
        /// No route, network down, or another failure to connect.
        case couldNotConnect
        /// The connect timeout or the total timeout passed.
        case timedOut
        /// The link stalled: less than the low-speed limit for the low-speed time.
        case stalled
        /// The center closed the connection without answering, or the connection broke.
        case connectionDropped
        /// The answer was longer than the configured cap; the transfer was cut off.
        case answerTooLarge(limit: Int)
        /// The center answered something that is not HTTP.
        case badAnswer

        /// The caller's task was cancelled (the POST may or may not have reached the center).
        case cancelled
        /// The client was shut down before or during the POST.
        case shutDown
        /// Any other libcurl failure; `curlCode` and `curlMessage` say which.
        case other
    }

    public let kind: Kind
    /// The CURLcode, when libcurl reported the failure.
    public let curlCode: Int?
    /// libcurl's CURLOPT_ERRORBUFFER text (or curl_easy_strerror when the buffer was empty).
    public let curlMessage: String

    public init(_ kind: Kind, curlCode: Int? = nil, curlMessage: String = "") {
        self.kind = kind
        self.curlCode = curlCode
        self.curlMessage = curlMessage
    }

    /// True for the errors found before connecting: the configuration or its files must change.
    public var isConfigurationError: Bool {
        switch kind {
        case .plainHTTPRefused, .unsupportedURL, .noServerCheck, .badPinnedKey, .fileUnusable, .keyFileExposed,
            .badSetting, .badRequest:
            true
        default: false
        }
    }

    public var description: String {
        let curl = curlMessage.isEmpty ? "" : " (curl: \(curlMessage))"
        return summary + curl
    }

    /// The message without libcurl's text.
    public var summary: String {
        switch kind {
        case .plainHTTPRefused(let url):
            return "refusing \(url): the center is reached over https only (mutual TLS); plain http is never used"
        case .unsupportedURL(let url):
            return "center URL \"\(url)\" is not an https://host/... URL"
        case .noServerCheck:
            return "TLS: neither a CA file nor a pinned key is configured: the center could not be checked"
        case .badPinnedKey(let pin):
            return "TLS: pinned key \"\(pin)\" is not sha256//BASE64 (the base64 of the SHA-256 of the DER public key)"
        case .fileUnusable(let role, let path, let reason):
            return "\(role.rawValue) \(path): \(reason)"
        case .keyFileExposed(let path, let mode):
            return "client key \(path) is readable by group or others (mode \(Self.octal(mode))): "
                + "run chmod 600 \(path)"
        case .badSetting(let what):
            return "HTTPS setting: \(what)"
        case .badRequest(let what):
            return "request not sent: \(what)"
        case .serverNotTrusted(let caFile):
            if let caFile { return "TLS: server certificate not trusted by \(caFile)" }
            return "TLS: server certificate not trusted"
        case .pinnedKeyMismatch:
            return "TLS: server public key does not match the pinned key"
        case .clientCertificateRejected(let alert):
            return "TLS: the server refused our client certificate (expired or unknown?): it said \"\(alert)\""
        case .clientCertificateUnusable(let certificate, let key):
            return "TLS: cannot use client certificate \(certificate) with key \(key) (both PEM? a matching pair?)"
        case .caFileUnusable(let path):
            return "TLS: cannot load CA file \(path) (PEM?)"
        case .tlsHandshakeFailed:
            return "TLS: handshake failed"
        case .couldNotResolve:
            return "could not resolve the center's host name"
        case .connectionRefused:
            return "connection refused"
        case .couldNotConnect:
            return "could not connect"
        case .timedOut:
            return "timed out"
        case .stalled:
            return "link stalled: the transfer stopped moving"
        case .connectionDropped:
            return "connection dropped: the server closed it without answering"
        case .answerTooLarge(let limit):
            return "answer too large: over \(limit) bytes"
        case .badAnswer:
            return "the server's answer is not HTTP"
        case .cancelled:
            return "cancelled"
        case .shutDown:
            return "the HTTPS client is shut down"
        case .other:
            return "HTTPS failed (curl error \(curlCode.map(String.init) ?? "?"))"
        }
    }

    static func octal(_ mode: UInt32) -> String {
        let digits = String(mode & 0o7777, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

/// Turns a failed `curl_easy_perform` into an `HTTPSError.Kind`; pure, so every branch is tested.
struct HTTPSFailure {
    var code: CURLcode
    /// The error buffer's text.
    var message: String
    /// CURLINFO_OS_ERRNO.
    var osErrno: Int
    /// The write callback cut the answer off at the cap.
    var answerCapped: Bool
    /// The xferinfo callback aborted because the caller cancelled or the client is shutting down.
    var abortedBy: HTTPSError.Kind?
    var caFile: String?
    var certificatePath: String
    var keyPath: String
    var maxResponseBytes: Int
    /// The header callback saw at least one line of the answer (its status line).
    var answerStarted = false

    /// TLS alerts a server sends about the client's certificate, as OpenSSL spells them in its errors
    /// ("...:tlsv13 alert certificate required", "...:sslv3 alert certificate expired").
    static let clientCertificateAlerts = [
        "certificate required", "certificate expired", "bad certificate", "unknown ca", "certificate unknown",
        "certificate revoked", "unsupported certificate", "access denied",
    ]

    var kind: HTTPSError.Kind {
        let lowered = message.lowercased()
        if let alert = Self.clientCertificateAlerts.first(where: { lowered.contains("alert \($0)") }) {
            return .clientCertificateRejected(alert: alert)
        }
        switch code {
        case CURLE_WRITE_ERROR where answerCapped, CURLE_FILESIZE_EXCEEDED:
            return .answerTooLarge(limit: maxResponseBytes)
        case CURLE_ABORTED_BY_CALLBACK:
            return abortedBy ?? .cancelled
        case CURLE_PEER_FAILED_VERIFICATION:
            // libcurl (7.88, OpenSSL) reports the server's "certificate expired" alert about OUR
            // certificate (TLS 1.2) with this code too, as "SSL certificate verification failed"; its own
            // verdict on the server reads "SSL certificate problem: <reason>". With a pinned key only,
            // the server is not verified at all, so this code can only be that alert.
            if caFile == nil || !lowered.hasPrefix("ssl certificate problem") {
                return .clientCertificateRejected(alert: "certificate expired")
            }
            return .serverNotTrusted(caFile: caFile)
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            return .pinnedKeyMismatch
        case CURLE_SSL_CERTPROBLEM:
            return .clientCertificateUnusable(certificate: certificatePath, key: keyPath)
        case CURLE_SSL_CACERT_BADFILE:
            return .caFileUnusable(path: caFile ?? "")
        case CURLE_SSL_CONNECT_ERROR:
            if lowered.contains("reset by peer") || lowered.contains("errno 104") {
                return .connectionDropped
            }
            return .tlsHandshakeFailed
        case CURLE_COULDNT_RESOLVE_HOST:
            return .couldNotResolve
        case CURLE_COULDNT_CONNECT:
            return osErrno == Int(ECONNREFUSED) ? .connectionRefused : .couldNotConnect
        case CURLE_OPERATION_TIMEDOUT:
            return lowered.contains("too slow") ? .stalled : .timedOut
        case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2,
            CURLE_HTTP2_STREAM:
            return .connectionDropped
        case CURLE_WEIRD_SERVER_REPLY:
            return .badAnswer
        case CURLE_UNSUPPORTED_PROTOCOL where lowered.contains("http/0.9") || lowered.contains("response"):
            // The URL was checked before anything was sent and redirects are never followed: at this
            // point libcurl (7.88) uses this code for an answer that is not HTTP ("Received HTTP/0.9
            // when not allowed", "Unsupported HTTP version in response", "Unsupported response code
            // in HTTP response").
            return .badAnswer
        case CURLE_UNSUPPORTED_PROTOCOL:
            return .unsupportedURL(url: "")
        case CURLE_OUT_OF_MEMORY where answerStarted:
            // libcurl refuses a header line of 100 KiB or more with this code, once the answer began.
            return .badAnswer
        default:
            return .other
        }
    }
}

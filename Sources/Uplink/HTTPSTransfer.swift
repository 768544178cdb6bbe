import CCurl

/// What the center answered to one POST. Any HTTP status is an answer, 4xx and 5xx included.
public struct HTTPSResponse: Sendable, Equatable {
    public var status: Int
    /// The answer body, at most `HTTPSConfiguration.maxResponseBytes` long.
    public var body: [UInt8]
    /// `Retry-After`, when the center sent it in seconds (with a 429 or 503, typically).
    public var retryAfterSeconds: Int?
    /// Whether this POST opened a new connection (and made a TLS handshake) rather than reusing one.
    public var newConnection: Bool
    /// The HTTP version spoken: "1.1" or "2".
    public var httpVersion: String
    /// From the start of the POST to the end of the answer.
    public var totalTime: Duration

    public init(
        status: Int, body: [UInt8], retryAfterSeconds: Int? = nil, newConnection: Bool = true,
        httpVersion: String = "1.1", totalTime: Duration = .zero
    ) {
        self.status = status
        self.body = body
        self.retryAfterSeconds = retryAfterSeconds
        self.newConnection = newConnection
        self.httpVersion = httpVersion
        self.totalTime = totalTime
    }
}

/// The one libcurl easy handle of an `HTTPSClient`, kept from POST to POST so the connection (and its
/// TLS session) is reused. Not thread-safe: it lives on the client's own thread, and
/// `curl_easy_perform` runs nowhere else.
final class HTTPSSession {
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let configuration: HTTPSConfiguration

    init(_ configuration: HTTPSConfiguration) throws(HTTPSError) {
        guard CurlLibrary.initialized, let handle = curl_easy_init() else {
            throw HTTPSError(.other, curlMessage: "libcurl could not be initialised (curl_easy_init failed)")
        }
        self.handle = handle
        self.configuration = configuration
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        try configure()
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Everything that stays the same from POST to POST.
    private func configure() throws(HTTPSError) {
        let settings = configuration
        try set(CURLOPT_ERRORBUFFER, pointer: UnsafeMutableRawPointer(errorBuffer))
        try set(CURLOPT_URL, string: settings.url)
        try check(hc_curl_restrict_to_https(handle), "CURLOPT_PROTOCOLS_STR")
        try set(CURLOPT_FOLLOWLOCATION, long: 0)
        // No proxy from the environment (http_proxy, https_proxy): the van talks to its center only.
        try set(CURLOPT_PROXY, string: "")
        try set(CURLOPT_NOSIGNAL, long: 1)
        try set(CURLOPT_SSLVERSION, long: Int(CURL_SSLVERSION_TLSv1_2))
        if hc_curl_has_http2() != 0 {
            try set(CURLOPT_HTTP_VERSION, long: Int(CURL_HTTP_VERSION_2TLS))
        }
        if let caFile = settings.caFilePath {
            try set(CURLOPT_SSL_VERIFYPEER, long: 1)
            try set(CURLOPT_SSL_VERIFYHOST, long: 2)
            try set(CURLOPT_CAINFO, string: caFile)
            // Only the configured CA: not the system's certificate directory as well.
            try set(CURLOPT_CAPATH, string: nil)
        } else {
            // A pinned key and no CA file: the pin alone decides (libcurl checks it even so).
            try set(CURLOPT_SSL_VERIFYPEER, long: 0)
            try set(CURLOPT_SSL_VERIFYHOST, long: 0)
        }
        if let pin = settings.pinnedPublicKey {
            try set(CURLOPT_PINNEDPUBLICKEY, string: pin)
        }
        if settings.sendsClientCertificate {
            try set(CURLOPT_SSLCERT, string: settings.clientCertificatePath)
            try set(CURLOPT_SSLCERTTYPE, string: "PEM")
            try set(CURLOPT_SSLKEY, string: settings.clientKeyPath)
            try set(CURLOPT_SSLKEYTYPE, string: "PEM")
        }
        try set(CURLOPT_CONNECTTIMEOUT_MS, long: Self.milliseconds(settings.connectTimeout))
        try set(CURLOPT_TIMEOUT_MS, long: Self.milliseconds(settings.totalTimeout))
        try set(CURLOPT_LOW_SPEED_LIMIT, long: settings.lowSpeedLimitBytesPerSecond)
        try set(CURLOPT_LOW_SPEED_TIME, long: max(1, (Self.milliseconds(settings.lowSpeedTime) + 999) / 1000))
        try set(CURLOPT_MAXFILESIZE_LARGE, offset: Int64(settings.maxResponseBytes))
        try set(CURLOPT_USERAGENT, string: settings.userAgent)
        // A link that dies while idle is noticed by the kernel, not by the next alarm's POST.
        try set(CURLOPT_TCP_KEEPALIVE, long: 1)
        try set(CURLOPT_TCP_KEEPIDLE, long: 30)
        try set(CURLOPT_TCP_KEEPINTVL, long: 15)
        try set(CURLOPT_NOPROGRESS, long: 0)
        try check(
            hc_curl_setopt_write_function(handle) { data, size, count, context in
                guard let context else { return 0 }
                let transfer = Unmanaged<HTTPSTransferState>.fromOpaque(context).takeUnretainedValue()
                return transfer.append(data, size * count)
            }, "CURLOPT_WRITEFUNCTION")
        try check(
            hc_curl_setopt_header_function(handle) { data, size, count, context in
                guard let context else { return 0 }
                let transfer = Unmanaged<HTTPSTransferState>.fromOpaque(context).takeUnretainedValue()
                transfer.header(data, size * count)
                return size * count
            }, "CURLOPT_HEADERFUNCTION")
        try check(
            hc_curl_setopt_xferinfo_function(handle) { context, _, _, _, _ in
                guard let context else { return 1 }
                let transfer = Unmanaged<HTTPSTransferState>.fromOpaque(context).takeUnretainedValue()
                return transfer.shouldContinue() ? 0 : 1
            }, "CURLOPT_XFERINFOFUNCTION")
    }

    /// One POST, on the calling thread (the client's own). `abortReason` is asked about once a second
    /// or more during the transfer; a non-nil answer aborts it with that error.
    func post(
        body: [UInt8], idempotencyKey: String, abortReason: @escaping () -> HTTPSError.Kind?
    ) -> Result<HTTPSResponse, HTTPSError> {
        let transfer = HTTPSTransferState(limit: configuration.maxResponseBytes, abortReason: abortReason)
        var headers: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headers) }
        for line in [
            "Content-Type: application/json", "Accept: application/json", "Idempotency-Key: \(idempotencyKey)",
            // No "Expect: 100-continue" round trip before larger bodies.
            "Expect:",
        ] {
            guard let appended = curl_slist_append(headers, line) else {
                return .failure(HTTPSError(.other, curlMessage: "out of memory building the request headers"))
            }
            headers = appended
        }
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        // POSTFIELDS is not copied: `bytes` stays alive until perform returns.
        let bytes = body.isEmpty ? [0] : body
        let performed = bytes.withUnsafeBytes { raw -> Result<CURLcode, HTTPSError> in
            do throws(HTTPSError) {
                try set(CURLOPT_HTTPHEADER, list: headers)
                try set(CURLOPT_WRITEDATA, pointer: context)
                try set(CURLOPT_HEADERDATA, pointer: context)
                try set(CURLOPT_XFERINFODATA, pointer: context)
                try set(CURLOPT_POSTFIELDSIZE_LARGE, offset: Int64(body.count))
                try set(CURLOPT_POSTFIELDS, pointer: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            } catch {
                return .failure(error)
            }
            errorBuffer[0] = 0
            return .success(withExtendedLifetime(transfer) { curl_easy_perform(handle) })
        }
        let code: CURLcode
        switch performed {
        case .success(let value): code = value
        case .failure(let error): return .failure(error)
        }
        guard code == CURLE_OK else { return .failure(failure(code, transfer)) }
        let status = long(CURLINFO_RESPONSE_CODE) ?? 0
        let versions = [1: "1.0", 2: "1.1", 3: "2", 30: "3"]
        return .success(
            HTTPSResponse(
                status: status, body: transfer.body, retryAfterSeconds: transfer.retryAfterSeconds,
                newConnection: (long(CURLINFO_NUM_CONNECTS) ?? 1) > 0,
                httpVersion: versions[long(CURLINFO_HTTP_VERSION) ?? 0] ?? "?",
                totalTime: .microseconds(offset(CURLINFO_TOTAL_TIME_T) ?? 0)))
    }

    private func failure(_ code: CURLcode, _ transfer: HTTPSTransferState) -> HTTPSError {
        var message = String(cString: errorBuffer)
        if message.isEmpty { message = String(cString: curl_easy_strerror(code)) }
        let failure = HTTPSFailure(
            code: code, message: message, osErrno: long(CURLINFO_OS_ERRNO) ?? 0, answerCapped: transfer.capped,
            abortedBy: transfer.abortedBy, caFile: configuration.caFilePath,
            certificatePath: configuration.clientCertificatePath, keyPath: configuration.clientKeyPath,
            maxResponseBytes: configuration.maxResponseBytes, answerStarted: transfer.headerLines > 0)
        var kind = failure.kind
        if case .unsupportedURL = kind { kind = .unsupportedURL(url: configuration.url) }
        if kind == .badAnswer, code == CURLE_OUT_OF_MEMORY {
            message = "a header line of 100 KiB or more, which libcurl reports as \"\(message)\""
        }
        return HTTPSError(kind, curlCode: Int(code.rawValue), curlMessage: message)
    }

    // MARK: - Typed options and information

    private func set(_ option: CURLoption, long value: Int) throws(HTTPSError) {
        try check(hc_curl_setopt_long(handle, option, value), option)
    }

    private func set(_ option: CURLoption, string value: String?) throws(HTTPSError) {
        guard let value else {
            try check(hc_curl_setopt_string(handle, option, nil), option)
            return
        }
        // libcurl copies string options.
        try check(value.withCString { hc_curl_setopt_string(handle, option, $0) }, option)
    }

    private func set(_ option: CURLoption, pointer value: UnsafeMutableRawPointer?) throws(HTTPSError) {
        try check(hc_curl_setopt_pointer(handle, option, value), option)
    }

    private func set(_ option: CURLoption, offset value: Int64) throws(HTTPSError) {
        try check(hc_curl_setopt_off_t(handle, option, curl_off_t(value)), option)
    }

    private func set(_ option: CURLoption, list value: UnsafeMutablePointer<curl_slist>?) throws(HTTPSError) {
        try check(hc_curl_setopt_slist(handle, option, value), option)
    }

    private func check(_ code: CURLcode, _ option: CURLoption) throws(HTTPSError) {
        try check(code, "option \(option.rawValue)")
    }

    private func check(_ code: CURLcode, _ what: String) throws(HTTPSError) {
        guard code != CURLE_OK else { return }
        let reason = String(cString: curl_easy_strerror(code))
        throw HTTPSError(
            .other, curlCode: Int(code.rawValue),
            curlMessage: "libcurl \(String(cString: hc_curl_version())) refused \(what): \(reason)")
    }

    private func long(_ info: CURLINFO) -> Int? {
        var value = 0
        return hc_curl_getinfo_long(handle, info, &value) == CURLE_OK ? value : nil
    }

    private func offset(_ info: CURLINFO) -> Int64? {
        var value: curl_off_t = 0
        return hc_curl_getinfo_off_t(handle, info, &value) == CURLE_OK ? Int64(value) : nil
    }

    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let total = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return Int(min(max(total.rounded(.up), 0), Double(Int32.max)))
    }
}

/// libcurl's process-wide setup, done once before the first handle.
enum CurlLibrary {
    static let initialized: Bool = hc_curl_global_init() == CURLE_OK

    /// The libcurl loaded at run time, for `diagnose`.
    static var version: String { String(cString: hc_curl_version()) }
}

/// What the callbacks of one transfer collect. Touched only on the client's thread, inside
/// `curl_easy_perform`.
final class HTTPSTransferState {
    private(set) var body: [UInt8] = []
    private(set) var capped = false
    private(set) var retryAfterSeconds: Int?
    private(set) var abortedBy: HTTPSError.Kind?
    /// Header lines received so far, status lines included.
    private(set) var headerLines = 0
    private let limit: Int
    private let abortReason: () -> HTTPSError.Kind?

    init(limit: Int, abortReason: @escaping () -> HTTPSError.Kind?) {
        self.limit = limit
        self.abortReason = abortReason
    }

    /// The write callback: keeps the body, or cuts the transfer off past the cap (returning less than
    /// was given makes libcurl fail with CURLE_WRITE_ERROR).
    func append(_ data: UnsafeMutablePointer<CChar>?, _ length: Int) -> Int {
        guard length > 0 else { return 0 }
        guard let data, body.count + length <= limit else {
            capped = true
            return 0
        }
        body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: length))
        return length
    }

    /// The header callback: one header line at a time, CRLF included.
    func header(_ data: UnsafeMutablePointer<CChar>?, _ length: Int) {
        guard let data, length > 0 else { return }
        headerLines += 1
        let line = UnsafeRawBufferPointer(start: data, count: length)
        if line.starts(with: "HTTP/".utf8) {
            // A new response (after a 100 Continue, say): forget the previous one's headers.
            retryAfterSeconds = nil
            return
        }
        let name = "retry-after:".utf8
        guard line.count > name.count,
            zip(line.prefix(name.count), name).allSatisfy({ $0 | 0x20 == $1 | 0x20 })
        else { return }
        let digits = line.dropFirst(name.count).filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0x0A }
        guard !digits.isEmpty, digits.count <= 9,
            digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return }
        retryAfterSeconds = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
    }

    /// The progress callback: false stops the transfer (CURLE_ABORTED_BY_CALLBACK).
    func shouldContinue() -> Bool {
        guard abortedBy == nil else { return false }
        abortedBy = abortReason()
        return abortedBy == nil
    }
}

import CCurl

/// The van's HTTPS link to the center: POSTs alerts with mutual TLS over one kept-alive connection.
///
/// The client owns one thread and one libcurl easy handle. Every POST runs on that thread, one after
/// another in the order they were made, so the connection and its TLS session are reused from POST
/// to POST; `curl_easy_perform` never runs on the Swift concurrency pool. Async callers are resumed
/// through a continuation; the daemon's delivery thread can call `postBlocking` instead.
///
/// What is refused before anything is sent (see `HTTPSConfiguration.validate()`): an `http://` URL,
/// no CA file and no pinned key, a missing or unreadable certificate, key or CA file, and a key file
/// that group or others can read. On the wire: TLS 1.2 or later, https only (no redirects are
/// followed), the center checked against the CA file and/or the pinned key, HTTP/2 when the center
/// offers it, connect and total timeouts, an abort when the link stalls, and a cap on the answer's
/// size. Every failure is an `HTTPSError` saying what a technician should look at.
public final class HTTPSClient: Sendable {
    public let configuration: HTTPSConfiguration
    private let thread: HTTPSThread

    /// Checks the configuration and its files, prepares the easy handle and starts the thread.
    public init(_ configuration: HTTPSConfiguration) throws(HTTPSError) {
        try configuration.validate()
        self.configuration = configuration
        let session = try HTTPSSession(configuration)
        thread = try HTTPSThread(session: session, name: "headcount-https")
    }

    deinit {
        thread.stop(wait: true)
    }

    /// The libcurl loaded at run time ("7.88.1"), for `diagnose`.
    public static var libcurlVersion: String { CurlLibrary.version }

    /// Whether that libcurl can speak HTTP/2 (built with nghttp2); if so, HTTP/2 is used when the
    /// center offers it.
    public static var libcurlSpeaksHTTP2: Bool { hc_curl_has_http2() != 0 }

    /// POSTs one alert (`body`, its JSON) with `idempotencyKey` (the alert's id) and returns the
    /// center's answer, whatever its status. Cancelling the task aborts the transfer (`.cancelled`);
    /// the center may have received the alert all the same.
    public func post(body: [UInt8], idempotencyKey: String) async throws(HTTPSError) -> (status: Int, body: [UInt8]) {
        let response = try await send(body: body, idempotencyKey: idempotencyKey)
        return (response.status, response.body)
    }

    /// Like `post`, with everything known about the answer (Retry-After, connection reuse, timing).
    public func send(body: [UInt8], idempotencyKey: String) async throws(HTTPSError) -> HTTPSResponse {
        try Self.checkKey(idempotencyKey)
        let cancellation = HTTPSCancellation()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<HTTPSResponse, HTTPSError>, Never>) in
                let job = HTTPSJob(body: body, idempotencyKey: idempotencyKey, cancellation: cancellation) {
                    continuation.resume(returning: $0)
                }
                if !thread.submit(job) { continuation.resume(returning: .failure(HTTPSError(.shutDown))) }
            }
        } onCancel: {
            cancellation.cancel()
        }
        return try result.get()
    }

    /// `post` for a thread of the caller's own (the daemon's delivery thread): blocks the calling
    /// thread until the answer. Never call it from the Swift concurrency pool.
    public func postBlocking(body: [UInt8], idempotencyKey: String) throws(HTTPSError) -> (status: Int, body: [UInt8]) {
        let response = try sendBlocking(body: body, idempotencyKey: idempotencyKey)
        return (response.status, response.body)
    }

    /// `send` for a thread of the caller's own; blocks until the answer.
    public func sendBlocking(body: [UInt8], idempotencyKey: String) throws(HTTPSError) -> HTTPSResponse {
        try Self.checkKey(idempotencyKey)
        let outcome = HTTPSOutcome()
        let job = HTTPSJob(body: body, idempotencyKey: idempotencyKey, cancellation: HTTPSCancellation()) {
            outcome.deliver($0)
        }
        guard thread.submit(job) else { throw HTTPSError(.shutDown) }
        return try outcome.wait().get()
    }

    /// Stops the thread: a POST in progress is aborted and waiting ones fail with `.shutDown`. Returns
    /// once the easy handle is released. Later POSTs fail with `.shutDown`.
    public func shutdown() {
        thread.stop(wait: true)
    }

    /// An Idempotency-Key must be a header value: printable ASCII, no line breaks.
    static func checkKey(_ key: String) throws(HTTPSError) {
        guard !key.isEmpty, key.utf8.count <= 255, key.utf8.allSatisfy({ $0 >= 0x21 && $0 < 0x7F }) else {
            throw HTTPSError(.badRequest("Idempotency-Key \"\(key)\" is not 1-255 printable ASCII characters"))
        }
    }
}

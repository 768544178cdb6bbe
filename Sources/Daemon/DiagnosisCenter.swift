import Dispatch
import Formats
import Hardware
import Synchronization
import Uplink

#if canImport(Glibc)
    import Glibc
#endif

extension Diagnosis {
    /// The parts of an `https://host[:port]/path` URL that DNS and TCP need.
    public struct CenterAddress: Equatable, Sendable {
        public var host: String
        public var port: UInt16
        public var path: String

        public init?(url: String) {
            guard url.lowercased().hasPrefix("https://") else { return nil }
            let rest = url.dropFirst("https://".count)
            let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            path = String(rest.dropFirst(authority.count))
            var hostPart = Substring(authority.split(separator: "@").last ?? "")
            var portText: Substring?
            if hostPart.hasPrefix("[") {
                guard let close = hostPart.firstIndex(of: "]") else { return nil }
                let after = hostPart[hostPart.index(after: close)...]
                if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
                hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            } else if let colon = hostPart.lastIndex(of: ":") {
                portText = hostPart[hostPart.index(after: colon)...]
                hostPart = hostPart[..<colon]
            }
            guard !hostPart.isEmpty else { return nil }
            host = String(hostPart)
            if let portText {
                guard let port = UInt16(portText), port > 0 else { return nil }
                self.port = port
            } else {
                port = 443
            }
        }

        /// The diagnose ping's URL: the alerts URL with its last path segment replaced by `diagnose`.
        public static func pingURL(alertsURL url: String) -> String {
            var base = Substring(url)
            if let query = base.firstIndex(where: { $0 == "?" || $0 == "#" }) { base = base[..<query] }
            while base.hasSuffix("/") { base = base.dropLast() }
            guard let slash = base.lastIndex(of: "/"), !base[..<slash].hasSuffix("/") else {
                return String(base) + "/diagnose"
            }
            return String(base[...slash]) + "diagnose"
        }
    }

    /// DNS, TCP, then TLS with the client certificate and a ping the center answers, and how far
    /// the van's clock is from the center's. Each step bounded in time; a failed step ends the chain.
    public static func center(
        _ center: CenterConfig, vehicleID: String, version: String, stepSeconds: Double = 6
    ) -> (checks: [DiagnosisCheck], centerTime: WallClockTime?) {
        var checks: [DiagnosisCheck] = []
        guard let address = CenterAddress(url: center.url) else {
            return ([DiagnosisCheck("center", "url", .fail, "\(center.url) is not an https://host/… URL")], nil)
        }
        // DNS
        let started = Diagnosis.now()
        let resolved = resolve(address.host, port: address.port, timeoutSeconds: stepSeconds)
        let dnsMilliseconds = Int((Diagnosis.now() - started) * 1000)
        let addresses: [ResolvedAddress]
        switch resolved {
        case .success(let found):
            addresses = found
            let list = found.map(\.text).prefix(3).joined(separator: ", ")
            let literal = found.count == 1 && found[0].text == address.host
            checks.append(
                DiagnosisCheck(
                    "center", "dns", .pass,
                    literal ? "\(address.host) is an address: no lookup needed" : "\(address.host) → \(list)",
                    milliseconds: literal ? nil : dnsMilliseconds))
        case .failure(let problem):
            checks.append(
                DiagnosisCheck(
                    "center", "dns", .fail, "\(address.host): \(problem)",
                    hint:
                        "the center's name does not resolve: check the mobile data link (`ip route`, the modem), "
                        + "/etc/resolv.conf, and the url = in [center]; TCP and TLS were not tried",
                    milliseconds: dnsMilliseconds))
            return (checks, nil)
        }
        // TCP
        let connectStart = Diagnosis.now()
        var connected: ResolvedAddress?
        var lastProblem = "no address"
        for candidate in addresses.prefix(4) {
            let remaining = stepSeconds - (Diagnosis.now() - connectStart)
            guard remaining > 0.1 else { break }
            if let problem = connect(candidate, timeoutSeconds: remaining) {
                lastProblem = "\(candidate.text) port \(address.port): \(problem)"
            } else {
                connected = candidate
                break
            }
        }
        let tcpMilliseconds = Int((Diagnosis.now() - connectStart) * 1000)
        guard let connected else {
            checks.append(
                DiagnosisCheck(
                    "center", "tcp", .fail, lastProblem,
                    hint:
                        "nothing answers on the center's port: a firewall, the APN of the SIM, or the center is down; "
                        + "TLS was not tried",
                    milliseconds: tcpMilliseconds))
            return (checks, nil)
        }
        checks.append(
            DiagnosisCheck(
                "center", "tcp", .pass, "connected to \(connected.text) port \(address.port)",
                milliseconds: tcpMilliseconds))
        // TLS with the client certificate, and the ping.
        let (tls, centerTime) = ping(center, vehicleID: vehicleID, version: version, timeoutSeconds: stepSeconds + 4)
        checks += tls
        return (checks, centerTime)
    }

    private static func ping(
        _ center: CenterConfig, vehicleID: String, version: String, timeoutSeconds: Double
    ) -> ([DiagnosisCheck], WallClockTime?) {
        let url = CenterAddress.pingURL(alertsURL: center.url)
        let configuration = HTTPSConfiguration(
            url: url, clientCertificatePath: center.clientCertificate, clientKeyPath: center.clientKey,
            caFilePath: center.caFile, pinnedPublicKey: center.pinnedKey, softwareVersion: version,
            connectTimeout: .milliseconds(Int(timeoutSeconds * 600)),
            totalTimeout: .milliseconds(Int(timeoutSeconds * 1000)),
            lowSpeedTime: .seconds(Int(max(1, timeoutSeconds / 2))))
        let client: HTTPSClient
        do {
            client = try HTTPSClient(configuration)
        } catch {
            return ([DiagnosisCheck("center", "tls", .fail, error.description, hint: tlsHint(error, center))], nil)
        }
        defer { client.shutdown() }
        let body = JSON.serialize(
            .object([
                "vehicle_id": .string(vehicleID), "sent_at": .string(WallClockTime.now().rfc3339),
                "software_version": .string(version),
            ]))
        let key = "diagnose-\(UInt64.random(in: 0...UInt64.max))"
        let response: HTTPSResponse
        do {
            response = try client.sendBlocking(body: Array(body.utf8), idempotencyKey: key)
        } catch {
            return ([DiagnosisCheck("center", "tls", .fail, error.description, hint: tlsHint(error, center))], nil)
        }
        let milliseconds =
            Int(response.totalTime.components.seconds * 1000)
            + Int(response.totalTime.components.attoseconds / 1_000_000_000_000_000)
        let verified = center.caFile.map { "checked against \($0)" } ?? "pinned key matched"
        var checks = [
            DiagnosisCheck(
                "center", "tls", .pass,
                "mutual TLS with \(center.clientCertificate); the center's certificate \(verified) (HTTP \(response.httpVersion))"
            )
        ]
        let answer = try? JSON.parse(String(decoding: response.body, as: UTF8.self))
        switch response.status {
        case 200..<300:
            let subject = answer?["client_subject"]?.stringValue
            let receivedAt = answer?["received_at"]?.stringValue.flatMap(WallClockTime.init(rfc3339:))
            checks.append(
                DiagnosisCheck(
                    "center", "ping", .pass,
                    "\(url) answered \(response.status)"
                        + (subject.map { ", our certificate seen as \"\($0)\"" } ?? ""),
                    milliseconds: milliseconds))
            return (checks, receivedAt)
        case 404:
            checks.append(
                DiagnosisCheck(
                    "center", "ping", .warn, "\(url) answered 404: this center has no diagnose ping",
                    hint: "TLS works; ask the center to add POST /diagnose (docs/openapi.yaml) to check the rest",
                    milliseconds: milliseconds))
        case 401, 403:
            checks.append(
                DiagnosisCheck(
                    "center", "ping", .fail, "\(url) answered \(response.status): the center does not accept this van",
                    hint: "the certificate is valid but not registered for this vehicle at the center: ask the center",
                    milliseconds: milliseconds))
        default:
            let problem = answer?["error"]?.stringValue ?? String(decoding: response.body.prefix(200), as: UTF8.self)
            checks.append(
                DiagnosisCheck(
                    "center", "ping", .fail, "\(url) answered \(response.status): \(problem)",
                    hint: response.status >= 500
                        ? "the center has a problem: alerts are kept and retried; tell the center"
                        : "the center refused the ping: check url = in [center]",
                    milliseconds: milliseconds))
        }
        return (checks, nil)
    }

    static func tlsHint(_ error: HTTPSError, _ center: CenterConfig) -> String {
        switch error.kind {
        case .serverNotTrusted:
            return "the center's certificate does not chain to ca_file \(center.caFile ?? "(none)"), has another "
                + "name than the URL's host, or has expired; a van clock far off also makes it fail (see clock)"
        case .pinnedKeyMismatch:
            return "the center's key is not pinned_key: was the center's certificate renewed with a new key? "
                + "get the new pin from the center"
        case .clientCertificateRejected:
            return "the center refused this van's certificate: expired, revoked, or not issued by the center's CA"
        case .clientCertificateUnusable:
            return "client_certificate and client_key do not belong together, or are not PEM"
        case .caFileUnusable:
            return "ca_file is not a PEM CA certificate"
        case .keyFileExposed(let path, _):
            return "the key must be readable by its owner only: chmod 600 \(path); chown headcount \(path)"
        case .fileUnusable:
            return "a file named in [center] is missing or unreadable: check the paths and run as root"
        case .timedOut, .stalled:
            return "the TLS handshake or the answer took too long: a very slow link, or a proxy in the way"
        case .connectionDropped, .tlsHandshakeFailed:
            return "the center closed the connection during the handshake: it may not accept this certificate "
                + "or TLS version"
        default:
            return "see the message; the van retries alerts on its own"
        }
    }

    struct ResolvedAddress: Sendable {
        var family: Int32
        var storage: [UInt8]
        var text: String
    }

    enum Resolution: Sendable {
        case success([ResolvedAddress])
        case failure(String)
    }

    /// getaddrinfo on a thread of its own, so a resolver that hangs cannot hang the diagnosis.
    static func resolve(_ host: String, port: UInt16, timeoutSeconds: Double) -> Resolution {
        let answer = Mutex<Resolution?>(nil)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue(label: "diagnose dns").async {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var list: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &list)
            var result: Resolution
            if status != 0 {
                result = .failure(String(cString: gai_strerror(status)))
            } else {
                var found: [ResolvedAddress] = []
                var cursor = list
                while let entry = cursor {
                    let info = entry.pointee
                    if let address = info.ai_addr {
                        let bytes = [UInt8](
                            UnsafeRawBufferPointer(start: UnsafeRawPointer(address), count: Int(info.ai_addrlen)))
                        var name = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                        getnameinfo(address, info.ai_addrlen, &name, socklen_t(name.count), nil, 0, NI_NUMERICHOST)
                        let text = String(
                            decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                        if !found.contains(where: { $0.text == text }) {
                            found.append(ResolvedAddress(family: info.ai_family, storage: bytes, text: text))
                        }
                    }
                    cursor = info.ai_next
                }
                freeaddrinfo(list)
                result = found.isEmpty ? .failure("no address") : .success(found)
            }
            answer.withLock { $0 = result }
            done.signal()
        }
        if done.wait(timeout: .now() + timeoutSeconds) == .timedOut {
            return .failure("no answer from the resolver within \(Int(timeoutSeconds)) s")
        }
        return answer.withLock { $0 } ?? .failure("no answer")
    }

    /// A non-blocking connect bounded by `timeoutSeconds`; nil when it connected, else why not.
    static func connect(_ address: ResolvedAddress, timeoutSeconds: Double) -> String? {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        let status = address.storage.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return Int32(-1) }
            return Glibc.connect(fd, base.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
        if status == 0 { return nil }
        guard errno == EINPROGRESS else { return String(cString: strerror(errno)) }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&poller, 1, Int32(timeoutSeconds * 1000))
        if ready == 0 { return "no answer within \(Int(timeoutSeconds.rounded())) s" }
        guard ready > 0 else { return String(cString: strerror(errno)) }
        var problem: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &problem, &length)
        return problem == 0 ? nil : String(cString: strerror(problem))
    }

    /// The client certificate and the CA file: valid now, and for how long.
    public static func certificates(_ center: CenterConfig, now: WallClockTime = .now()) -> [DiagnosisCheck] {
        var files = [("client", center.clientCertificate)]
        if let caFile = center.caFile { files.append(("ca", caFile)) }
        var checks: [DiagnosisCheck] = []
        for (name, path) in files {
            let certificates: [CertificateValidity]
            do {
                certificates = try CertificateValidity.read(pemFile: path)
            } catch {
                checks.append(
                    DiagnosisCheck(
                        "certificate", name, .fail, error.description,
                        hint: "check the path in [center] and that the file is a PEM certificate"))
                continue
            }
            // The one that runs out first is the one that matters.
            guard let first = certificates.min(by: { $0.notAfter < $1.notAfter }) else { continue }
            let subject = first.commonName.map { "\"\($0)\"" } ?? "(no common name)"
            let days = Int(((first.notAfter.secondsSinceEpoch - now.secondsSinceEpoch) / 86400).rounded(.down))
            let until = String(first.notAfter.rfc3339.prefix(10))
            if now < first.notBefore {
                checks.append(
                    DiagnosisCheck(
                        "certificate", name, .fail, "\(path) \(subject) is not valid before \(first.notBefore.rfc3339)",
                        hint: "either the van's clock is wrong (see clock) or the certificate was issued for later"))
            } else if first.notAfter < now {
                checks.append(
                    DiagnosisCheck(
                        "certificate", name, .fail, "\(path) \(subject) expired on \(until)",
                        hint: name == "client"
                            ? "the center will refuse this van: get a new certificate for it from the center"
                            : "the center cannot be checked with an expired CA: get the current CA file from the center"
                    ))
            } else if days < 30 {
                checks.append(
                    DiagnosisCheck(
                        "certificate", name, .warn, "\(path) \(subject) expires on \(until), in \(days) days",
                        hint: name == "client"
                            ? "renew it before then: the center will refuse an expired certificate"
                            : "get the center's next CA file before then: an expired CA cannot check the center"))
            } else {
                checks.append(
                    DiagnosisCheck("certificate", name, .pass, "\(path) \(subject) valid until \(until) (\(days) days)")
                )
            }
        }
        return checks
    }
}

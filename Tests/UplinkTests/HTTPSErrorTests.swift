import CCurl
import Foundation
import Testing

@testable import Uplink

/// How libcurl failures become technician-readable errors, and what the configuration refuses before
/// anything is sent. No network here.
struct HTTPSErrorTests {
    static func failure(
        _ code: CURLcode, _ message: String = "", osErrno: Int = 0, capped: Bool = false,
        caFile: String? = "/etc/headcount/tls/center-ca.crt"
    ) -> HTTPSError.Kind {
        HTTPSFailure(
            code: code, message: message, osErrno: osErrno, answerCapped: capped,
            abortedBy: nil, caFile: caFile, certificatePath: "/etc/headcount/tls/van.crt",
            keyPath: "/etc/headcount/tls/van.key", maxResponseBytes: 65536
        ).kind
    }

    @Test func serverVerificationFailuresNameTheCAFile() {
        let kind = Self.failure(
            CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem: unable to get local issuer certificate")
        #expect(kind == .serverNotTrusted(caFile: "/etc/headcount/tls/center-ca.crt"))
        let error = HTTPSError(kind, curlCode: 60, curlMessage: "SSL certificate problem: self-signed certificate")
        #expect(
            error.description
                == "TLS: server certificate not trusted by /etc/headcount/tls/center-ca.crt "
                + "(curl: SSL certificate problem: self-signed certificate)")
    }

    @Test func theServersAlertsAboutOurCertificateAreRecognised() {
        // TLS 1.3: the alert arrives when reading the answer.
        #expect(
            Self.failure(
                CURLE_RECV_ERROR,
                "OpenSSL SSL_read: OpenSSL/3.0.22: error:0A00045C:SSL routines::tlsv13 alert certificate required")
                == .clientCertificateRejected(alert: "certificate required"))
        #expect(
            Self.failure(CURLE_SSL_CONNECT_ERROR, "OpenSSL/3.0.22: error:0A000418:SSL routines::tlsv1 alert unknown ca")
                == .clientCertificateRejected(alert: "unknown ca"))
        // TLS 1.2, libcurl 7.88: the server's "certificate expired" comes back as code 60, with a text
        // other than libcurl's own verdict on the server ("SSL certificate problem: ...").
        #expect(
            Self.failure(CURLE_PEER_FAILED_VERIFICATION, "SSL certificate verification failed")
                == .clientCertificateRejected(alert: "certificate expired"))
        #expect(
            Self.failure(CURLE_PEER_FAILED_VERIFICATION, "SSL certificate verification failed", caFile: nil)
                == .clientCertificateRejected(alert: "certificate expired"))
    }

    @Test func networkFailures() {
        #expect(Self.failure(CURLE_COULDNT_CONNECT, osErrno: Int(ECONNREFUSED)) == .connectionRefused)
        #expect(Self.failure(CURLE_COULDNT_CONNECT, osErrno: Int(ENETUNREACH)) == .couldNotConnect)
        #expect(
            Self.failure(CURLE_OPERATION_TIMEDOUT, "Operation timed out after 1000 milliseconds with 0 bytes received")
                == .timedOut)
        #expect(
            Self.failure(
                CURLE_OPERATION_TIMEDOUT, "Operation too slow. Less than 1 bytes/sec transferred the last 1 seconds")
                == .stalled)
        #expect(Self.failure(CURLE_GOT_NOTHING, "Empty reply from server") == .connectionDropped)
        #expect(Self.failure(CURLE_WRITE_ERROR, capped: true) == .answerTooLarge(limit: 65536))
        #expect(Self.failure(CURLE_FILESIZE_EXCEEDED) == .answerTooLarge(limit: 65536))
        #expect(Self.failure(CURLE_SSL_PINNEDPUBKEYNOTMATCH) == .pinnedKeyMismatch)
        #expect(
            Self.failure(CURLE_SSL_CERTPROBLEM)
                == .clientCertificateUnusable(
                    certificate: "/etc/headcount/tls/van.crt", key: "/etc/headcount/tls/van.key"))
        #expect(Self.failure(CURLE_COULDNT_RESOLVE_HOST) == .couldNotResolve)
    }

    @Test func answersThatAreNotHTTPAreBadAnswersNotBadURLs() {
        // libcurl 7.88 reports these with CURLE_UNSUPPORTED_PROTOCOL, the code of an unsupported URL.
        for message in [
            "Received HTTP/0.9 when not allowed", "Unsupported HTTP version in response",
            "Unsupported HTTP version (9.9) in response", "Unsupported response code in HTTP response",
        ] {
            #expect(Self.failure(CURLE_UNSUPPORTED_PROTOCOL, message) == .badAnswer, "\(message)")
        }
        #expect(
            Self.failure(CURLE_UNSUPPORTED_PROTOCOL, "Protocol \"http\" not supported or disabled in libcurl")
                == .unsupportedURL(url: ""))
        #expect(Self.failure(CURLE_WEIRD_SERVER_REPLY, "Header without colon") == .badAnswer)
        // A header line of 100 KiB or more: "Out of memory", once the answer has begun.
        let hugeHeader = HTTPSFailure(
            code: CURLE_OUT_OF_MEMORY, message: "Out of memory", osErrno: 0, answerCapped: false, abortedBy: nil,
            caFile: nil, certificatePath: "", keyPath: "", maxResponseBytes: 65536, answerStarted: true)
        #expect(hugeHeader.kind == .badAnswer)
        #expect(Self.failure(CURLE_OUT_OF_MEMORY, "Out of memory") == .other)
        #expect(HTTPSError(.badAnswer).summary == "the server's answer is not HTTP")
    }

    static func configuration(url: String = "https://center.example/alerts") -> HTTPSConfiguration {
        var configuration = HTTPSConfiguration(
            url: url, clientCertificatePath: "/nonexistent/van.crt", clientKeyPath: "/nonexistent/van.key",
            caFilePath: nil, pinnedPublicKey: "sha256//" + String(repeating: "A", count: 43) + "=",
            softwareVersion: "1.2.3")
        configuration.sendsClientCertificate = false
        return configuration
    }

    @Test func urlsOtherThanHTTPSAreRefused() throws {
        for url in ["http://center.example/alerts", "HTTP://center.example/alerts"] {
            #expect(throws: HTTPSError(.plainHTTPRefused(url: url))) { try Self.configuration(url: url).validate() }
        }
        for url in ["ftp://center.example/", "https:///alerts", "center.example", "https://center .example/"] {
            #expect(throws: HTTPSError(.unsupportedURL(url: url))) { try Self.configuration(url: url).validate() }
        }
        try Self.configuration().validate()
        #expect(Self.configuration().userAgent == "headcount/1.2.3")
    }

    @Test func theCenterMustBeCheckableAndPinsWellFormed() {
        var unchecked = Self.configuration()
        unchecked.pinnedPublicKey = nil
        #expect(throws: HTTPSError(.noServerCheck)) { try unchecked.validate() }
        for pin in ["sha1//AAAA", "sha256//short=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="] {
            var configuration = Self.configuration()
            configuration.pinnedPublicKey = pin
            #expect(throws: HTTPSError(.badPinnedKey(pin))) { try configuration.validate() }
        }
    }

    @Test func limitsMustBePositive() {
        var configuration = Self.configuration()
        configuration.totalTimeout = .zero
        #expect(throws: HTTPSError.self) { try configuration.validate() }
        configuration = Self.configuration()
        configuration.maxResponseBytes = 0
        #expect(throws: HTTPSError.self) { try configuration.validate() }
    }

    @Test func modesAreWrittenInOctal() {
        #expect(
            HTTPSError(.keyFileExposed(path: "/k", mode: 0o644)).description
                == "client key /k is readable by group or others (mode 0644): run chmod 600 /k")
    }

    @Test func libcurlIsTheOneDebian12Ships() {
        #expect(HTTPSClient.libcurlVersion.hasPrefix("7.") || HTTPSClient.libcurlVersion.hasPrefix("8."))
    }
}

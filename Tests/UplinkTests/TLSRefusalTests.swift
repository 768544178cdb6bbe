import Foundation
import TestSupport
import Testing

@testable import Uplink

/// SPEC.md's TLS cases, each against the reference receiver with a throw-away CA: wrong CA, wrong
/// pin, no client certificate, expired certificate, a key file readable by others, plain http.
@Suite(.timeLimit(.budget(minutes: 1)))
struct TLSRefusalTests {
    @Test func aCenterSignedByAnotherCAIsNotTrusted() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        var configuration = HTTPSClientTests.configuration(pki, receiver.url)
        configuration.caFilePath = pki.otherCACertificate
        let client = try HTTPSClient(configuration)
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .serverNotTrusted(caFile: pki.otherCACertificate))
        #expect(
            error?.description.hasPrefix("TLS: server certificate not trusted by \(pki.otherCACertificate) (curl: ")
                == true)
        #expect(receiver.received().isEmpty)
    }

    @Test func aCenterWhoseKeyIsNotThePinnedOneIsRefused() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        var configuration = HTTPSClientTests.configuration(pki, receiver.url)
        configuration.pinnedPublicKey = pki.otherCAPin
        let client = try HTTPSClient(configuration)
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .pinnedKeyMismatch)
        #expect(error?.description.hasPrefix("TLS: server public key does not match the pinned key") == true)
        #expect(receiver.received().isEmpty)
    }

    @Test func theRightPinIsAcceptedAloneOrWithTheCA() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let pin = pki.serverPin
        var pinOnly = HTTPSClientTests.configuration(pki, receiver.url)
        pinOnly.caFilePath = nil
        pinOnly.pinnedPublicKey = pin
        var both = HTTPSClientTests.configuration(pki, receiver.url)
        both.pinnedPublicKey = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;\(pin)"
        let first = testAlert()
        let second = testAlert()

        let one = try await HTTPSClient(pinOnly).post(body: first.body, idempotencyKey: first.id)
        let two = try await HTTPSClient(both).post(body: second.body, idempotencyKey: second.id)

        #expect(one.status == 200)
        #expect(two.status == 200)
        #expect(receiver.received().count == 2)
    }

    @Test func withoutAClientCertificateTheCenterRefusesTheHandshake() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        var configuration = HTTPSClientTests.configuration(pki, receiver.url)
        configuration.sendsClientCertificate = false
        let client = try HTTPSClient(configuration)
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .clientCertificateRejected(alert: "certificate required"))
        #expect(
            error?.description.hasPrefix("TLS: the server refused our client certificate (expired or unknown?)")
                == true)
        #expect(await receiver.waitFor("tls_failures", atLeast: 1) == 1)
        #expect(receiver.counter("tls_handshakes") == 0)
        #expect(receiver.received().isEmpty)
    }

    @Test(arguments: ["1.3", "1.2"])
    func anExpiredClientCertificateIsRefusedAndReported(tlsVersion: String) async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki, arguments: ["--tls-max", tlsVersion])
        var configuration = HTTPSClientTests.configuration(pki, receiver.url)
        configuration.clientCertificatePath = pki.expiredCertificate
        configuration.clientKeyPath = pki.expiredKey
        let client = try HTTPSClient(configuration)
        let alert = testAlert()

        let error = await #expect(throws: HTTPSError.self) {
            try await client.post(body: alert.body, idempotencyKey: alert.id)
        }

        #expect(error?.kind == .clientCertificateRejected(alert: "certificate expired"))
        #expect(await receiver.waitFor("tls_failures", atLeast: 1) == 1)
        #expect(receiver.received().isEmpty)
    }

    @Test(arguments: [0o644, 0o640, 0o604])
    func aKeyFileOthersCanReadIsRefusedNamingTheFile(mode: Int) async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: pki.clientKey)
        let configuration = HTTPSClientTests.configuration(pki, "https://127.0.0.1:9/alerts")

        let error = #expect(throws: HTTPSError.self) { try HTTPSClient(configuration) }

        #expect(error?.kind == .keyFileExposed(path: pki.clientKey, mode: UInt32(mode)))
        let message = error?.description ?? ""
        #expect(message.contains(pki.clientKey))
        #expect(message.contains("mode 0\(String(mode, radix: 8))"))
        #expect(message.contains("chmod 600 \(pki.clientKey)"))
    }

    @Test func aMissingKeyOrCertificateIsRefusedNamingTheFile() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        var missingKey = HTTPSClientTests.configuration(pki, "https://127.0.0.1:9/alerts")
        missingKey.clientKeyPath = pki.path("nope.key")
        var missingCA = HTTPSClientTests.configuration(pki, "https://127.0.0.1:9/alerts")
        missingCA.caFilePath = pki.path("nope-ca.crt")

        let keyError = #expect(throws: HTTPSError.self) { try HTTPSClient(missingKey) }
        let caError = #expect(throws: HTTPSError.self) { try HTTPSClient(missingCA) }

        #expect(keyError?.description == "client key \(pki.path("nope.key")): no such file")
        #expect(caError?.kind == .fileUnusable(role: .caFile, path: pki.path("nope-ca.crt"), reason: "no such file"))
    }

    @Test func aPlainHTTPURLIsRefusedWithoutConnecting() async throws {
        let pki = try await TLSTestPKI.make()
        defer { pki.remove() }
        let receiver = try await TLSTestReceiver.start(pki: pki)
        let url = "http://127.0.0.1:\(receiver.port)/alerts"

        let error = #expect(throws: HTTPSError.self) {
            try HTTPSClient(HTTPSClientTests.configuration(pki, url))
        }

        #expect(error?.kind == .plainHTTPRefused(url: url))
        #expect(error?.description.contains("https only") == true)
        #expect(receiver.counter("tcp_connections") == 0)
    }
}

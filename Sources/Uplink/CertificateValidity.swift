#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// When an X.509 certificate is valid, read from its PEM file without a TLS library: the DER of
/// `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serialNumber, signature,
/// issuer, validity SEQUENCE { notBefore, notAfter }, subject, … } … }` (RFC 5280, 4.1), for
/// `headcount diagnose` to warn before the van's certificate or the center's CA runs out.
public struct CertificateValidity: Equatable, Sendable {
    public var notBefore: WallClockTime
    public var notAfter: WallClockTime
    /// The subject's common name, when it has one.
    public var commonName: String?

    public init(notBefore: WallClockTime, notAfter: WallClockTime, commonName: String?) {
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.commonName = commonName
    }

    /// Every certificate of a PEM file (a CA file may hold several), in file order. Throws a
    /// message naming the file when it cannot be read or holds no readable certificate.
    public static func read(pemFile path: String) throws(CertificateFileError) -> [CertificateValidity] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CertificateFileError(path: path, problem: "cannot be read")
        }
        return try parse(pem: String(decoding: data, as: UTF8.self), file: path)
    }

    public static func parse(pem text: String, file: String) throws(CertificateFileError) -> [CertificateValidity] {
        var certificates: [CertificateValidity] = []
        var body: String?
        var block = 0
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let start = line.firstIndex { !$0.isWhitespace } ?? line.endIndex
            let end = line.lastIndex { !$0.isWhitespace }.map(line.index(after:)) ?? start
            let trimmed = String(line[start..<end])
            if trimmed == "-----BEGIN CERTIFICATE-----" {
                body = ""
            } else if trimmed == "-----END CERTIFICATE-----", let text = body {
                block += 1
                body = nil
                guard let der = Data(base64Encoded: text) else {
                    throw CertificateFileError(path: file, problem: "certificate \(block) is not valid base64")
                }
                guard let validity = CertificateValidity(der: [UInt8](der)) else {
                    throw CertificateFileError(path: file, problem: "certificate \(block) is not an X.509 certificate")
                }
                certificates.append(validity)
            } else if let text = body {
                body = text + trimmed
            }
        }
        guard !certificates.isEmpty else {
            throw CertificateFileError(path: file, problem: "holds no PEM certificate (BEGIN CERTIFICATE)")
        }
        return certificates
    }

    /// Reads the DER of one certificate; nil when it is not shaped like one.
    public init?(der: [UInt8]) {
        var outer = DERReader(der[...])
        guard let certificate = outer.next(tag: 0x30) else { return nil }
        var certificateReader = DERReader(certificate)
        guard let tbs = certificateReader.next(tag: 0x30) else { return nil }
        var fields = DERReader(tbs)
        if fields.peekTag == 0xA0 { _ = fields.next(tag: 0xA0) }  // version
        guard fields.next(tag: 0x02) != nil,  // serialNumber
            fields.next(tag: 0x30) != nil,  // signature algorithm
            fields.next(tag: 0x30) != nil,  // issuer
            let validity = fields.next(tag: 0x30),
            let subject = fields.next(tag: 0x30)
        else { return nil }
        var times = DERReader(validity)
        guard let notBefore = times.nextTime(), let notAfter = times.nextTime() else { return nil }
        self.notBefore = notBefore
        self.notAfter = notAfter
        commonName = Self.commonName(in: subject)
    }

    /// The first commonName (2.5.4.3) of a Name: SEQUENCE OF SET OF SEQUENCE { OID, value }.
    private static func commonName(in name: ArraySlice<UInt8>) -> String? {
        var sets = DERReader(name)
        while let set = sets.next(tag: 0x31) {
            var attributes = DERReader(set)
            while let attribute = attributes.next(tag: 0x30) {
                var parts = DERReader(attribute)
                guard let oid = parts.next(tag: 0x06) else { continue }
                if Array(oid) == [0x55, 0x04, 0x03], let value = parts.nextAny() {
                    return String(decoding: value, as: UTF8.self)
                }
            }
        }
        return nil
    }
}

/// A certificate file that cannot be used, with what is wrong.
public struct CertificateFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var problem: String
    public var description: String { "\(path): \(problem)" }
}

/// Walks DER's tag-length-value items; every read is bounds-checked and a malformed item ends it.
struct DERReader {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    var peekTag: UInt8? { bytes.first }

    /// The content of the next item when its tag is `tag`.
    mutating func next(tag: UInt8) -> ArraySlice<UInt8>? {
        guard peekTag == tag else { return nil }
        return nextAny()
    }

    /// The content of the next item, whatever its (single-byte) tag.
    mutating func nextAny() -> ArraySlice<UInt8>? {
        guard bytes.count >= 2 else { return nil }
        var index = bytes.startIndex + 1
        var length = Int(bytes[index])
        index += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count >= 1, count <= 4, bytes.endIndex - index >= count else { return nil }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard length <= bytes.endIndex - index else { return nil }
        let content = bytes[index..<(index + length)]
        bytes = bytes[(index + length)...]
        return content
    }

    /// A UTCTime (YYMMDDHHMMSSZ; 50–99 are 19xx) or GeneralizedTime (YYYYMMDDHHMMSSZ).
    mutating func nextTime() -> WallClockTime? {
        let tag = peekTag
        guard tag == 0x17 || tag == 0x18, let content = nextAny() else { return nil }
        var text = String(decoding: content, as: UTF8.self)
        guard text.hasSuffix("Z") else { return nil }
        text.removeLast()
        if tag == 0x17 {
            guard text.count == 12, let year = Int(text.prefix(2)) else { return nil }
            text = (year >= 50 ? "19" : "20") + text
        }
        guard text.count == 14, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) else { return nil }
        let digits = Array(text)
        let rfc3339 =
            "\(String(digits[0..<4]))-\(String(digits[4..<6]))-\(String(digits[6..<8]))T"
            + "\(String(digits[8..<10])):\(String(digits[10..<12])):\(String(digits[12..<14]))Z"
        return WallClockTime(rfc3339: rfc3339)
    }
}

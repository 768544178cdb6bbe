import Daemon
import Detection
import Formats
import Foundation
import GPIO
import Hardware
import Synchronization
import Testing
import Uplink

/// `headcount diagnose`'s checks, each against what it looks at: simulated lines, a scripted Modbus
/// driver, certificates made by openssl, a real outbox. The peers end to end are in scripts/diagnose-test.
@Suite("Diagnosis")
struct DiagnosisTests {
    static let root = VanTests.root

    static func van(extra: String = "") throws -> VanConfig {
        var text = try String(contentsOf: root.appendingPathComponent("Config/simulator.toml"), encoding: .utf8)
        text += extra
        let directories = [root.appendingPathComponent("HardwareProfiles").path]
        return try VanConfig.parse(text, file: "simulator.toml", catalog: .files(in: directories))
    }

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("headcount-diag-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: path, withIntermediateDirectories: true)
        return path.path
    }

    // MARK: GPIO

    @Test("every line opened and read; a CHECK button read as pressed is a warning with a hint")
    func gpioLevels() throws {
        let van = try Self.van()
        let wiring = try GPIOWiring(van)
        let simulator = SimulatedGPIO()
        let opened = Diagnosis.gpio(wiring: wiring, chipLabel: "headcount-sim") { simulator }
        #expect(opened.backend != nil)
        #expect(opened.checks.count == 1 + wiring.inputs.count + wiring.outputs.count)
        #expect(opened.checks.allSatisfy { $0.result == .pass })
        let ignition = try #require(opened.checks.first { $0.label == "gpio ignition" })
        #expect(ignition.detail == "SIM_IGNITION reads off, active low")

        // The button held down before diagnose looks.
        let button = try #require(
            Diagnosis.gpio(wiring: wiring, chipLabel: "headcount-sim") { PressedButton() }.checks.first {
                $0.label == "gpio button"
            })
        #expect(button.result == .warn)
        #expect(button.detail == "SIM_BUTTON reads pressed, active low")
        #expect(button.hint?.contains("stuck or wired the other way") == true)
    }

    @Test("a busy line fails with a hint to stop the service; the other lines are still checked")
    func gpioBusyLine() throws {
        let van = try Self.van()
        let wiring = try GPIOWiring(van)
        let backend = RefusingGPIO(refusing: "seat.3", with: .lineBusy(line: "SIM_SEAT3", chip: "sim", role: "seat.3"))
        let opened = Diagnosis.gpio(wiring: wiring, chipLabel: "headcount-sim") { backend }
        let seat = try #require(opened.checks.first { $0.name == "seat.3" })
        #expect(seat.result == .fail)
        #expect(seat.hint?.contains("systemctl stop headcount") == true)
        #expect(opened.checks.filter { $0.result == .fail }.count == 1)
        #expect(opened.checks.contains { $0.label == "gpio seat.4" && $0.result == .pass })
    }

    @Test("no such chip: one failure naming the chips there are")
    func gpioNoChip() throws {
        let wiring = try GPIOWiring(try Self.van())
        let opened = Diagnosis.gpio(wiring: wiring, chipLabel: "pinctrl-bcm2711") {
            () throws(GPIOError) -> any GPIOBackend in
            throw GPIOError.noSuchChip(label: "pinctrl-bcm2711", found: ["gpio-mockup-A"])
        }
        #expect(opened.backend == nil)
        #expect(opened.checks.count == 1)
        #expect(opened.checks[0].result == .fail)
        #expect(opened.checks[0].hint?.contains("found: gpio-mockup-A") == true)
        #expect(opened.checks[0].hint?.contains("gpiodetect") == true)
    }

    @Test("--actuate announces each output before driving it, and leaves every output off")
    func actuate() throws {
        let wiring = try GPIOWiring(try Self.van())
        let simulator = SimulatedGPIO()
        try simulator.request(inputs: [], outputs: wiring.outputs)
        let announced = Mutex<[String]>([])
        let started = Date()
        let checks = Diagnosis.actuate(backend: simulator, outputs: wiring.outputs, warningSeconds: 0.5) { message in
            announced.withLock { $0.append(message) }
        }
        #expect(checks.count == 4)
        #expect(checks.allSatisfy { $0.result == .pass })
        #expect(announced.withLock { $0 }.first?.hasPrefix("about to sound the cabin buzzer") == true)
        let changes = simulator.outputChanges
        let buzzer = changes.filter { $0.role == "buzzer" && $0.value }
        #expect(buzzer.count == 3)
        // Each output went on only after its announcement's warning.
        let first = try #require(changes.first { $0.value })
        #expect(Double(first.timestampNanoseconds - simulator.startNanoseconds) / 1e9 >= 0.45)
        #expect(["buzzer", "horn", "hazard", "status_led"].allSatisfy { simulator.output($0) == false })
        #expect(Date().timeIntervalSince(started) < 20)
    }

    // MARK: Modbus

    @Test("a device that answers: its values and round trip; out of its sane range: a failure with what to check")
    func modbusValues() throws {
        let van = try Self.van()
        let good = Diagnosis.modbus(buses: van.buses, budgetSeconds: 5, driver: ScriptedModbus(registers: [235, 412]))
        #expect(good.count == 1)
        #expect(good[0].result == .pass)
        #expect(good[0].detail == "xy-md02 unit 1 answered: temperature 23.5 °C, humidity 41.2 %RH")
        #expect(good[0].milliseconds != nil)

        let hot = Diagnosis.modbus(buses: van.buses, budgetSeconds: 5, driver: ScriptedModbus(registers: [2350, 412]))
        #expect(hot[0].result == .fail)
        #expect(hot[0].detail.contains("out of range — point temperature at address 1 reads 235.0, outside -20.0…80.0"))
        #expect(hot[0].hint?.contains("a broken or unplugged probe, or the wrong model") == true)
    }

    @Test("no answer: a failure with the unit, the port and the wiring to check, within the budget")
    func modbusTimeout() throws {
        let van = try Self.van()
        let started = Date()
        let checks = Diagnosis.modbus(
            buses: van.buses, budgetSeconds: 5, driver: ScriptedModbus(registers: [], failure: .timedOut))
        #expect(checks[0].result == .fail)
        #expect(checks[0].detail.contains("timeout"))
        let hint = try #require(checks[0].hint)
        #expect(hint.hasPrefix("no answer from unit 1 on /tmp/headcount-sim/modbus (9600 8N1)"))
        #expect(hint.contains("A/B wiring") && hint.contains("termination"))
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test("each way a device fails has its own hint")
    func modbusHints() throws {
        let van = try Self.van()
        let bus = van.buses[0]
        let device = bus.devices[0]
        let hints: [(ModbusFaultReason, String)] = [
            (.crc, "baud and parity"), (.wrongUnit, "share an address"), (.noDevice, "/dev/serial/by-id"),
            (.illegalAddress, "is it really a xy-md02"), (.badData, "another master"),
            (.rs485Unsupported, "rs485 = true"),
        ]
        for (reason, expected) in hints {
            let hint = Diagnosis.hint(for: reason, detail: "", device: device, bus: bus)
            #expect(hint.contains(expected), "\(reason): \(hint)")
        }
        #expect(
            Diagnosis.hint(for: .noDevice, detail: "modbus_connect: Permission denied", device: device, bus: bus)
                .contains("dialout"))
        // Set up as the factory leaves an xy-md02 (unit 1, 9600, no parity): nothing more to say.
        #expect(!Diagnosis.hint(for: .timeout, detail: "", device: device, bus: bus).contains("a new"))
    }

    @Test("a device that does not answer where the config says is told how a new one answers")
    func modbusFactorySettings() throws {
        var bus = try Self.van().buses[0]
        bus.transport = .rtu(
            device: "/dev/ttyUSB0", baud: 19200, parity: "even", dataBits: 8, stopBits: 1, rs485: false)
        var device = bus.devices[0]
        device.unit = 7
        let timeout = Diagnosis.hint(for: .timeout, detail: "", device: device, bus: bus)
        #expect(timeout.hasPrefix("no answer from unit 7 on /dev/ttyUSB0 (19200 8E1): check A/B wiring"))
        #expect(
            timeout.hasSuffix(
                "; a new xy-md02 answers as unit 1, at 9600 baud, without parity until it is set up"))
        let crc = Diagnosis.hint(for: .crc, detail: "", device: device, bus: bus)
        #expect(crc.hasSuffix("; a new xy-md02 answers as unit 1, at 9600 baud, without parity until it is set up"))
        // Through a TCP gateway the serial side is the gateway's: nothing to compare.
        bus.transport = .tcp(host: "127.0.0.1", port: 502)
        #expect(!Diagnosis.hint(for: .timeout, detail: "", device: device, bus: bus).contains("a new"))
    }

    // MARK: The center

    @Test("the center's URL: host, port, and the ping's URL beside the alerts")
    func centerAddress() {
        let plain = Diagnosis.CenterAddress(url: "https://center.example.org/api/v1/alerts")
        #expect(plain == .init(url: "https://center.example.org:443/api/v1/alerts"))
        #expect(plain?.host == "center.example.org" && plain?.port == 443 && plain?.path == "/api/v1/alerts")
        #expect(Diagnosis.CenterAddress(url: "https://127.0.0.1:8443/alerts")?.port == 8443)
        let v6 = Diagnosis.CenterAddress(url: "https://[::1]:9443/alerts")
        #expect(v6?.host == "::1" && v6?.port == 9443)
        #expect(Diagnosis.CenterAddress(url: "http://center/alerts") == nil)
        #expect(Diagnosis.CenterAddress(url: "https://center:0/alerts") == nil)
        #expect(Diagnosis.CenterAddress(url: "https://:443/alerts") == nil)
        #expect(Diagnosis.CenterAddress.pingURL(alertsURL: "https://c/api/v1/alerts") == "https://c/api/v1/diagnose")
        #expect(Diagnosis.CenterAddress.pingURL(alertsURL: "https://c/alerts/") == "https://c/diagnose")
        #expect(Diagnosis.CenterAddress.pingURL(alertsURL: "https://c/alerts?x=1") == "https://c/diagnose")
        #expect(Diagnosis.CenterAddress.pingURL(alertsURL: "https://c") == "https://c/diagnose")
    }

    @Test("certificates: valid, running out within 30 days, expired, not yet valid, not a certificate")
    func certificates() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certificate = directory + "/client.crt"
        try Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            directory + "/client.key", "-out", certificate, "-subj", "/CN=van-17", "-days", "400",
        ])
        let validity = try #require(try CertificateValidity.read(pemFile: certificate).first)
        #expect(validity.commonName == "van-17")
        let days = (validity.notAfter.secondsSinceEpoch - validity.notBefore.secondsSinceEpoch) / 86400
        #expect(abs(days - 400) < 0.01)

        let center = try #require(
            try Self.van(
                extra: """

                    [center]
                    url = "https://127.0.0.1/alerts"
                    client_cert = "\(certificate)"
                    client_key = "\(directory)/client.key"
                    pinned_key = "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
                    """
            ).center)
        let issued = validity.notBefore
        func result(after days: Double) -> DiagnosisCheck {
            Diagnosis.certificates(center, now: issued.adding(seconds: days * 86400))[0]
        }
        #expect(result(after: 1).result == .pass)
        #expect(result(after: 1).detail.contains("\"van-17\" valid until"))
        #expect(result(after: 390).result == .warn)
        #expect(result(after: 390).detail.hasSuffix("in 10 days"))
        #expect(result(after: 401).result == .fail)
        #expect(result(after: 401).detail.contains("expired on"))
        #expect(result(after: -1).result == .fail)
        #expect(result(after: -1).hint?.contains("clock") == true)

        try "not a certificate\n".write(toFile: directory + "/bad.crt", atomically: true, encoding: .utf8)
        var broken = center
        broken.clientCertificate = directory + "/bad.crt"
        let bad = Diagnosis.certificates(broken)[0]
        #expect(bad.result == .fail)
        #expect(bad.detail == "\(directory)/bad.crt: holds no PEM certificate (BEGIN CERTIFICATE)")
    }

    @Test("a truncated or garbled certificate is refused, never read past its end")
    func certificateGarbage() {
        #expect(CertificateValidity(der: []) == nil)
        #expect(CertificateValidity(der: [0x30, 0x82, 0xFF, 0xFF, 0x30]) == nil)
        #expect(CertificateValidity(der: [0x30, 0x03, 0x30, 0x01, 0x02]) == nil)
        var generator = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes =
                [0x30, UInt8(length & 0x7F)] + (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = CertificateValidity(der: bytes)
        }
    }

    // MARK: The van itself

    @Test("the outbox: none yet, waiting alerts young and old, dead letters with the center's answer")
    func outbox() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let none = Diagnosis.outbox(stateDirectory: directory)
        #expect(none.count == 1 && none[0].result == .pass && none[0].detail.hasPrefix("no outbox yet"))

        let outbox = try Outbox(path: directory + "/outbox.sqlite")
        let now = WallClockTime.now()
        for _ in 0..<3 {
            try outbox.enqueue(
                CenterAlert.heartbeat(vehicleID: "van-1", occurredAt: now, version: "0", uptimeSeconds: 1, sensors: []),
                now: now)
        }
        let refused = try #require(try outbox.entries(limit: 1).first)
        try outbox.deadLetter(id: refused.id, status: 422, answer: "{\"error\":\"unknown vehicle\"}")
        outbox.close()

        let fresh = Diagnosis.outbox(stateDirectory: directory, now: now.adding(seconds: 60))
        #expect(fresh[0].result == .pass)
        #expect(fresh[0].detail == "2 alerts waiting, the oldest 1 min old (being sent)")
        #expect(fresh[1].result == .warn)
        #expect(fresh[1].detail.contains("1 alerts refused for good"))
        #expect(fresh[1].detail.contains("422"))
        let stale = Diagnosis.outbox(stateDirectory: directory, now: now.adding(seconds: 7200))
        #expect(stale[0].result == .warn)
        #expect(stale[0].hint?.contains("journalctl -u headcount") == true)
    }

    @Test("the clock: a date before this release fails; the center's time gives the skew")
    func clock() throws {
        let past = Diagnosis.clock(now: WallClockTime(rfc3339: "1970-01-01T00:01:00Z")!, centerTime: nil)
        #expect(past[0].result == .fail)
        #expect(past[0].hint?.contains("no RTC battery") == true)
        let now = WallClockTime.now()
        let close = Diagnosis.clock(now: now, centerTime: now.adding(seconds: -0.4))
        #expect(close.last?.detail == "within 1 s of the center")
        let ahead = Diagnosis.clock(now: now, centerTime: now.adding(seconds: -300))
        #expect(ahead.last?.result == .warn)
        #expect(ahead.last?.detail == "300 s ahead of the center")
        #expect(ahead.contains { $0.name == "sync" })
    }

    @Test("the report: table with hints under problems, JSON with every check, exit status from failures")
    func report() throws {
        var report = DiagnosisReport(vehicleID: "van-1", board: "simulator", startedAt: "2026-11-26T12:00:00.000Z")
        report.checks = [
            DiagnosisCheck("config", "", .pass, "ok"),
            DiagnosisCheck("clock", "sync", .warn, "not synchronised", hint: "enable NTP"),
        ]
        #expect(report.exitStatus == 0)
        #expect(report.table.contains("1 PASS, 1 WARN, 0 FAIL"))
        #expect(report.table.contains("hint: enable NTP"))
        report.checks.append(DiagnosisCheck("modbus", "bus/dev", .fail, "timeout", hint: "wiring", milliseconds: 12))
        #expect(report.exitStatus == 1)
        #expect(report.table.contains("the van is NOT ready"))
        let json = try JSON.parse(report.json)
        #expect(json["vehicle_id"]?.stringValue == "van-1")
        let checks = try #require(json["checks"]?.arrayValue)
        #expect(checks.count == 3)
        #expect(checks[2]["result"]?.stringValue == "fail")
        #expect(checks[2]["ms"]?.intValue == 12)
        #expect(checks[0]["hint"]?.isNull == true)
        #expect(json["summary"]?["exit_status"]?.intValue == 1)
    }

    static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "openssl \(arguments.prefix(2))")
    }
}

/// The simulator with the CHECK button reading pressed.
final class PressedButton: GPIOBackend {
    let inner = SimulatedGPIO()
    let button = Mutex<Int?>(nil)
    func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {
        try inner.request(inputs: inputs, outputs: outputs)
        button.withLock { $0 = inputs.firstIndex { $0.role == "button" } }
    }
    func readInputs() throws(GPIOError) -> [Bool] {
        var levels = try inner.readInputs()
        if let index = button.withLock({ $0 }) { levels[index] = true }
        return levels
    }
    func setOutput(_ index: Int, to value: Bool) throws(GPIOError) { try inner.setOutput(index, to: value) }
    func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge] {
        try inner.waitForEdges(timeoutNanoseconds: timeoutNanoseconds)
    }
    func close() { inner.close() }
}

/// The simulator refusing one role's line, as the kernel refuses a busy or missing line.
final class RefusingGPIO: GPIOBackend {
    let inner = SimulatedGPIO()
    let role: String
    let error: GPIOError
    init(refusing role: String, with error: GPIOError) {
        self.role = role
        self.error = error
    }
    func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {
        if inputs.contains(where: { $0.role == role }) || outputs.contains(where: { $0.role == role }) { throw error }
        try inner.request(inputs: inputs, outputs: outputs)
    }
    func readInputs() throws(GPIOError) -> [Bool] { try inner.readInputs() }
    func setOutput(_ index: Int, to value: Bool) throws(GPIOError) { try inner.setOutput(index, to: value) }
    func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge] {
        try inner.waitForEdges(timeoutNanoseconds: timeoutNanoseconds)
    }
    func close() { inner.close() }
}

/// A Modbus driver whose every read answers `registers` (or fails with `failure`), as a device would.
struct ScriptedModbus: ModbusDriver {
    let registers: [UInt16]
    var failure: ModbusErrorCode?

    func connect(_ transport: BusConfig.Transport, timeoutMicroseconds: Int) throws(ModbusError) -> any ModbusContext {
        ScriptedContext(registers: registers, failure: failure)
    }
}

final class ScriptedContext: ModbusContext {
    let registers: [UInt16]
    let failure: ModbusErrorCode?
    init(registers: [UInt16], failure: ModbusErrorCode?) {
        self.registers = registers
        self.failure = failure
    }
    func setSerialModeRS485() throws(ModbusError) {}
    func setSlave(_ unit: Int) throws(ModbusError) {}
    func setResponseTimeout(microseconds: Int) throws(ModbusError) {}
    func readBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
        throw ModbusError(call: .readBits, code: failure ?? .illegalFunction)
    }
    func readInputBits(address: Int, count: Int, into bits: inout [UInt8]) throws(ModbusError) {
        throw ModbusError(call: .readInputBits, code: failure ?? .illegalFunction)
    }
    func readRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
        try read(.readRegisters, address: address, count: count, into: &registers)
    }
    func readInputRegisters(address: Int, count: Int, into registers: inout [UInt16]) throws(ModbusError) {
        try read(.readInputRegisters, address: address, count: count, into: &registers)
    }
    private func read(_ call: ModbusCall, address: Int, count: Int, into out: inout [UInt16]) throws(ModbusError) {
        if let failure {
            usleep(100_000)  // a timeout takes time
            throw ModbusError(call: call, code: failure)
        }
        // Registers are numbered from 1 here (the xy-md02's temperature is register 1).
        for index in 0..<count {
            let register = address + index - 1
            out[index] = register >= 0 && register < registers.count ? registers[register] : 0
        }
    }
    func flush() throws(ModbusError) {}
    func close() {}
}

import Detection
import Foundation
import Hardware
import Testing

enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static var profiles: String { root.appendingPathComponent("HardwareProfiles").path }

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }
}

@Suite("Bundled profiles, device models and configs")
struct BundledFilesTests {
    @Test("every profile decodes with its chip label, the built-in inputs and an audible output")
    func profiles() throws {
        let expected = [
            "raspberry-pi-4": "pinctrl-bcm2711", "raspberry-pi-5": "pinctrl-rp1", "simulator": "headcount-sim",
        ]
        for (board, label) in expected {
            let profile = try HardwareProfile.parse(
                try Repository.text("HardwareProfiles/\(board).toml"), file: "\(board).toml")
            #expect(profile.board == board)
            #expect(profile.chipLabel == label)
            for role in ["ignition", "door", "button"] { #expect(profile.input(role) != nil) }
            #expect(profile.output("buzzer") != nil && profile.output("horn") != nil)
        }
        let pi5 = try HardwareProfile.parse(try Repository.text("HardwareProfiles/raspberry-pi-5.toml"), file: "pi5")
        #expect(
            pi5.input("ignition")
                == InputLine(role: "ignition", line: "GPIO17", activeLow: true, bias: .pullUp, debounceMs: 50))
        let sim = try HardwareProfile.parse(try Repository.text("HardwareProfiles/simulator.toml"), file: "sim")
        #expect(sim.inputs.filter { $0.role.hasPrefix("seat.") }.count == 16)
    }

    @Test("a profile named by a relative path is found beside the config file, wherever it is run from")
    func profileBesideTheConfig() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("headcount-cfg-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("boards"), withIntermediateDirectories: true)
        try Repository.text("HardwareProfiles/simulator.toml").write(
            to: folder.appendingPathComponent("boards/my-van.toml"), atomically: true, encoding: .utf8)
        let config = try Repository.text("Config/simulator.toml").replacingOccurrences(
            of: "profile = \"simulator\"", with: "profile = \"boards/my-van.toml\"")
        try config.write(to: folder.appendingPathComponent("van.toml"), atomically: true, encoding: .utf8)
        // Only the models come from the bundled folder; the profile is the copy beside the config.
        for path in [folder.path + "/van.toml", folder.path + "//van.toml"] {
            let van = try VanConfig.load(path: path, directories: [Repository.profiles])
            #expect(van.profile.chipLabel == "headcount-sim")
        }
    }

    @Test("every device model decodes with 0-based addresses and what it feeds")
    func models() throws {
        let xy = try DeviceModel.parse(try Repository.text("HardwareProfiles/devices/xy-md02.toml"), file: "xy")
        #expect(xy.point(named: "temperature")?.function == .inputRegisters)
        #expect(xy.point(named: "temperature")?.address == 1)
        #expect(xy.point(named: "temperature")?.feeds == .temperature)
        #expect(xy.reads == [RegisterRead(function: .inputRegisters, address: 1, count: 2, points: [0, 1])])

        let di = try DeviceModel.parse(try Repository.text("HardwareProfiles/devices/di16.toml"), file: "di16")
        #expect(di.points.count == 32)
        #expect(di.point(named: "in16")?.address == 15)
        #expect(di.point(named: "mask3")?.type == .bitInRegister(2))
        #expect(di.reads.map(\.count) == [16, 1])

        let cells = try DeviceModel.parse(try Repository.text("HardwareProfiles/devices/loadcell4.toml"), file: "lc")
        #expect(cells.point(named: "kgf2")?.address == 18)
        #expect(cells.point(named: "kgf2")?.type == .float32(.lowFirst))
        #expect(cells.reads.map(\.count) == [4, 8])

        let s8 = try DeviceModel.parse(try Repository.text("HardwareProfiles/devices/senseair-s8.toml"), file: "s8")
        #expect(s8.point(named: "co2")?.address == 3 && s8.point(named: "co2")?.feeds == .co2)
        // Not contiguous: two reads, never a read of addresses the model does not list (devices may refuse them).
        #expect(s8.reads.map(\.address) == [0, 3])
    }

    @Test("the example configs decode against the bundled profiles and models")
    func configs() throws {
        let van = try VanConfig.load(
            path: Repository.root.appendingPathComponent("Config/headcount.toml").path,
            directories: [Repository.profiles])
        #expect(van.vehicleId == "van-07")
        #expect(van.profile.board == "raspberry-pi-4")
        #expect(van.sensors.count == 8)
        #expect(van.sensors.first { $0.spec.id == "cabin" }?.source == .modbus(device: "climate", point: "temperature"))
        #expect(van.buses.first?.devices.map(\.unit) == [1, 2, 4])
        #expect(van.center?.url == "https://center.example.org/api/v1/alerts")
        let sim = try VanConfig.load(
            path: Repository.root.appendingPathComponent("Config/simulator.toml").path,
            directories: [Repository.profiles])
        #expect(sim.sensors.filter { $0.spec.kind == .seat }.count == 16)
        #expect(sim.buses.first?.devices.first?.periodMs == 250)
    }
}

@Suite("Register decoding")
struct RegisterDecodingTests {
    func point(_ type: PointType, scale: Double = 1) -> RegisterPoint {
        RegisterPoint(name: "p", function: .holdingRegisters, address: 0, type: type, scale: scale, offset: 0)
    }

    @Test("every type and word order decodes")
    func types() {
        #expect(point(.s16, scale: 0.1).decode(registers: [0xFFF6]) == -1.0)
        #expect(point(.s16, scale: 0.1).decode(registers: [275]) == 27.5)
        #expect(point(.u16).decode(registers: [0xFFFF]) == 65535)
        #expect(point(.u32(.highFirst)).decode(registers: [0x0001, 0x0002]) == 65538)
        #expect(point(.u32(.lowFirst)).decode(registers: [0x0002, 0x0001]) == 65538)
        #expect(point(.s32(.highFirst)).decode(registers: [0xFFFF, 0xFFFE]) == -2)
        // 12.5 = 0x41480000
        #expect(point(.float32(.highFirst)).decode(registers: [0x4148, 0x0000]) == 12.5)
        #expect(point(.float32(.lowFirst)).decode(registers: [0x0000, 0x4148]) == 12.5)
        #expect(point(.float32(.highFirst)).decode(registers: [0x7FC0, 0x0000]) == nil)  // NaN is bad data
        #expect(point(.bitInRegister(3)).decode(registers: [0b1000]) == 1)
        #expect(point(.bitInRegister(2)).decode(registers: [0b1000]) == 0)
        #expect(point(.u32(.highFirst)).decode(registers: [1]) == nil)  // too short
    }
}

enum Fixtures {
    static let profile = """
        board = "test"
        [gpio]
        chip_label = "chip"
        [inputs.ignition]
        line = "L1"
        [inputs.door]
        line = "L2"
        [inputs.button]
        line = "L3"
        [inputs."seat.1"]
        line = "L4"
        [outputs.buzzer]
        line = "L5"
        [outputs.horn]
        line = "L6"
        """

    static let catalog = VanConfig.Catalog(
        profile: { name throws(ConfigError) in
            guard name == "test" else {
                throw ConfigError(file: "", line: 0, field: nil, message: "no hardware profile \"\(name)\"")
            }
            return try HardwareProfile.parse(Fixtures.profile, file: "test.toml")
        },
        model: { name throws(ConfigError) in
            guard let text = try? Repository.text("HardwareProfiles/devices/\(name).toml") else {
                throw ConfigError(file: "", line: 0, field: nil, message: "no device model \"\(name)\"")
            }
            return try DeviceModel.parse(text, file: "\(name).toml")
        })

    static let good = """
        vehicle_id = "van-1"
        profile = "test"
        [[sensor]]
        id = "seat.1"
        kind = "seat"
        gpio = "seat.1"
        """

}

@Suite("Config errors name the file, the line and the field")
struct ConfigErrorTests {
    func error(_ text: String) -> String {
        do {
            _ = try VanConfig.parse(text, file: "van.toml", catalog: Fixtures.catalog)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test("a good config decodes")
    func good() throws {
        let van = try VanConfig.parse(Fixtures.good, file: "van.toml", catalog: Fixtures.catalog)
        #expect(van.sensors.map(\.spec.id) == ["seat.1"])
        #expect(van.policy == Policy())
    }

    @Test(
        "bad configs",
        arguments: [
            ("vehicle_id = 5\nprofile = \"test\"", "van.toml:1: vehicle_id: expected a string, found integer"),
            ("profile = \"test\"", "van.toml:1: vehicle_id: missing (a string)"),
            (Fixtures.good + "\nspeed = 3", "van.toml:7: sensor[0].speed: unknown key"),
            (
                Fixtures.good.replacingOccurrences(of: "\"test\"", with: "\"pi9\""),
                "van.toml:2: profile: no hardware profile \"pi9\""
            ),
            (
                Fixtures.good + "\n[policy]\ncheck_window_s = 200",
                "van.toml:8: policy.check_window_s: check_window_s = 200 is out of bounds 30–120"
            ),
            (
                Fixtures.good + "\n[policy]\nmotion_pulses = 2.5",
                "van.toml:8: policy.motion_pulses: motion_pulses = 2.5 must be a whole number"
            ),
            (
                Fixtures.good + "\n[policy]\nheat_c = \"hot\"",
                "van.toml:8: policy.heat_c: expected a number, found string"
            ),
            (
                Fixtures.good.replacingOccurrences(of: "gpio = \"seat.1\"", with: "gpio = \"seat.9\""),
                "van.toml:6: sensor[0].gpio: profile test has no input \"seat.9\" (did you mean \"seat.1\"? its inputs: seat.1)"
            ),
            (
                Fixtures.good.replacingOccurrences(of: "kind = \"seat\"", with: "kind = \"sofa\""),
                "van.toml:5: sensor[0].kind: \"sofa\" is not one of: seat, presence, motion, temperature, co2, door"
            ),
            (
                Fixtures.good + "\n[[sensor]]\nid = \"seat.1\"\nkind = \"seat\"\ngpio = \"seat.1\"",
                "van.toml:8: sensor[1].id: sensor \"seat.1\" is defined twice"
            ),
            (
                Fixtures.good + "\n[[sensor]]\nid = \"t\"\nkind = \"temperature\"\nmodbus = \"climate.temperature\"",
                "van.toml:10: sensor[1].modbus: \"climate.temperature\" is not DEVICE.POINT of a [[modbus.devices]]"
            ),
            (
                Fixtures.good
                    + "\n[center]\nurl = \"http://c.example/a\"\nclient_cert = \"c\"\nclient_key = \"k\"\nca_file = \"a\"",
                "van.toml:8: center.url: must be https:// (plain http is refused)"
            ),
            (
                Fixtures.good + "\n[center]\nurl = \"https://c.example/a\"\nclient_cert = \"c\"\nclient_key = \"k\"",
                "van.toml:7: center: needs ca_file or pinned_key"
            ),
            (
                Fixtures.good
                    + "\n[[modbus]]\nname = \"b\"\ndevice = \"/dev/ttyUSB0\"\nbaud = 9601\n[[modbus.devices]]\nname = \"x\"\nmodel = \"xy-md02\"",
                "van.toml:10: modbus[0].baud: 9601 is not one of: 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200"
            ),
            (
                Fixtures.good
                    + "\n[[modbus]]\nname = \"b\"\ndevice = \"/dev/ttyUSB0\"\n[[modbus.devices]]\nname = \"x\"\nmodel = \"xy-md02\"\nunit = 300",
                "van.toml:13: modbus[0].devices[0].unit: 300 is out of bounds 1–247"
            ),
            (
                Fixtures.good
                    + "\n[[modbus]]\nname = \"b\"\nhost = \"gw\"\n[[modbus.devices]]\nname = \"x\"\nmodel = \"nope\"",
                "van.toml:12: modbus[0].devices[0].model:"
            ),
            (
                Fixtures.good
                    + "\n[[modbus]]\nname = \"b\"\nhost = \"gw\"\n[[modbus.devices]]\nname = \"x\"\nmodel = \"xy-md02\"\n"
                    + "[[sensor]]\nid = \"s\"\nkind = \"seat\"\nmodbus = \"x.temperature\"",
                "van.toml:15: sensor[1].kind: x.temperature feeds temperature, not a seat sensor"
            ),
            (
                Fixtures.good + "\n[[modbus]]\nname = \"b\"\n[[modbus.devices]]\nname = \"x\"\nmodel = \"xy-md02\"",
                "van.toml:7: modbus[0]: a bus has either device"
            ),
            (
                "vehicle_id = \"v\"\nprofile = \"test\"",
                "van.toml:1: sensor: a van needs at least one seat, presence or motion"
            ),
            ("vehicle_id = [\"v\"", "van.toml:1:"),
        ])
    func bad(_ text: String, _ expected: String) {
        let message = error(text)
        #expect(message.hasPrefix(expected), "got: \(message)")
    }

    @Test(
        "bad device models",
        arguments: [
            ("model = \"m\"", "m.toml:1: a device model needs at least one [[point]]"),
            (
                "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 5\naddress = 0",
                "m.toml:4: point[0].function: 5 is out of bounds 1–4"
            ),
            (
                "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 2\naddress = 0\ntype = \"u16\"",
                "m.toml:6: point[0].type: function 2 reads bits: the type must be bit"
            ),
            (
                "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 0\ntype = \"bit-in-register\"\nbit = 10\ncount = 8",
                "m.toml:8: point[0].count: bits 10…17 do not fit in one 16-bit register"
            ),
            (
                "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 3\naddress = 65535\ntype = \"u32\"",
                "m.toml:2: point[0].count: runs past address 65535"
            ),
            (
                "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 4\naddress = 1\nfeeds = \"wind\"",
                "m.toml:6: point[0].feeds:"
            ),
            (
                "model = \"m\"\n[[point]]\nname = \"a\"\nfunction = 4\naddress = 1\n[[point]]\nname = \"a\"\nfunction = 4\naddress = 2",
                "m.toml:7: point[1].name: point \"a\" is defined twice"
            ),
        ])
    func badModels(_ text: String, _ expected: String) {
        do {
            _ = try DeviceModel.parse(text, file: "m.toml")
            Issue.record("no error for \(text)")
        } catch {
            #expect(error.description.hasPrefix(expected), "got: \(error.description)")
        }
    }

    @Test(
        "bad profiles",
        arguments: [
            ("board = \"b\"", "p.toml:1: gpio: missing: [gpio] with chip_label"),
            (
                "board = \"b\"\n[gpio]\nchip_label = \"c\"\n[inputs.ignition]\nline = \"A\"",
                "p.toml:4: inputs: missing [inputs.door]"
            ),
            (
                Fixtures.profile.replacingOccurrences(of: "line = \"L2\"", with: "line = \"L1\""),
                "p.toml:7: inputs.door.line: line L1 is already used by ignition"
            ),
            (Fixtures.profile + "\n[outputs.siren]\nline = \"L9\"", "p.toml:16: outputs.siren: unknown output"),
            (
                Fixtures.profile.replacingOccurrences(
                    of: "[inputs.ignition]\nline = \"L1\"", with: "[inputs.ignition]\nline = \"L1\"\nbias = \"up\""),
                "p.toml:6: inputs.ignition.bias: \"up\" is not one of: as-is, disabled, pull-up, pull-down"
            ),
        ])
    func badProfiles(_ text: String, _ expected: String) {
        do {
            _ = try HardwareProfile.parse(text, file: "p.toml")
            Issue.record("no error for \(text)")
        } catch {
            #expect(error.description.hasPrefix(expected), "got: \(error.description)")
        }
    }
}

import Hardware

/// `device-model`: a Modbus device model's register map (`HardwareProfiles/devices/MODEL.toml`).
/// Bad input must come back as an error naming the file; a model that decodes must plan reads the
/// bus can make (each within the protocol's limit, covering every point once) and decode every
/// point from any registers.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDeviceModel(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let model: DeviceModel
    do {
        model = try DeviceModel.parse(text(data, size), file: "fuzz.toml")
    } catch {
        require(
            error.file == "fuzz.toml" && error.line >= 1 && error.line <= lineCount(data, size),
            "a model error without its file and line: \(error)")
        _ = error.description
        return 0
    }
    checkReads(of: model)
    // Registers as a device might answer: zeros, all ones, the sign bits, and the float32 NaN and
    // infinity in both word orders.
    let answers: [[UInt16]] = [
        [0, 0], [0xFFFF, 0xFFFF], [0x8000, 0], [0x7FFF, 0xFFFF], [0x7FC0, 0], [0x7F80, 0], [0, 0x7F80],
    ]
    for answer in answers {
        for point in model.points {
            if point.function.readsBits {
                require(
                    !point.decode(bit: answer[0] & 1 == 1).isNaN, "\(point.name): a bit decodes to \(answer[0] & 1)")
            } else if let value = point.decode(registers: answer[...]) {
                require(!value.isNaN, "\(point.name): \(answer) decodes to NaN")
            }
        }
    }
    return 0
}

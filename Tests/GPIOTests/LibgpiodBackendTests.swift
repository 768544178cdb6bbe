import Glibc
import Testing

@testable import GPIO

private let ms: UInt64 = 1_000_000
private let pi4 = [
    (label: "pinctrl-bcm2711", lines: Set(["GPIO17", "GPIO22", "GPIO23", "GPIO27"])),
    (label: "raspberrypi-exp-gpio", lines: Set(["NC", "STATUS_LED_G_CLK"])),
]

/// The libgpiod backend against the real libgpiod of this machine: no GPIO chips exist here, so
/// only the chip lookup can be exercised for real.
@Suite struct RealLibgpiodTests {
    @Test func aMissingChipLabelIsReportedClearly() throws {
        let error = try #require(throws: GPIOError.self) { try LibgpiodBackend(chipLabel: "pinctrl-rp1") }
        guard case .noSuchChip(let label, let found) = error else {
            Issue.record("expected noSuchChip, got \(error)")
            return
        }
        #expect(label == "pinctrl-rp1")
        #expect(error.description.hasPrefix("no GPIO chip labelled \"pinctrl-rp1\" (found: "))
        if found.isEmpty {
            #expect(error.description == "no GPIO chip labelled \"pinctrl-rp1\" (found: none)")
        }
    }

    @Test func aDeviceThatIsNotAGPIOChipIsListedAsUnreadable() throws {
        var template = Array("/tmp/gpiotests.XXXXXX".utf8CString)
        let directory = try #require(
            template.withUnsafeMutableBufferPointer { buffer in
                buffer.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) }
            })
        defer {
            unlink(directory + "/gpiochip0")
            rmdir(directory)
        }
        let file = try #require(fopen(directory + "/gpiochip0", "w"))
        fclose(file)

        let error = try #require(throws: GPIOError.self) {
            try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: LibgpiodCalls(deviceDirectory: directory))
        }
        guard case .noSuchChip(_, let found) = error else {
            Issue.record("expected noSuchChip, got \(error)")
            return
        }
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("gpiochip0 (unreadable: ") == true)
    }

    @Test func theShimSaysWhichLibgpiodItWasBuiltAgainst() {
        // bookworm's libgpiod-dev is 1.6: no kernel debounce, so the backend debounces in software.
        #expect(LibgpiodCalls().hasKernelDebounce == !LibgpiodCalls.isLibgpiodV1)
    }
}

/// The libgpiod backend's error paths and debouncing, through an injected fake chip set.
@Suite struct LibgpiodBackendTests {
    @Test func aMissingChipListsTheLabelsFound() throws {
        let error = try #require(throws: GPIOError.self) {
            try LibgpiodBackend(chipLabel: "pinctrl-rp1", calls: FakeGPIOD(chips: pi4))
        }
        #expect(
            error.description == "no GPIO chip labelled \"pinctrl-rp1\" (found: pinctrl-bcm2711, raspberrypi-exp-gpio)")
    }

    @Test func aChipThatCannotBeOpenedSaysWhy() throws {
        let fake = FakeGPIOD(chips: pi4)
        fake.fail(.open, with: .permissionDenied)
        let error = try #require(throws: GPIOError.self) {
            try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        }
        #expect(error == .chipUnavailable(label: "pinctrl-bcm2711", errno: .permissionDenied))
        #expect(error.description.hasSuffix(": Permission denied"))
    }

    @Test func aMissingLineNamesLineChipAndRole() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        let error = try #require(throws: GPIOError.self) {
            try backend.request(
                inputs: [
                    GPIOInputSpec(role: "ignition", line: "GPIO17"), GPIOInputSpec(role: "door", line: "GPIO99"),
                ],
                outputs: [])
        }
        #expect(error == .noSuchLine(line: "GPIO99", chip: "pinctrl-bcm2711", role: "door"))
        #expect(error.description == "no line named \"GPIO99\" on chip \"pinctrl-bcm2711\" (for role door)")
        // All or nothing: the line already requested was released with the chip.
        #expect(fake.closedCount == 1)
        #expect(throws: GPIOError.closed) { try backend.readInputs() }
    }

    @Test func aBusyLineSaysSo() throws {
        let fake = FakeGPIOD(chips: pi4)
        fake.markBusy("GPIO17")
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        let error = try #require(throws: GPIOError.self) {
            try backend.request(inputs: [GPIOInputSpec(role: "door", line: "GPIO17")], outputs: [])
        }
        #expect(error == .lineBusy(line: "GPIO17", chip: "pinctrl-bcm2711", role: "door"))
        #expect(error.description.hasPrefix("line GPIO17 is busy (used by another program?)"))
        #expect(error.description.contains("role door"))
    }

    @Test func anOutputRequestRefusedByTheKernelCarriesItsErrno() throws {
        let fake = FakeGPIOD(chips: pi4)
        fake.fail(.requestOutput(line: "GPIO23"), with: .ioError)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        let error = try #require(throws: GPIOError.self) {
            try backend.request(inputs: [], outputs: [GPIOOutputSpec(role: "buzzer", line: "GPIO23")])
        }
        #expect(error == .requestFailed(line: "GPIO23", chip: "pinctrl-bcm2711", role: "buzzer", errno: .ioError))
        #expect(error.description.hasSuffix(": Input/output error"))
    }

    @Test func aLineGivenTwiceIsRefusedBeforeAskingTheKernel() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        let error = try #require(throws: GPIOError.self) {
            try backend.request(
                inputs: [GPIOInputSpec(role: "door", line: "GPIO17")],
                outputs: [GPIOOutputSpec(role: "buzzer", line: "GPIO17")])
        }
        #expect(error == .invalidRequest("line GPIO17 is given to two roles, door and buzzer"))
        #expect(fake.requests.isEmpty)
    }

    @Test func requestsCarryConsumerActiveLowBiasAndInitialValue() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(
            inputs: [GPIOInputSpec(role: "door", line: "GPIO17", activeLow: true, bias: .pullUp)],
            outputs: [GPIOOutputSpec(role: "hazard", line: "GPIO23", activeLow: true, initial: true)])
        #expect(
            fake.requests == [
                .init(
                    line: "GPIO17", consumer: "headcount:door", isInput: true, activeLow: true, bias: .pullUp,
                    debounceMicroseconds: 0, initial: false),
                .init(
                    line: "GPIO23", consumer: "headcount:hazard", isInput: false, activeLow: true, bias: .asIs,
                    debounceMicroseconds: 0, initial: true),
            ])
        try backend.setOutput(0, to: false)
        #expect(fake.writes.map(\.line) == ["GPIO23"])
        #expect(fake.writes.map(\.value) == [false])
        #expect(throws: GPIOError.invalidRequest("no output 1 (1 requested)")) { try backend.setOutput(1, to: true) }
    }

    @Test func aWriteErrorNamesTheLine() throws {
        let fake = FakeGPIOD(chips: pi4)
        fake.fail(.setValue(line: "GPIO23"), with: .ioError)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(inputs: [], outputs: [GPIOOutputSpec(role: "buzzer", line: "GPIO23")])
        #expect(throws: GPIOError.writeFailed(line: "GPIO23", chip: "pinctrl-bcm2711", role: "buzzer", errno: .ioError))
        {
            try backend.setOutput(0, to: true)
        }
    }

    @Test func aReadErrorDuringAWaitNamesTheLine() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(
            inputs: [GPIOInputSpec(role: "ignition", line: "GPIO17"), GPIOInputSpec(role: "seat.1", line: "GPIO22")],
            outputs: [])
        fake.script("GPIO22", [(at: fake.now + 5 * ms, rising: true)])
        fake.fail(.readEdges(line: "GPIO22"), with: .ioError)
        let error = try #require(throws: GPIOError.self) { try backend.waitForEdges(timeoutNanoseconds: 100_000_000) }
        #expect(error == .readFailed(line: "GPIO22", chip: "pinctrl-bcm2711", role: "seat.1", errno: .ioError))
        #expect(
            error.description
                == "cannot read line GPIO22 on chip \"pinctrl-bcm2711\" (for role seat.1): Input/output error")
    }

    @Test func aFailedWaitNamesTheChip() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(inputs: [GPIOInputSpec(role: "door", line: "GPIO17")], outputs: [])
        fake.fail(.wait, with: GPIOErrno(EBADF))
        #expect(throws: GPIOError.waitFailed(chip: "pinctrl-bcm2711", errno: GPIOErrno(EBADF))) {
            try backend.waitForEdges(timeoutNanoseconds: 1_000_000)
        }
    }

    @Test func edgesComeInTimestampOrderAcrossLines() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(
            inputs: [GPIOInputSpec(role: "door", line: "GPIO17"), GPIOInputSpec(role: "button", line: "GPIO22")],
            outputs: [])
        // Edges already queued when the wait starts come out in one batch, sorted across lines.
        let t = fake.now
        fake.script("GPIO17", [(at: t - 500, rising: true), (at: t - 100, rising: false)])
        fake.script("GPIO22", [(at: t - 300, rising: true)])
        #expect(
            try backend.waitForEdges(timeoutNanoseconds: 100_000_000) == [
                GPIOEdge(input: 0, value: true, timestampNanoseconds: t - 500),
                GPIOEdge(input: 1, value: true, timestampNanoseconds: t - 300),
                GPIOEdge(input: 0, value: false, timestampNanoseconds: t - 100),
            ])
        #expect(fake.now == t)
    }

    @Test func aWaitWithNothingToReportTimesOut() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(inputs: [GPIOInputSpec(role: "door", line: "GPIO17")], outputs: [])
        let before = fake.now
        #expect(try backend.waitForEdges(timeoutNanoseconds: 100_000_000) == [])
        #expect(fake.now - before == 100 * ms)
    }

    /// libgpiod 1.6: bounces shorter than the debounce are dropped; a change is reported once
    /// stable for the period, stamped with the end of that period.
    @Test func softwareDebounceDropsBouncesAndStampsTheEndOfThePeriod() throws {
        let fake = FakeGPIOD(chips: pi4, kernelDebounce: false)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(
            inputs: [
                GPIOInputSpec(role: "door", line: "GPIO17", debounceMilliseconds: 20),
                GPIOInputSpec(role: "ignition", line: "GPIO22"),
            ],
            outputs: [])
        #expect(fake.requests.map(\.debounceMicroseconds) == [0, 0])
        let t = fake.now
        fake.script(
            "GPIO17",
            [
                // Contact bounce on opening: settles high at t+102 ms.
                (at: t + 100 * ms, rising: true), (at: t + 101 * ms, rising: false), (at: t + 102 * ms, rising: true),
                // A 5 ms glitch low, then back high: dropped.
                (at: t + 300 * ms, rising: false), (at: t + 305 * ms, rising: true),
                // A real close at t+400 ms.
                (at: t + 400 * ms, rising: false),
            ])
        // An undebounced line in between, delivered as the kernel stamped it.
        fake.script("GPIO22", [(at: t + 110 * ms, rising: true)])

        var edges: [GPIOEdge] = []
        for _ in 0..<50 where fake.now < t + 1_000 * ms {
            edges += try backend.waitForEdges(timeoutNanoseconds: 50_000_000)
        }
        #expect(
            edges == [
                GPIOEdge(input: 1, value: true, timestampNanoseconds: t + 110 * ms),
                GPIOEdge(input: 0, value: true, timestampNanoseconds: t + 122 * ms),
                GPIOEdge(input: 0, value: false, timestampNanoseconds: t + 420 * ms),
            ])
    }

    @Test func softwareDebounceReportsNothingBeforeThePeriodEnds() throws {
        let fake = FakeGPIOD(chips: pi4, kernelDebounce: false)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(
            inputs: [GPIOInputSpec(role: "seat.1", line: "GPIO27", debounceMilliseconds: 50)], outputs: [])
        let t = fake.now
        fake.script("GPIO27", [(at: t + 10 * ms, rising: true)])
        // 40 ms later the change is still pending: the wait times out empty.
        #expect(try backend.waitForEdges(timeoutNanoseconds: 50_000_000) == [])
        #expect(fake.now == t + 50 * ms)
        // The wait wakes for the debounce deadline, not only at its timeout.
        let edges = try backend.waitForEdges(timeoutNanoseconds: 1_000_000_000)
        #expect(edges == [GPIOEdge(input: 0, value: true, timestampNanoseconds: t + 60 * ms)])
        #expect(fake.now == t + 60 * ms)
    }

    @Test func softwareDebounceStartsFromTheValueReadAtRequest() throws {
        let fake = FakeGPIOD(chips: pi4, kernelDebounce: false)
        fake.setValue("GPIO17", true)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(
            inputs: [GPIOInputSpec(role: "door", line: "GPIO17", debounceMilliseconds: 20)], outputs: [])
        let t = fake.now
        // A spurious "rising" to the value it already has changes nothing.
        fake.script("GPIO17", [(at: t + 5 * ms, rising: true), (at: t + 100 * ms, rising: false)])
        var edges: [GPIOEdge] = []
        for _ in 0..<10 where fake.now < t + 300 * ms {
            edges += try backend.waitForEdges(timeoutNanoseconds: 50_000_000)
        }
        #expect(edges == [GPIOEdge(input: 0, value: false, timestampNanoseconds: t + 120 * ms)])
    }

    @Test func softwareDebounceNeedsTheInitialValue() throws {
        let fake = FakeGPIOD(chips: pi4, kernelDebounce: false)
        fake.fail(.getValue(line: "GPIO17"), with: .ioError)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        #expect(throws: GPIOError.readFailed(line: "GPIO17", chip: "pinctrl-bcm2711", role: "door", errno: .ioError)) {
            try backend.request(
                inputs: [GPIOInputSpec(role: "door", line: "GPIO17", debounceMilliseconds: 20)], outputs: [])
        }
    }

    /// libgpiod 2.x: the kernel debounces, so the period goes down in microseconds and edges pass
    /// through untouched.
    @Test func kernelDebounceIsPassedDown() throws {
        let fake = FakeGPIOD(chips: pi4, kernelDebounce: true)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(
            inputs: [GPIOInputSpec(role: "door", line: "GPIO17", debounceMilliseconds: 20)], outputs: [])
        #expect(fake.requests.map(\.debounceMicroseconds) == [20_000])
        let t = fake.now
        fake.script("GPIO17", [(at: t + 1 * ms, rising: true), (at: t + 1 * ms + 10, rising: false)])
        var edges: [GPIOEdge] = []
        for _ in 0..<10 where fake.now < t + 10 * ms {
            edges += try backend.waitForEdges(timeoutNanoseconds: 10_000_000)
        }
        #expect(
            edges == [
                GPIOEdge(input: 0, value: true, timestampNanoseconds: t + 1 * ms),
                GPIOEdge(input: 0, value: false, timestampNanoseconds: t + 1 * ms + 10),
            ])
    }

    @Test func closingTwiceClosesOnceAndLaterCallsSayClosed() throws {
        let fake = FakeGPIOD(chips: pi4)
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(inputs: [GPIOInputSpec(role: "door", line: "GPIO17")], outputs: [])
        backend.close()
        backend.close()
        #expect(fake.closedCount == 1)
        #expect(throws: GPIOError.closed) { try backend.waitForEdges(timeoutNanoseconds: 0) }
        #expect(throws: GPIOError.closed) { try backend.setOutput(0, to: true) }
    }
}

/// The debouncer on its own: the semantics documented on `SoftwareDebouncer`.
@Suite struct SoftwareDebouncerTests {
    @Test func aPulseExactlyAsLongAsThePeriodCounts() {
        var debouncer = SoftwareDebouncer()
        debouncer.track(input: 3, periodNanoseconds: 10, value: false)
        #expect(debouncer.edge(input: 3, value: true, at: 100) == nil)
        #expect(debouncer.nextDeadline == 110)
        #expect(debouncer.due(at: 109) == [])
        // The next edge arrives exactly at the deadline: the change had been stable for the period.
        #expect(
            debouncer.edge(input: 3, value: false, at: 110)
                == GPIOEdge(input: 3, value: true, timestampNanoseconds: 110))
        #expect(debouncer.due(at: 119) == [])
        #expect(debouncer.due(at: 120) == [GPIOEdge(input: 3, value: false, timestampNanoseconds: 120)])
        #expect(debouncer.nextDeadline == nil)
    }

    @Test func untrackedInputsAreLeftAlone() {
        var debouncer = SoftwareDebouncer()
        #expect(!debouncer.isTracking(0))
        #expect(debouncer.edge(input: 0, value: true, at: 5) == nil)
        #expect(debouncer.due(at: .max) == [])
    }
}

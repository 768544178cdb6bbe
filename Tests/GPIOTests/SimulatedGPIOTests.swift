import Glibc
import Synchronization
import Testing
import Threads

@testable import GPIO

private let ms: UInt64 = 1_000_000

/// Real-time tests: serialized, so their timing is not disturbed by each other.
@Suite(.serialized) struct SimulatedGPIOTests {
    private func simulator(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec] = []) throws -> SimulatedGPIO {
        let simulator = SimulatedGPIO()
        try simulator.request(inputs: inputs, outputs: outputs)
        return simulator
    }

    /// Waits for edges until `count` came or `limit` passed; bounded in rounds too.
    private func collect(_ simulator: SimulatedGPIO, count: Int, within limit: UInt64) throws -> [GPIOEdge] {
        let deadline = GPIOClock.monotonicNanoseconds() + limit
        var edges: [GPIOEdge] = []
        for _ in 0..<1_000 where edges.count < count && GPIOClock.monotonicNanoseconds() < deadline {
            edges += try simulator.waitForEdges(timeoutNanoseconds: 20_000_000)
        }
        return edges
    }

    @Test func scheduledAndImmediateEdgesComeInTimestampOrder() throws {
        let sim = try simulator(inputs: [
            GPIOInputSpec(role: "door", line: "D"), GPIOInputSpec(role: "button", line: "B"),
        ])
        let start = sim.startNanoseconds
        try sim.scheduleInput("door", high: true, at: 40 * ms)
        try sim.scheduleInput("door", high: false, at: 160 * ms)
        try sim.scheduleInput("button", high: true, at: 100 * ms)

        let first = try collect(sim, count: 1, within: 2_000 * ms)
        #expect(first == [GPIOEdge(input: 0, value: true, timestampNanoseconds: start + 40 * ms)])
        // Set now, between the scheduled ones: stamped with the time it was set.
        let before = GPIOClock.monotonicNanoseconds()
        try sim.setInput("button", high: true)
        try sim.setInput("button", high: false)
        let after = GPIOClock.monotonicNanoseconds()
        #expect(after < start + 100 * ms, "the test machine was too slow to interleave")

        let rest = try collect(sim, count: 4, within: 2_000 * ms)
        try #require(rest.count == 4)
        #expect(rest[0].input == 1 && rest[0].value && (before...after).contains(rest[0].timestampNanoseconds))
        #expect(rest[1].input == 1 && !rest[1].value && (before...after).contains(rest[1].timestampNanoseconds))
        #expect(rest[2] == GPIOEdge(input: 1, value: true, timestampNanoseconds: start + 100 * ms))
        #expect(rest[3] == GPIOEdge(input: 0, value: false, timestampNanoseconds: start + 160 * ms))
        #expect(rest.map(\.timestampNanoseconds) == rest.map(\.timestampNanoseconds).sorted())
    }

    @Test func aWholeTraceScheduledAtOnceComesOutInTimestampOrderWithTiesAsSet() throws {
        // `headcount run --simulate` schedules a whole trace before it starts: a soak run's is tens
        // of thousands of changes. Here 20,000, door and button changing at the same instants (set
        // door first), set in blocks out of time order; then 4,000 more after the first ones were
        // taken. Every change is due by the time it is set.
        let sim = try simulator(inputs: [
            GPIOInputSpec(role: "door", line: "D"), GPIOInputSpec(role: "button", line: "B"),
        ])
        let start = sim.startNanoseconds
        let micro: UInt64 = 1_000
        // Change pair p: both lines at p µs; each line alternates, so every change is an edge.
        func schedulePair(_ pair: Int) throws {
            let high = pair % 2 == 0
            try sim.scheduleInput("door", high: high, at: UInt64(pair) * micro)
            try sim.scheduleInput("button", high: high, at: UInt64(pair) * micro)
        }
        func expected(_ pairs: Range<Int>) -> [GPIOEdge] {
            pairs.flatMap { pair in
                (0..<2).map { input in
                    GPIOEdge(input: input, value: pair % 2 == 0, timestampNanoseconds: start + UInt64(pair) * micro)
                }
            }
        }
        for block in (0..<100).reversed() {
            for pair in (block * 100)..<(block * 100 + 100) { try schedulePair(pair) }
        }
        let first = try collect(sim, count: 20_000, within: 10_000 * ms)
        #expect(first.count == 20_000)
        #expect(first == expected(0..<10_000))

        // More after those were taken (the taken ones are dropped in bulk meanwhile).
        for pair in (10_000..<12_000).reversed() { try schedulePair(pair) }
        let rest = try collect(sim, count: 4_000, within: 10_000 * ms)
        #expect(rest == expected(10_000..<12_000))
        #expect(try sim.waitForEdges(timeoutNanoseconds: 0).isEmpty)
    }

    @Test func activeLowInputsStartInactiveAndReportLogicalValues() throws {
        let sim = try simulator(inputs: [
            GPIOInputSpec(role: "button", line: "B", activeLow: true), GPIOInputSpec(role: "ignition", line: "I"),
        ])
        #expect(try sim.readInputs() == [false, false])
        try sim.setInput("button", high: false)  // pressed: pulls the line low
        try sim.setInput("ignition", high: true)
        let edges = try sim.waitForEdges(timeoutNanoseconds: 0)
        #expect(edges.map(\.input) == [0, 1])
        #expect(edges.map(\.value) == [true, true])
        #expect(try sim.readInputs() == [true, true])
        // The same level again is no edge.
        try sim.setInput("button", high: false)
        #expect(try sim.waitForEdges(timeoutNanoseconds: 0) == [])
    }

    @Test func outputChangesAreRecordedWithTimestamps() throws {
        let before = GPIOClock.monotonicNanoseconds()
        let sim = try simulator(
            inputs: [],
            outputs: [
                GPIOOutputSpec(role: "buzzer", line: "Z"), GPIOOutputSpec(role: "status-led", line: "L", initial: true),
            ])
        try sim.setOutput(0, to: true)
        try sim.setOutput(0, to: true)
        try sim.setOutput(1, to: false)
        try sim.setOutput(0, to: false)
        let after = GPIOClock.monotonicNanoseconds()
        let changes = sim.outputChanges
        #expect(changes.map(\.role) == ["buzzer", "status-led", "buzzer", "status-led", "buzzer"])
        #expect(changes.map(\.value) == [false, true, true, false, false])
        let stamps = changes.map(\.timestampNanoseconds)
        #expect(stamps == stamps.sorted())
        #expect(stamps.allSatisfy { (before...after).contains($0) })
        #expect(sim.output("buzzer") == false)
        #expect(sim.output("horn") == nil)
        #expect(throws: GPIOError.invalidRequest("no output 2 (2 requested)")) { try sim.setOutput(2, to: true) }
    }

    @Test func waitingTimesOutOnTime() throws {
        let sim = try simulator(inputs: [GPIOInputSpec(role: "door", line: "D")])
        let begin = GPIOClock.monotonicNanoseconds()
        #expect(try sim.waitForEdges(timeoutNanoseconds: 80_000_000) == [])
        let elapsed = GPIOClock.monotonicNanoseconds() - begin
        #expect(elapsed >= 80 * ms)
        #expect(elapsed < 300 * ms)
    }

    @Test func waitingWakesAsSoonAsAnInputIsSet() throws {
        let sim = try simulator(inputs: [GPIOInputSpec(role: "door", line: "D")])
        let setter = try OwnedThread.start {
            var pause = timespec(tv_sec: 0, tv_nsec: 30_000_000)
            nanosleep(&pause, nil)
            try? sim.setInput("door", high: true)
        }.get()
        defer { OwnedThread.join(setter) }
        let begin = GPIOClock.monotonicNanoseconds()
        let edges = try sim.waitForEdges(timeoutNanoseconds: 5_000_000_000)
        let elapsed = GPIOClock.monotonicNanoseconds() - begin
        #expect(edges.map(\.value) == [true])
        #expect(elapsed < 1_000 * ms)
    }

    @Test func waitingWakesForAScheduledChange() throws {
        let sim = try simulator(inputs: [GPIOInputSpec(role: "door", line: "D")])
        let at = GPIOClock.monotonicNanoseconds() - sim.startNanoseconds + 50 * ms
        try sim.scheduleInput("door", high: true, at: at)
        let edges = try sim.waitForEdges(timeoutNanoseconds: 5_000_000_000)
        #expect(edges == [GPIOEdge(input: 0, value: true, timestampNanoseconds: sim.startNanoseconds + at)])
        #expect(GPIOClock.monotonicNanoseconds() - (sim.startNanoseconds + at) < 1_000 * ms)
    }

    @Test func closingWakesAWaiterAndLaterCallsSayClosed() throws {
        let sim = try simulator(inputs: [GPIOInputSpec(role: "door", line: "D")])
        let closer = try OwnedThread.start {
            var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&pause, nil)
            sim.close()
        }.get()
        defer { OwnedThread.join(closer) }
        let begin = GPIOClock.monotonicNanoseconds()
        #expect(throws: GPIOError.closed) { try sim.waitForEdges(timeoutNanoseconds: 5_000_000_000) }
        #expect(GPIOClock.monotonicNanoseconds() - begin < 1_000 * ms)
        #expect(throws: GPIOError.closed) { try sim.setInput("door", high: true) }
    }

    @Test func unknownRolesAreRefused() throws {
        let sim = try simulator(inputs: [GPIOInputSpec(role: "door", line: "D")])
        #expect(throws: GPIOError.invalidRequest("no simulated input with role seat.9")) {
            try sim.setInput("seat.9", high: true)
        }
    }
}

/// The first `count` events of `reader`, or fewer if `limit` passes first: bounds a `for await` in time.
private func firstEvents(
    of reader: GPIOInputReader, count: Int, within limit: Duration,
    until last: @escaping @Sendable (GPIOInputEvent) -> Bool = { _ in false }
) async -> [GPIOInputEvent] {
    await withTaskGroup(of: [GPIOInputEvent]?.self) { group in
        group.addTask {
            var events: [GPIOInputEvent] = []
            for await event in reader.events {
                events.append(event)
                if events.count == count || last(event) { break }
            }
            return events
        }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        var collected: [GPIOInputEvent] = []
        for await result in group {
            group.cancelAll()
            if let result { collected = result }
        }
        return collected
    }
}

/// The reader thread, fed by the simulator (and once by the fake libgpiod).
@Suite(.serialized) struct GPIOInputReaderTests {
    @Test func everyEdgeArrivesOnceInOrderAndStopIsPrompt() async throws {
        let sim = SimulatedGPIO()
        try sim.request(
            inputs: [GPIOInputSpec(role: "door", line: "D"), GPIOInputSpec(role: "seat.1", line: "S")], outputs: [])
        let reader = GPIOInputReader(backend: sim, pollTimeoutNanoseconds: 100_000_000)
        reader.start()
        reader.start()  // a second start does nothing

        // 30 scheduled edges, 5 ms apart, alternating lines, plus 4 set at once.
        let now = GPIOClock.monotonicNanoseconds() - sim.startNanoseconds
        var expected: [GPIOEdge] = []
        for step in 0..<30 {
            let input = step % 2
            let at = now + 20 * ms + UInt64(step) * 5 * ms
            let high = (step / 2) % 2 == 0
            try sim.scheduleInput(input == 0 ? "door" : "seat.1", high: high, at: at)
            expected.append(GPIOEdge(input: input, value: high, timestampNanoseconds: sim.startNanoseconds + at))
        }
        try sim.setInput("seat.1", high: true)
        try sim.setInput("seat.1", high: false)

        let events = await firstEvents(of: reader, count: expected.count + 2, within: .seconds(5))
        let received = events.compactMap { event -> GPIOEdge? in
            guard case .edge(let edge) = event else { return nil }
            return edge
        }
        #expect(received.count == events.count, "only edges expected: \(events)")
        let begin = GPIOClock.monotonicNanoseconds()
        reader.stop()
        let stopping = GPIOClock.monotonicNanoseconds() - begin
        #expect(stopping < 500 * ms)

        // The two set at once came first (they are older than every scheduled one).
        try #require(received.count == expected.count + 2)
        #expect(received.prefix(2).map(\.value) == [true, false])
        #expect(Array(received.dropFirst(2)) == expected)
        // Nothing more after stop: the stream is finished, with no duplicate left in it.
        var extra = 0
        for await _ in reader.events { extra += 1 }
        #expect(extra == 0)
        sim.close()
    }

    @Test func aReaderThatHandsEventsOnKeepsNoneForTheStream() async throws {
        // The daemon hands every edge on directly and never reads `events`: fed as well, the stream
        // kept every edge of the van's life (a 1,000-trip soak run saw the daemon's RSS grow).
        let sim = SimulatedGPIO()
        try sim.request(inputs: [GPIOInputSpec(role: "door", line: "D")], outputs: [])
        let handed = Mutex<[GPIOEdge]>([])
        let reader = GPIOInputReader(backend: sim, pollTimeoutNanoseconds: 10_000_000) { event in
            if case .edge(let edge) = event { handed.withLock { $0.append(edge) } }
        }
        reader.start()
        for step in 0..<200 {
            try sim.scheduleInput("door", high: step % 2 == 0, at: UInt64(step) * 100_000)
        }
        for _ in 0..<500 where handed.withLock({ $0.count }) < 200 { usleep(10_000) }
        reader.stop()
        #expect(handed.withLock { $0.count } == 200)
        var streamed = 0
        for await _ in reader.events { streamed += 1 }
        #expect(streamed == 0)
        sim.close()
    }

    @Test func stopIsPromptWhenNothingHappens() throws {
        let sim = SimulatedGPIO()
        try sim.request(inputs: [GPIOInputSpec(role: "door", line: "D")], outputs: [])
        let reader = GPIOInputReader(backend: sim, pollTimeoutNanoseconds: 100_000_000)
        reader.start()
        var pause = timespec(tv_sec: 0, tv_nsec: 150_000_000)
        nanosleep(&pause, nil)
        let begin = GPIOClock.monotonicNanoseconds()
        reader.stop()
        reader.stop()
        #expect(GPIOClock.monotonicNanoseconds() - begin < 500 * ms)
    }

    @Test func failuresAreHandedOnAndAClosedBackendEndsTheThread() async throws {
        let fake = FakeGPIOD(chips: [(label: "pinctrl-bcm2711", lines: ["GPIO17"])])
        let backend = try LibgpiodBackend(chipLabel: "pinctrl-bcm2711", calls: fake)
        try backend.request(inputs: [GPIOInputSpec(role: "door", line: "GPIO17")], outputs: [])
        fake.script("GPIO17", [(at: fake.now + 1_000, rising: true)])
        fake.fail(.readEdges(line: "GPIO17"), with: .ioError)
        let reader = GPIOInputReader(backend: backend, pollTimeoutNanoseconds: 10_000_000)
        reader.start()
        let failures = await firstEvents(of: reader, count: 2, within: .seconds(5))
        let failure = GPIOInputEvent.failure(
            .readFailed(line: "GPIO17", chip: "pinctrl-bcm2711", role: "door", errno: .ioError))
        #expect(failures == [failure, failure])

        // Closed under it, the reader says so and its thread ends; stop() then only finishes the stream.
        backend.close()
        // The failing reads may pile up many failures first on a loaded machine: read up to the close.
        let rest = await firstEvents(of: reader, count: 100_000, within: .seconds(5)) { $0 == .failure(.closed) }
        #expect(rest.last == .failure(.closed))
        #expect(rest.dropLast().allSatisfy { $0 == failure })
        let begin = GPIOClock.monotonicNanoseconds()
        reader.stop()
        #expect(GPIOClock.monotonicNanoseconds() - begin < 50 * ms)
    }
}

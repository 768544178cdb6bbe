import Daemon
import Dispatch
import GPIO
import Synchronization
import Testing

/// Four outputs (buzzer, horn, hazard, status LED) whose writes can be held: the next write of
/// "buzzer off" waits, with the thread that makes it, until released (or half a second passes).
final class HeldOutputs: GPIOBackend {
    private struct State {
        var values = [false, false, false, false]
        var holdNextBuzzerOff = false
    }

    private let state = Mutex(State())
    let held = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)

    func holdNextBuzzerOff() { state.withLock { $0.holdNextBuzzerOff = true } }
    func value(_ index: Int) -> Bool { state.withLock { $0.values[index] } }

    func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {}
    func readInputs() throws(GPIOError) -> [Bool] { [] }
    func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge] { [] }
    func close() {}

    func setOutput(_ index: Int, to value: Bool) throws(GPIOError) {
        let hold = state.withLock { state -> Bool in
            defer { if index == 0 && !value { state.holdNextBuzzerOff = false } }
            return state.holdNextBuzzerOff && index == 0 && !value
        }
        if hold {
            held.signal()
            _ = release.wait(timeout: .now() + .milliseconds(500))
        }
        state.withLock { $0.values[index] = value }
    }
}

@Suite("The sounder")
struct SounderTests {
    @Test("a pattern set while another thread's older write is in flight is what the outputs end on")
    func lastPatternWins() {
        let gpio = HeldOutputs()
        let sounder = Sounder(backend: gpio, outputs: .init(buzzer: 0, horn: 1, hazard: 2, statusLED: 3)) { _ in }
        sounder.set(.level1)
        #expect(gpio.value(0))

        // One thread silences the buzzer; its write is held. Meanwhile the alarm comes back.
        gpio.holdNextBuzzerOff()
        let silenced = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            sounder.set(.silent)
            silenced.signal()
        }
        #expect(gpio.held.wait(timeout: .now() + .seconds(10)) == .success)
        sounder.set(.level1)
        gpio.release.signal()
        #expect(silenced.wait(timeout: .now() + .seconds(10)) == .success)

        // Any later step (the sounder's beat, another pattern) leaves the buzzer sounding.
        sounder.set(.level1)
        #expect(sounder.pattern == .level1)
        #expect(gpio.value(0), "level 1 alarm with its buzzer off")
    }

    @Test("an output whose write failed is written again at the next step")
    func failedWriteIsRetried() {
        let gpio = FailingOnce()
        let sounder = Sounder(backend: gpio, outputs: .init(buzzer: 0, horn: nil, hazard: nil, statusLED: nil)) {
            _ in
        }
        sounder.set(.level1)
        #expect(!gpio.value)
        sounder.set(.level1)
        #expect(gpio.value)
    }
}

/// One output whose first write fails.
final class FailingOnce: GPIOBackend {
    private let state = Mutex((failed: false, value: false))

    var value: Bool { state.withLock { $0.value } }

    func request(inputs: [GPIOInputSpec], outputs: [GPIOOutputSpec]) throws(GPIOError) {}
    func readInputs() throws(GPIOError) -> [Bool] { [] }
    func waitForEdges(timeoutNanoseconds: Int64) throws(GPIOError) -> [GPIOEdge] { [] }
    func close() {}

    func setOutput(_ index: Int, to value: Bool) throws(GPIOError) {
        try state.withLock { (state: inout (failed: Bool, value: Bool)) throws(GPIOError) in
            guard state.failed else {
                state.failed = true
                throw .closed
            }
            state.value = value
        }
    }
}

/// Helpers the test targets share (a library target, not a test target: nothing of it runs alone):
/// the time budgets that grow under a sanitizer, and polling for a condition.
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whether this test binary was built with `--sanitize=address` or `--sanitize=thread` (`make
/// sanitize`): the sanitizer's runtime is linked in and exports its entry point.
public let underSanitizer = dlsym(nil, "__asan_init") != nil || dlsym(nil, "__tsan_init") != nil

/// How many times longer a wait may take under a sanitizer, which checks every memory access (ASan
/// about 2–3× slower, TSan 5–15×) while the whole suite shares the machine's cores.
public let sanitizerSlowdown = underSanitizer ? 5 : 1

/// A wait's bound in seconds: `seconds`, or `sanitizerSlowdown` times that. Still a bound.
public func budget(seconds: Double) -> Double { seconds * Double(sanitizerSlowdown) }

extension TimeLimitTrait.Duration {
    /// A test's time limit: `minutes`, or `sanitizerSlowdown` times that. A test that hangs still
    /// fails, later.
    public static func budget(minutes: Int) -> Self { .minutes(minutes * sanitizerSlowdown) }
}

/// Polls `condition` every 10 ms for up to `seconds`; whether it came true.
public func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    for _ in 0..<Int(seconds * 100) {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

import Glibc

/// CLOCK_MONOTONIC, the clock the kernel stamps GPIO edge events with (uAPI v1 since Linux 5.7,
/// uAPI v2 by default and as requested), so edge timestamps and "now" can be compared.
public enum GPIOClock {
    /// Nanoseconds since an arbitrary point (boot), never going backwards.
    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

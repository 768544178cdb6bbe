// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "headcount",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "headcount", targets: ["headcount"]),
        .executable(name: "headcount-bench", targets: ["headcount-bench"]),
        .executable(name: "headcount-modbus-bench", targets: ["headcount-modbus-bench"]),
        .executable(name: "headcount-outbox-bench", targets: ["headcount-outbox-bench"]),
        .executable(name: "headcount-push-bench", targets: ["headcount-push-bench"]),
        .executable(name: "headcount-live-bench", targets: ["headcount-live-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        // Line-aware readers for the text formats headcount takes in: JSON (traces) and TOML (config, profiles).
        .target(name: "Formats"),
        // The pure core: policy, evidence, the detection state machine, traces and replay.
        .target(name: "Detection", dependencies: ["Formats"]),
        // Hardware profiles, Modbus register maps and the van's config, decoded into typed values.
        .target(name: "Hardware", dependencies: ["Detection", "Formats", "CModbus", "Threads"]),
        // libmodbus as Debian ships it (libmodbus-dev): a module map and a shim header, nothing else.
        .systemLibrary(name: "CModbus", path: "Sources/CModbus"),
        // libsqlite3 and libcurl, as Debian ships them; CCurl adds typed wrappers for the variadic calls.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        // The center link: alert model, durable SQLite outbox, HTTPS with mutual TLS, delivery.
        .target(name: "Uplink", dependencies: ["CSQLite", "CCurl", "Detection", "Formats", "Threads"]),
        // The one C shim over libgpiod, compiling against 1.6 (bookworm) and 2.x (trixie).
        .target(name: "CGPIOD", linkerSettings: [.linkedLibrary("gpiod")]),
        // GPIO lines by chip label and line name: the libgpiod backend, the simulator, the input reader.
        .target(name: "GPIO", dependencies: ["CGPIOD", "Threads"]),
        // Named pthreads for the loops that must stay off the Swift concurrency pool.
        .target(name: "Threads"),
        // The kernel's clock state (adjtimex), for `headcount diagnose`.
        .target(name: "CSystem"),
        // The wiring: the engine on its own thread, clocks and timers, sounds, persisted state, systemd;
        // and the technician's diagnosis.
        .target(
            name: "Daemon", dependencies: ["Detection", "Hardware", "GPIO", "Uplink", "Formats", "CSystem", "Threads"]),
        .executableTarget(
            name: "headcount",
            dependencies: [
                "Detection", "Formats", "Hardware", "GPIO", "Uplink", "Daemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Measured figures for SPEC.md's replay targets (`make bench`).
        .executableTarget(name: "headcount-bench", dependencies: ["Detection"]),
        // Measured Modbus figures: transactions per second against the pymodbus peer, devices per bus.
        .executableTarget(name: "headcount-modbus-bench", dependencies: ["Hardware"]),
        // Measured outbox figures (durable enqueues/s, FULL vs NORMAL); also the kill -9 test's writer.
        .executableTarget(name: "headcount-outbox-bench", dependencies: ["Uplink", "Detection"]),
        // Measured push latency: HTTPSClient with a kept-alive connection against `curl` one-shots.
        .executableTarget(name: "headcount-push-bench", dependencies: ["Uplink"]),
        // Measured live figures: input edge -> buzzer and -> outbox through the real runtime on the
        // simulated GPIO, startup to READY=1, and the idle daemon's RSS and CPU with Modbus at 4 Hz.
        .executableTarget(
            name: "headcount-live-bench", dependencies: ["Daemon", "Detection", "GPIO", "Hardware", "Uplink"]),
        // What the test targets share: the time budgets that grow under a sanitizer, polling.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "HardwareTests", dependencies: ["Hardware", "Detection", "Formats"]),
        .testTarget(name: "ModbusTests", dependencies: ["Hardware", "Detection", "TestSupport"]),
        .testTarget(
            name: "DaemonTests", dependencies: ["Daemon", "Detection", "Hardware", "GPIO", "Uplink", "TestSupport"]),
        .testTarget(name: "UplinkTests", dependencies: ["Uplink", "CSQLite", "Detection", "Formats", "TestSupport"]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"]),
        .testTarget(name: "DetectionTests", dependencies: ["Detection", "Formats"]),
        .testTarget(name: "GPIOTests", dependencies: ["GPIO", "Threads"]),
    ]
)

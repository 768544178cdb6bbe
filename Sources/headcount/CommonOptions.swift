import ArgumentParser
import Hardware

/// `--config` and `--profiles`: every command that works on a van (run, diagnose, watch, record).
struct VanConfigOptions: ParsableArguments {
    @Option(help: "The van's config.")
    var config: String = "/etc/headcount/headcount.toml"

    @Option(help: "Look for profiles and device models here first.")
    var profiles: String?

    /// Where profiles and device models are looked up: `--profiles`, then the standard places.
    var directories: [String] { (profiles.map { [$0] } ?? []) + VanConfig.Catalog.standardDirectories }

    /// The van's config, or its error (file, line, field) on standard error and exit status 2.
    func load() throws -> VanConfig {
        do {
            return try VanConfig.load(path: config, directories: directories)
        } catch {
            Standard.error("headcount: \(error.description)\n")
            throw ExitCode(2)
        }
    }
}

/// The simulator's hidden options (the demo and the tests): a trace played into the simulated
/// lines, and how many trace seconds pass per real second.
struct SimulationOptions: ParsableArguments {
    @Option(help: .hidden)
    var speed: Double = 1

    @Option(
        help: ArgumentHelp(
            "Simulator profile only: play this trace's GPIO signals into the simulated lines, then stop.",
            visibility: .hidden))
    var simulate: String?

    /// `--speed` out of 1...1000: the message on standard error and exit status 2.
    func checkSpeed() throws {
        guard speed >= 1, speed <= 1000 else {
            Standard.error("headcount: --speed must be between 1 and 1000\n")
            throw ExitCode(2)
        }
    }
}

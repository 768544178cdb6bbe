import ArgumentParser
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The headcount command line: the daemon and the tools around it.
@main
struct Headcount: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "headcount",
        abstract: "Keeps children from being left in school vans.",
        discussion: """
            Exit status: 0 success (diagnose: nothing failed, warnings allowed); 1 hardware that \
            cannot be opened, or a diagnose check that failed; 2 bad input: a command line, config, \
            profile, device model or trace that cannot be used, with its file, line and field.
            """,
        version: version,
        subcommands: [Run.self, Replay.self, CheckConfig.self, Diagnose.self, Watch.self, Record.self]
    )

    /// Like ArgumentParser's `main`, but a command line that cannot be used is bad input too:
    /// exit status 2 rather than 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                Standard.error(fullMessage(for: error) + "\n")
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

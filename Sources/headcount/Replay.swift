import ArgumentParser
import Detection
import Formats
#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// `headcount replay`: the detection engine under virtual time over a trace.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a trace through the detection engine, in virtual time.",
        discussion: """
            Prints a timeline a person reads, or with --json one JSON object per line with `t` and \
            `event` (reminder, checked, alarm, silenced, alarm_cleared, alert). A malformed trace or \
            config is reported with its file, line and field, and exit status 2.
            """
    )

    @Argument(help: "The trace: JSON Lines, the first line declaring the sensors.")
    var trace: String

    @Option(help: "A van config whose [policy] overrides the trace's.")
    var config: String?

    @Flag(help: "Print one JSON object per event instead of the timeline.")
    var json = false

    func run() throws {
        try reportingInputErrors { try replay() }
    }

    private func replay() throws {
        let text = try readInput(trace)
        let parsed: Trace
        do {
            parsed = try Trace.parse(text, file: trace)
        } catch {
            throw InputError(error.description)
        }
        var policy = parsed.policy
        if let config {
            let configText = try readInput(config)
            let table: TOMLTable
            do {
                table = try TOML.parse(configText)
            } catch {
                throw InputError("\(config):\(error.line): \(error.message)")
            }
            do {
                try policy.apply(policyTableOf: table, file: config)
            } catch {
                throw InputError(error.description)
            }
        }
        let events = parsed.replay(policy: policy)
        var output = ""
        output.reserveCapacity(events.count * 80)
        if json {
            for event in events {
                output += event.json(sensors: parsed.sensors)
                output += "\n"
            }
        } else {
            var timeline = Timeline(sensors: parsed.sensors, policy: policy)
            output +=
                "headcount replay \(trace): \(parsed.steps.count) changes over \(formatNumber(parsed.duration)) s\n"
            for event in events {
                for line in timeline.lines(for: event) {
                    output += line
                    output += "\n"
                }
            }
        }
        Standard.output(output)
    }
}

/// Input that cannot be used: printed as it is, exit status 2.
struct InputError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads a whole file (or standard input for "-") as UTF-8 text.
func readInput(_ path: String) throws -> String {
    let bytes: [UInt8]
    if path == "-" {
        bytes = Standard.readInput()
    } else {
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw InputError("\(path): cannot read the file (does it exist, and is it readable?)")
        }
        bytes = Array(contents)
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw InputError("\(path):1: the file is not UTF-8 text")
    }
    return text
}

/// Runs `body`; unusable input is printed to standard error and ends the process with status 2.
func reportingInputErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as InputError {
        Standard.error("headcount: \(error.description)\n")
        throw ExitCode(2)
    }
}

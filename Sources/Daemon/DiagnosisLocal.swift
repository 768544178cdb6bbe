import CSystem
import Uplink

#if canImport(Glibc)
    import Glibc
#endif

extension Diagnosis {
    /// The outbox in the state directory: how much waits, how old the oldest is, what the center
    /// refused for good. Opened only if it exists; files SQLite makes beside it are given back to
    /// the database's owner, so a diagnosis run as root never locks the daemon's user out.
    public static func outbox(stateDirectory: String, now: WallClockTime = .now()) -> [DiagnosisCheck] {
        let path = stateDirectory + "/outbox.sqlite"
        var owner = stat()
        guard stat(path, &owner) == 0 else {
            if errno == EACCES {
                return [
                    DiagnosisCheck(
                        "outbox", "queue", .warn, "\(stateDirectory) cannot be read by this user",
                        hint: "run diagnose as root (sudo headcount diagnose) to see the outbox")
                ]
            }
            return [
                DiagnosisCheck(
                    "outbox", "queue", .pass, "no outbox yet at \(path): the daemon has not stored an alert here")
            ]
        }
        defer {
            for suffix in ["-wal", "-shm"] {
                var made = stat()
                if stat(path + suffix, &made) == 0, made.st_uid != owner.st_uid || made.st_gid != owner.st_gid {
                    _ = chown(path + suffix, owner.st_uid, owner.st_gid)
                }
            }
        }
        let outbox: Outbox
        do {
            outbox = try Outbox(path: path)
        } catch {
            return [
                DiagnosisCheck(
                    "outbox", "queue", .fail, error.description,
                    hint: "the daemon cannot store alerts either: check the disk (df -h, dmesg) and the file's owner")
            ]
        }
        defer { outbox.close() }
        var checks: [DiagnosisCheck] = []
        let depth = outbox.depth
        let alarms = (try? outbox.entries(limit: 10_000)) ?? []
        let oldest = alarms.map(\.createdAt).min()
        let ageMinutes = oldest.map { Int((now.secondsSinceEpoch - $0.secondsSinceEpoch) / 60) } ?? 0
        if depth == 0 {
            checks.append(DiagnosisCheck("outbox", "queue", .pass, "empty: everything was delivered"))
        } else if outbox.isOverBound || ageMinutes >= 60 {
            checks.append(
                DiagnosisCheck(
                    "outbox", "queue", .warn,
                    "\(depth) alerts waiting, the oldest from \(oldest?.rfc3339 ?? "?") (\(ageMinutes) min ago)"
                        + (outbox.isOverBound ? "; over its bound, oldest heartbeats are dropped" : ""),
                    hint: "the center has not taken them: see the center checks above and journalctl -u headcount"))
        } else {
            checks.append(
                DiagnosisCheck(
                    "outbox", "queue", .pass, "\(depth) alerts waiting, the oldest \(ageMinutes) min old (being sent)"))
        }
        let dead = outbox.deadLetterCount
        if dead > 0 {
            let last = (try? outbox.deadLetters(limit: 1))?.first
            let example =
                last.map { " (last: \($0.typeName) refused with \($0.httpStatus) \"\($0.answer.prefix(80))\")" } ?? ""
            checks.append(
                DiagnosisCheck(
                    "outbox", "dead letters", .warn, "\(dead) alerts refused for good by the center\(example)",
                    hint:
                        "they are kept in \(path) (table dead_letter) and were logged: "
                        + "journalctl -u headcount | grep refused; the center must fix what it refused"))
        } else {
            checks.append(DiagnosisCheck("outbox", "dead letters", .pass, "none"))
        }
        return checks
    }

    /// The wall clock: not before this release, synchronised, and close to the center's.
    public static func clock(now: WallClockTime = .now(), centerTime: WallClockTime?) -> [DiagnosisCheck] {
        var checks: [DiagnosisCheck] = []
        // Nothing of this release existed before 2026-11-01.
        let floor = WallClockTime(millisecondsSinceEpoch: 1_793_491_200_000)  // 2026-11-01T00:00:00Z
        if now < floor {
            checks.append(
                DiagnosisCheck(
                    "clock", "date", .fail, "the clock says \(now.rfc3339)",
                    hint:
                        "the clock is wrong (no RTC battery, no NTP yet): alerts carry wrong times and TLS "
                        + "certificates look not yet valid; check the network time (timedatectl)"))
        } else {
            checks.append(DiagnosisCheck("clock", "date", .pass, now.rfc3339))
        }
        var estimatedError = 0
        let unsynchronized = hc_clock_unsynchronized(&estimatedError)
        if unsynchronized != 0 {
            checks.append(
                DiagnosisCheck(
                    "clock", "sync", .warn, "the kernel says the clock is not synchronised",
                    hint: "enable network time: timedatectl set-ntp true (systemd-timesyncd) or chrony"))
        } else {
            checks.append(
                DiagnosisCheck(
                    "clock", "sync", .pass,
                    "synchronised (estimated error \(estimatedError) µs)"))
        }
        if let centerTime {
            let skew = now.secondsSinceEpoch - centerTime.secondsSinceEpoch
            let text =
                "\(abs(skew) < 1 ? "within 1 s of" : "\(Int(abs(skew).rounded())) s \(skew > 0 ? "ahead of" : "behind")") the center"
            checks.append(
                abs(skew) <= 60
                    ? DiagnosisCheck("clock", "vs center", .pass, text)
                    : DiagnosisCheck(
                        "clock", "vs center", .warn, text,
                        hint: "alerts carry the van's time: fix its time source (timedatectl)"))
        }
        return checks
    }

    /// Another `headcount run` on this machine with the same config (`configPath`, compared as
    /// real paths): its lines and serial ports are in use, and a second master on its buses would
    /// make its sensors look faulty, so the hardware checks wait for it.
    public static func runningDaemon(configPath: String) -> Int32? {
        guard let wanted = realPath(configPath) else { return nil }
        guard let directory = opendir("/proc") else { return nil }
        defer { closedir(directory) }
        let me = getpid()
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name), pid != me else { continue }
            guard let file = fopen("/proc/\(pid)/cmdline", "r") else { continue }
            var bytes = [UInt8](repeating: 0, count: 512)
            let count = fread(&bytes, 1, bytes.count, file)
            fclose(file)
            let arguments = bytes.prefix(count).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.count >= 2, arguments[0].hasSuffix("/headcount") || arguments[0] == "headcount",
                arguments[1] == "run"
            else { continue }
            var config = "/etc/headcount/headcount.toml"
            for (index, argument) in arguments.enumerated() {
                if argument == "--config", index + 1 < arguments.count { config = arguments[index + 1] }
                if argument.hasPrefix("--config=") { config = String(argument.dropFirst("--config=".count)) }
            }
            if !config.hasPrefix("/") { config = "/proc/\(pid)/cwd/" + config }
            if realPath(config) == wanted { return pid }
        }
        return nil
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

// mmsim: the command-line layer. All behaviour lives in the MMSim library.

import ArgumentParser
import Foundation
import MMSim

@main
struct MMSimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mmsim",
        abstract: "An executable model of the Linux memory-management subsystem.",
        discussion: """
        With no subcommand, mmsim boots the default machine (the reference machine of \
        shared/fidelity: x86-64, 4-level paging, 2 CPUs, 24 GiB) and prints its boot log, \
        /proc/meminfo and a zone summary.
        """,
        subcommands: [Boot.self, Run.self, Config.self, RandomCommand.self],
        defaultSubcommand: Boot.self
    )
}

/// Options that describe the machine: a preset, a JSON file, and overrides.
struct MachineOptions: ParsableArguments {
    @Option(name: .long, help: "Machine preset: reference, small, arm64, large-5level.")
    var preset: String = "reference"
    @Option(name: .long, help: "JSON machine configuration file (fields override the preset).")
    var config: String?
    @Option(name: .long, help: "Architecture: x86_64, x86_64-5level, arm64.")
    var arch: String?
    @Option(name: .long, help: "Memory size, e.g. 4G, 512M, 1T.")
    var memory: String?
    @Option(name: .long, help: "Number of CPUs (1...256).")
    var cpus: Int?
    @Option(name: .customLong("min-free-kbytes"), help: "vm.min_free_kbytes written after boot.")
    var minFreeKbytes: UInt64?
    @Option(name: .customLong("watermark-scale-factor"), help: "vm.watermark_scale_factor (1...3000).")
    var watermarkScaleFactor: UInt64?
    @Flag(name: .customLong("no-pcid"), help: "Disable PCID/ASID tagging of TLB entries.")
    var noPCID = false

    func resolve() throws -> MachineConfig {
        var c: MachineConfig
        if let path = config {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read configuration file \(path)")
            }
            c = try MachineConfig.load(json: data)
        } else {
            c = try MachineConfig.preset(named: preset)
        }
        if let a = arch {
            guard let v = Architecture(rawValue: a) else {
                throw ConfigError(field: "arch", message: "unknown architecture '\(a)'; allowed " + Architecture.allCases.map(\.rawValue).joined(separator: ", "))
            }
            c.arch = v
        }
        if let m = memory {
            guard let v = parseSize(m) else { throw ConfigError(field: "memory", message: "'\(m)' is not a size (e.g. 4G, 512M)") }
            c.memory = v
        }
        if let n = cpus { c.cpus = n }
        if let v = minFreeKbytes { c.minFreeKbytes = v }
        if let v = watermarkScaleFactor { c.watermarkScaleFactor = v }
        if noPCID { c.pcid = false }
        try c.validate()
        return c
    }
}

/// Runs `body`, turning model errors into one clear line and exit status 2.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ConfigError {
        FileHandle.standardError.write(Data("mmsim: configuration error: \(e)\n".utf8))
        throw ExitCode(2)
    }
}

struct Boot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a machine and print what /proc would show.")

    @OptionGroup var machine: MachineOptions
    @Option(name: .long, parsing: .upToNextOption,
            help: "Views to print, in order: dmesg, meminfo, zones, zoneinfo, buddyinfo, pagetypeinfo, vmstat, memblock, hugepages.")
    var show: [String] = ["dmesg", "meminfo", "zones"]
    @Option(name: .long, help: "Output format: text or json.")
    var format: String = "text"

    func run() throws {
        try reportingErrors {
            let known = ["dmesg", "meminfo", "zones", "zoneinfo", "buddyinfo", "pagetypeinfo", "vmstat", "memblock", "hugepages"]
            for v in show where !known.contains(v) {
                throw ValidationError("unknown view '\(v)'; known: \(known.joined(separator: ", "))")
            }
            guard format == "text" || format == "json" else { throw ValidationError("--format must be text or json") }
            let m = try Machine(try machine.resolve())
            if format == "json" {
                let data = try JSONSerialization.data(withJSONObject: m.snapshotJSON(), options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            for (i, v) in show.enumerated() {
                if i > 0 { print("") }
                switch v {
                case "dmesg": print("$ dmesg\n" + m.log.joined(separator: "\n"))
                case "meminfo": print("$ cat /proc/meminfo\n" + m.meminfoText(), terminator: "")
                case "zones": print("zone summary (/proc/zoneinfo, condensed)\n" + m.zoneSummaryText(), terminator: "")
                case "zoneinfo": print("$ cat /proc/zoneinfo\n" + m.zoneinfoText(), terminator: "")
                case "buddyinfo": print("$ cat /proc/buddyinfo\n" + m.buddyinfoText(), terminator: "")
                case "pagetypeinfo": print("$ cat /proc/pagetypeinfo\n" + m.pagetypeinfoText(), terminator: "")
                case "vmstat": print("$ cat /proc/vmstat\n" + m.vmstatText(), terminator: "")
                case "memblock": print("memblock (memblock=debug)\n" + m.memblockText(), terminator: "")
                case "hugepages": print("$ ls /sys/kernel/mm/hugepages (and HVO)\n" + m.hugepagesText(), terminator: "")
                default: break
                }
            }
        }
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the resolved machine configuration as JSON (a starting point for --config).")
    @OptionGroup var machine: MachineOptions

    func run() throws {
        try reportingErrors {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(try machine.resolve()), as: UTF8.self))
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a scenario: processes, syscalls and memory accesses on a simulated machine.",
        discussion: """
        Prints every `cat` view, then a summary (processes, faults, RSS, expectations, failed \
        syscalls, signals). With no FILE it runs the bundled example examples/fork-cow.mmsim. \
        Exit status: 0 when every expect passed, 1 when one failed, 2 for a scenario error.
        """)

    @Argument(help: "The scenario file (.mmsim). Default: the bundled fork-then-COW example.")
    var file: String?
    @Option(name: .long, help: "Output format: text or json.")
    var format: String = "text"
    @Flag(name: .long, help: "Print every syscall and access as it runs, strace style.")
    var trace = false
    @Flag(name: .customLong("check"), help: "Run the invariant checker after every statement, check every access against the page tables, record the lock order (slow).")
    var check = false

    func run() throws {
        guard format == "text" || format == "json" else {
            FileHandle.standardError.write(Data("mmsim: --format must be text or json\n".utf8))
            throw ExitCode(2)
        }
        let name: String
        let text: String
        if let path = file {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("\(path):1:1: error: cannot read the scenario file\n".utf8))
                throw ExitCode(2)
            }
            guard let s = String(data: data, encoding: .utf8) else {
                FileHandle.standardError.write(Data("\(path):1:1: error: the scenario file is not UTF-8 text\n".utf8))
                throw ExitCode(2)
            }
            name = path
            text = s
        } else {
            (name, text) = ScenarioExamples.defaultScenario(currentDirectory: FileManager.default.currentDirectoryPath) {
                FileManager.default.contents(atPath: $0).flatMap { String(data: $0, encoding: .utf8) }
            }
        }
        let report: ScenarioReport
        do {
            report = try ScenarioRunner.run(text, file: name, options: ScenarioOptions(trace: trace, checkInvariants: check))
        } catch let e as ScenarioError {
            FileHandle.standardError.write(Data("\(e)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("\(name):1:1: error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        print(format == "json" ? report.jsonText() : report.text(), terminator: "")
        if !report.passed {
            for e in report.expectations where !e.passed {
                FileHandle.standardError.write(Data("\(e.location): expectation failed: \(e.statement): expected \(e.expected), actual \(e.actual)\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

// MARK: mmsim random: seeded random workloads under the invariant checker, the failing one minimized.

struct RandomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random",
        abstract: "Run seeded random workloads with the invariant checker after every statement; minimize the first failure.",
        discussion: """
        Seeds SEED ... SEED+SEEDS-1 each generate a workload of STATEMENTS statements (several \
        processes, threads and CPUs; mmap of every kind, munmap, mprotect, madvise, mremap, brk, \
        mlock, fork trees, exit/wait, execve, accesses, files, move_pages, hwpoison, sysctls, swap, \
        memory cgroups) on a small x86-64 or arm64 machine, run as it is written with the checker \
        after every statement. The first failure (a broken invariant or a scenario error) stops the \
        run; its scenario is minimized by delta debugging and printed. With --isolate each seed runs \
        in a child process, so a crash (a trap: overflow, force-unwrap) is caught and minimized too. \
        Exit status: 0 no failure, 1 a failure (minimized scenario on stdout).
        """)

    @Option(name: .long, help: "The first seed.")
    var seed: UInt64 = 1
    @Option(name: .long, help: "How many seeds to run.")
    var seeds: Int = 100
    @Option(name: .long, help: "Statements per seed (after the machine line).")
    var statements: Int = 1000
    @Flag(name: .customLong("no-check"), help: "Do not run the invariant checker (measures the generator and the model alone).")
    var noCheck = false
    @Flag(name: .customLong("no-minimize"), help: "Print the failing scenario whole.")
    var noMinimize = false
    @Option(name: .long, help: "Switch on a deliberate bug (\(InjectedBug.allCases.map(\.rawValue).joined(separator: ", "))) to see the checker and the minimizer work.")
    var inject: String?
    @Flag(name: .long, help: "Print the scenario of --seed and exit (nothing is checked).")
    var print = false
    @Flag(name: .long, help: "Run each seed in a child process, so that a crash is caught and minimized.")
    var isolate = false
    @Option(name: .long, help: "Write the (minimized) failing scenario to this file.")
    var out: String?
    @Flag(name: .long, help: "Only the summary and failures, no per-seed lines.")
    var quiet = false
    @Option(name: .customLong("max-runs"), help: "At most this many replays when minimizing a failure.")
    var maxRuns: Int = 2000
    @Flag(name: .customLong("keep-going"), help: "Go on after a failure with the next seed; minimize the first failure of each kind.")
    var keepGoing = false
    @Flag(name: .long, help: .hidden)
    var stream = false

    func run() throws {
        var bug: InjectedBug?
        if let name = inject {
            guard let b = InjectedBug(rawValue: name) else {
                throw ValidationError("unknown --inject '\(name)'; known: \(InjectedBug.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            bug = b
        }
        guard seeds >= 1, statements >= 1 else { throw ValidationError("--seeds and --statements must be at least 1") }
        let options = ScenarioOptions(checkInvariants: !noCheck, injectBug: bug)
        if print {
            say(RandomWorkload.run(seed: seed, statements: statements, options: ScenarioOptions(injectBug: bug)).text, terminator: "")
            return
        }
        if stream {
            // The child of --isolate: every line goes out before it runs.
            let r = RandomWorkload.run(seed: seed, statements: statements, options: options) { line in
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
            if let f = r.failure {
                FileHandle.standardError.write(Data("\(f)\n".utf8))
                throw ExitCode(3)
            }
            return
        }
        let clock = ContinuousClock()
        let t0 = clock.now
        var total = 0
        var failures: [(UInt64, WorkloadFailure)] = []
        var kinds: [String] = []
        for s in seed..<(seed &+ UInt64(seeds)) {
            let (text, count, failure) = isolate ? try runChild(seed: s) : {
                let r = RandomWorkload.run(seed: s, statements: statements, options: options)
                return (r.text, r.statements, r.failure)
            }()
            total += count
            if !quiet {
                say("seed \(s): \(count) statements, \(failure.map { "FAILED [\($0.kind)]" } ?? "ok")  [\(text.split(separator: "\n").first ?? "")]")
            }
            if let f = failure {
                failures.append((s, f))
                if !keepGoing {
                    report(failure: f, seed: s, text: text, options: options)
                    summary(seeds: Int(s - seed) + 1, statements: total, violations: 1, since: t0, clock)
                    throw ExitCode(1)
                }
                if !kinds.contains(f.kind) {
                    kinds.append(f.kind)
                    report(failure: f, seed: s, text: text, options: options)
                }
            }
        }
        if !failures.isEmpty {
            say("failures by kind:")
            for k in kinds {
                let of = failures.filter { $0.1.kind == k }
                say("  \(k): \(of.count) (seeds \(of.prefix(20).map { String($0.0) }.joined(separator: " "))\(of.count > 20 ? " ..." : ""))")
            }
        }
        summary(seeds: seeds, statements: total, violations: failures.count, since: t0, clock)
        if !failures.isEmpty { throw ExitCode(1) }
    }

    func summary(seeds: Int, statements: Int, violations: Int, since t0: ContinuousClock.Instant, _ clock: ContinuousClock) {
        let secs = Double((clock.now - t0).components.attoseconds) / 1e18 + Double((clock.now - t0).components.seconds)
        let rate = secs > 0 ? Int(Double(statements) / secs) : 0
        say("mmsim random: \(seeds) seeds from \(seed), \(statements) statements\(noCheck ? "" : " with the checker after each"), \(violations) failures, \(String(format: "%.1f", secs)) s (\(rate) statements/s)")
    }

    func report(failure f: WorkloadFailure, seed s: UInt64, text: String, options: ScenarioOptions) {
        say("seed \(s) failed at line \(f.line): \(f)")
        var final = text
        if !noMinimize {
            let before = text.split(separator: "\n").count
            final = f.kind == "crash"
                ? RandomWorkload.minimize(text, failure: f, maxRuns: min(maxRuns, 400)) { crashOf($0) }
                : RandomWorkload.minimize(text, failure: f, options: options, maxRuns: maxRuns)
            let after = RandomWorkload.failure(of: final, options: options).map { "\($0)" } ?? (f.kind == "crash" ? "crash" : "no longer fails")
            say("minimized from \(before) to \(final.split(separator: "\n").count) lines; it fails with: \(after)")
        }
        say("--- scenario (seed \(s)) ---")
        say(final, terminator: "")
        say("---")
        if let out {
            _ = FileManager.default.createFile(atPath: out, contents: Data(final.utf8))
        }
    }

    /// Unbuffered output: a long soak's lines appear as they happen.
    func say(_ s: String, terminator: String = "\n") {
        FileHandle.standardOutput.write(Data((s + terminator).utf8))
    }

    var executable: String { Bundle.main.executablePath ?? CommandLine.arguments[0] }

    /// One seed in a child process: its lines, and a crash when it died of a signal.
    func runChild(seed s: UInt64) throws -> (String, Int, WorkloadFailure?) {
        var args = ["random", "--stream", "--seed", String(s), "--statements", String(statements)]
        if noCheck { args.append("--no-check") }
        if let inject { args += ["--inject", inject] }
        let (status, signalled, out, err) = try spawn(args)
        let lines = out.split(separator: "\n").count
        if signalled {
            return (out, lines, WorkloadFailure(kind: "crash", message: "the child died of signal \(status): \(err.suffix(400))", line: lines))
        }
        if status == 3 {
            // The same run in process gives the failure as a value.
            let r = RandomWorkload.run(seed: s, statements: statements, options: ScenarioOptions(checkInvariants: !noCheck, injectBug: inject.flatMap(InjectedBug.init(rawValue:))))
            return (r.text, r.statements, r.failure)
        }
        return (out, max(0, lines - 1), nil)
    }

    /// Whether replaying a text in a child (`mmsim run --check`) crashes.
    func crashOf(_ text: String) -> WorkloadFailure? {
        let path = NSTemporaryDirectory() + "mmsim-crash-\(ProcessInfo.processInfo.processIdentifier).mmsim"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        guard let (status, signalled, _, _) = try? spawn(["run", "--check", path]), signalled else { return nil }
        return WorkloadFailure(kind: "crash", message: "signal \(status)", line: 0)
    }

    func spawn(_ args: [String]) throws -> (Int32, Bool, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read stderr on another thread so that neither pipe fills up.
        nonisolated(unsafe) var errData = Data()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        return (p.terminationStatus, p.terminationReason == .uncaughtSignal, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}

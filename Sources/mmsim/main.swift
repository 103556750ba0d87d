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
        subcommands: [Boot.self, Run.self, Config.self],
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

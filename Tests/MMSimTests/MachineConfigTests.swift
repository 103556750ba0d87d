// The machine configuration: presets, JSON loading, and rejection of impossible values
// (naming the field and the allowed range).

import Foundation
import Testing
import MMSimTestSupport

@Suite struct MachineConfigTests {
    func load(_ json: String) throws -> MachineConfig {
        try MachineConfig.load(json: Data(json.utf8))
    }

    /// The error a JSON text or a configuration is rejected with.
    func rejection(_ body: () throws -> Void) -> ConfigError? {
        do {
            try body()
        } catch let e as ConfigError {
            return e
        } catch {
            Issue.record("expected a ConfigError, got \(error)")
            return nil
        }
        Issue.record("expected a ConfigError, got success")
        return nil
    }

    @Test func presets() throws {
        let r = MachineConfig.reference
        #expect(r.arch == .x86_64 && r.memory == 24 << 30 && r.cpus == 2)
        #expect(r.watermarkScaleFactor == 10 && r.minFreeKbytes == nil)
        #expect(r.lowmemReserveRatio == [256, 256, 32, 0])
        let s = MachineConfig.small
        #expect(s.arch == .x86_64 && s.memory == 256 << 20 && s.cpus == 1)
        let a = MachineConfig.arm64
        #expect(a.arch == .arm64 && a.memory == 16 << 30 && a.cpus == 8)
        let l = MachineConfig.large5Level
        #expect(l.arch == .x86_64_5level && l.memory == 1 << 40 && l.cpus == 64)
        #expect(MachineConfig.presets.map(\.name) == ["reference", "small", "arm64", "large-5level"])
        for (name, c) in MachineConfig.presets {
            #expect(try MachineConfig.preset(named: name) == c)
            try c.validate()
        }
        let e = rejection { _ = try MachineConfig.preset(named: "huge") }
        #expect(e?.field == "preset")
        #expect(e?.message.contains("reference") == true)
    }

    @Test func jsonMemorySizeStrings() throws {
        #expect(try load(#"{"memory": "4G"}"#).memory == 4 << 30)
        #expect(try load(#"{"memory": "512M"}"#).memory == 512 << 20)
        #expect(try load(#"{"memory": "1T"}"#).memory == 1 << 40)
        #expect(try load(#"{"memory": 1073741824}"#).memory == 1 << 30)
        let c = try load(#"{"preset": "small", "cpus": 4, "watermarkScaleFactor": 200, "transparentHugepage": "never"}"#)
        #expect(c.memory == 256 << 20 && c.cpus == 4 && c.watermarkScaleFactor == 200 && c.transparentHugepage == .never)
        // Fields not given come from the reference preset.
        let d = try load(#"{"arch": "arm64"}"#)
        #expect(d.arch == .arm64 && d.memory == MachineConfig.reference.memory)
        #expect(try load("{}") == MachineConfig.reference)
    }

    @Test func jsonRoundTrip() throws {
        for (_, c) in MachineConfig.presets {
            let data = try JSONEncoder().encode(c)
            #expect(try MachineConfig.load(json: data) == c)
        }
    }

    @Test(arguments: [
        (#"{"memory": "1M"}"#, "memory"),
        (#"{"memory": "1P"}"#, "memory"),
        (#"{"memory": "4X"}"#, "memory"),
        (#"{"memory": 4097}"#, "memory"),
        (#"{"cpus": 0}"#, "cpus"),
        (#"{"cpus": 257}"#, "cpus"),
        (#"{"watermarkScaleFactor": 0}"#, "watermarkScaleFactor"),
        (#"{"watermarkScaleFactor": 3001}"#, "watermarkScaleFactor"),
        (#"{"arch": "riscv64"}"#, "arch"),
        (#"{"preset": "nope"}"#, "preset"),
        (#"{"transparentHugepage": "sometimes"}"#, "transparentHugepage"),
        (#"{"lowmemReserveRatio": [256, 256]}"#, "lowmemReserveRatio"),
        (#"{"cpus": "two"}"#, "cpus"),
        (#"{"memory": "4G""#, "json"),
        (#"not json"#, "json"),
    ])
    func jsonRejections(_ json: String, _ field: String) throws {
        let e = rejection { _ = try load(json) }
        #expect(e?.field == field, "\(json) -> \(String(describing: e))")
    }

    /// A full TLB geometry in JSON whose L1 dTLB has 48 entries / 4 ways = 12 sets is rejected by name.
    @Test func jsonTLBSetsNotPowerOfTwo() throws {
        let data = try JSONEncoder().encode(MachineConfig.small)
        var obj = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        var tlb = try #require(obj["tlb"] as? [String: Any])
        tlb["l1d4K"] = ["entries": 48, "ways": 4]
        obj["tlb"] = tlb
        let bad = try JSONSerialization.data(withJSONObject: obj)
        let e = rejection { _ = try MachineConfig.load(json: bad) }
        #expect(e?.field == "tlb.l1d4K")
        #expect(e?.message.contains("power-of-two") == true)
    }

    /// Each out-of-range value names its field and the allowed range.
    @Test func rangesAreNamed() throws {
        func rejected(_ edit: (inout MachineConfig) -> Void) -> ConfigError? {
            var c = MachineConfig.reference
            edit(&c)
            return rejection { try c.validate() }
        }
        let tooSmall = rejected { $0.memory = 1 << 20 }
        #expect(tooSmall?.field == "memory")
        #expect(tooSmall?.message.contains("16 MiB") == true && tooSmall?.message.contains("8 TiB") == true)
        let tooBig = rejected { $0.memory = 1 << 50 }
        #expect(tooBig?.field == "memory")
        #expect(tooBig?.message.contains("1024 TiB") == true || tooBig?.message.contains("PiB") == true || tooBig?.message.contains("1125899906842624") == true)
        #expect(tooBig?.message.contains("8 TiB") == true)
        for n in [0, 257, -1] {
            let e = rejected { $0.cpus = n }
            #expect(e?.field == "cpus")
            #expect(e?.message.contains("1") == true && e?.message.contains("256") == true)
        }
        for w: UInt64 in [0, 3001] {
            let e = rejected { $0.watermarkScaleFactor = w }
            #expect(e?.field == "watermarkScaleFactor")
            #expect(e?.message.contains("3000") == true)
        }
        let sets = rejected { $0.tlb.l2 = TLBArrayGeometry(entries: 1536, ways: 16) }  // 96 sets
        #expect(sets?.field == "tlb.l2")
        #expect(sets?.message.contains("power-of-two") == true)
        let ways = rejected { $0.tlb.l1d4K = TLBArrayGeometry(entries: 64, ways: 0) }
        #expect(ways?.field.hasPrefix("tlb.l1d4K") == true)
        // Values inside the ranges are accepted, at both ends.
        #expect(rejectedNone { $0.memory = 20 << 20; $0.kernelImage.codeKB = 4; $0.kernelImage.rodataKB = 4; $0.kernelImage.rwdataKB = 4; $0.kernelImage.initKB = 4; $0.kernelImage.bssKB = 4; $0.swiotlbMB = 0 })
        #expect(rejectedNone { $0.memory = 8 << 40 })
        #expect(rejectedNone { $0.cpus = 1 })
        #expect(rejectedNone { $0.cpus = 256 })
        #expect(rejectedNone { $0.watermarkScaleFactor = 1 })
        #expect(rejectedNone { $0.watermarkScaleFactor = 3000 })
        #expect(rejectedNone { $0.tlb.l2 = TLBArrayGeometry(entries: 2048, ways: 16) })
    }

    func rejectedNone(_ edit: (inout MachineConfig) -> Void) -> Bool {
        var c = MachineConfig.reference
        edit(&c)
        do { try c.validate(); return true } catch { return false }
    }

    /// Machine(_:) validates: an impossible configuration is a ConfigError, never a crash.
    @Test func machineInitRejects() throws {
        var c = MachineConfig.small
        c.cpus = 0
        let e = rejection { _ = try Machine(c) }
        #expect(e?.field == "cpus")
        c = .small
        c.memory = 1 << 20
        #expect(rejection { _ = try Machine(c) }?.field == "memory")
    }
}

// mmsim-fuzz: the scenario parser as a libFuzzer target (docs/testing.md).
//
// Built with the fuzzer (the toolchain's libFuzzer supplies main() and calls
// LLVMFuzzerTestOneInput with each input):
//   swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -DMMSIM_LIBFUZZER --product mmsim-fuzz
//   .build/release/mmsim-fuzz -max_len=4096 corpus/ examples/
// Built without it (a plain `swift build`), it is a driver: it checks each FILE given, or
// runs `--mutate N [--seed S]` seeded mutations of the files, and exits 1 on a problem.

import Foundation
import MMSim

/// One input: a crash is the fuzzer's finding; a wrong error (no FILE:LINE:COL, a control
/// character) is made one by trapping. MMSIM_FUZZ_RUN=1 also runs small scenarios under the checker.
@_cdecl("LLVMFuzzerTestOneInput")
public func mmsimFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let problem = ScenarioFuzz.check(bytes, run: fuzzRun) {
        FileHandle.standardError.write(Data("mmsim-fuzz: \(problem)\n".utf8))
        fatalError("mmsim-fuzz: the parser's answer is wrong")
    }
    return 0
}

let fuzzRun = ProcessInfo.processInfo.environment["MMSIM_FUZZ_RUN"] == "1"

#if MMSIM_LIBFUZZER
// SwiftPM links an executable with main = <module>_main, so libFuzzer's own main() is not
// used: this entry point hands the command line to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("mmsim_fuzz_main")
func mmsimFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { mmsimFuzzTestOneInput($0, $1) }
}
#else
@main
struct FuzzDriver {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        var mutations = 0
        var seed: UInt64 = 1
        if let i = args.firstIndex(of: "--mutate"), i + 1 < args.count, let n = Int(args[i + 1]) {
            mutations = n
            args.removeSubrange(i...(i + 1))
        }
        if let i = args.firstIndex(of: "--seed"), i + 1 < args.count, let s = UInt64(args[i + 1]) {
            seed = s
            args.removeSubrange(i...(i + 1))
        }
        guard !args.isEmpty else {
            FileHandle.standardError.write(Data("usage: mmsim-fuzz [--mutate N] [--seed S] FILE...\n".utf8))
            exit(2)
        }
        var inputs: [[UInt8]] = []
        for path in args {
            guard let d = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("mmsim-fuzz: cannot read \(path)\n".utf8))
                exit(2)
            }
            inputs.append([UInt8](d))
        }
        var problems = 0
        for (path, input) in zip(args, inputs) {
            if let p = ScenarioFuzz.check(input, run: fuzzRun) {
                print("\(path): \(p)")
                problems += 1
            }
        }
        var m = ScenarioMutator(seed: seed, corpus: inputs)
        for i in 0..<mutations {
            let input = m.mutate(inputs[i % inputs.count])
            if let p = ScenarioFuzz.check(input, run: fuzzRun) {
                print("mutation \(i) (seed \(seed)): \(p)\n\(String(decoding: input, as: UTF8.self).debugDescription)")
                problems += 1
            }
        }
        print("mmsim-fuzz: \(inputs.count) files, \(mutations) mutations (seed \(seed)), \(problems) problems")
        exit(problems == 0 ? 0 : 1)
    }
}
#endif

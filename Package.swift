// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "mmsim",
    products: [
        .library(name: "MMSim", targets: ["MMSim"]),
        .executable(name: "mmsim", targets: ["mmsim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The model: hardware (frames, page tables, MMU, TLBs) and the kernel's mm/.
        .target(
            name: "MMSim",
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // `mmsim`: the thin command-line layer.
        .executableTarget(
            name: "mmsim",
            dependencies: ["MMSim", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Release-mode benchmarks guarding the budgets the issues name.
        .executableTarget(
            name: "mmsim-bench",
            dependencies: ["MMSim"],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // `mmsim-fuzz`: the scenario parser as a libFuzzer target, or a plain driver (docs/testing.md).
        .executableTarget(name: "mmsim-fuzz", dependencies: ["MMSim"]),
        // Shared test support: small machines, seeded generators, checker hooks.
        .target(name: "MMSimTestSupport", dependencies: ["MMSim"]),
        .testTarget(name: "MMSimTests", dependencies: ["MMSim", "MMSimTestSupport"]),
    ]
)

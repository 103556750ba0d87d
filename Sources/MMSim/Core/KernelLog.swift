// kernel/printk: one kernel log (dmesg) that every part of the model writes to.

/// The kernel log, shared by the machine and its allocator, read as a collection of lines.
public final class KernelLog: RandomAccessCollection {
    public private(set) var lines: [String]
    public init(_ lines: [String] = []) { self.lines = lines }
    /// printk()
    public func append(_ line: String) { lines.append(line) }
    public var startIndex: Int { lines.startIndex }
    public var endIndex: Int { lines.endIndex }
    public subscript(i: Int) -> String { lines[i] }
}

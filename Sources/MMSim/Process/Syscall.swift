// include/uapi/asm-generic/errno-base.h, include/uapi/asm-generic/mman-common.h: the syscall vocabulary.

/// The errno values the memory syscalls return, with their names.
public enum Errno: Int32, Error, Sendable, CaseIterable, CustomStringConvertible {
    case EPERM = 1, ENOENT = 2, EINTR = 4, EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14,
         EBUSY = 16, EEXIST = 17, ENODEV = 19, EINVAL = 22, ENFILE = 23, EFBIG = 27, ENOSYS = 38, EOVERFLOW = 75,
         ENOTSUPP = 524
    public var description: String { name }
    /// The symbolic name, e.g. "ENOMEM".
    public var name: String {
        switch self {
        case .EPERM: "EPERM"
        case .ENOENT: "ENOENT"
        case .EINTR: "EINTR"
        case .EBADF: "EBADF"
        case .ECHILD: "ECHILD"
        case .EAGAIN: "EAGAIN"
        case .ENOMEM: "ENOMEM"
        case .EACCES: "EACCES"
        case .EFAULT: "EFAULT"
        case .EBUSY: "EBUSY"
        case .EEXIST: "EEXIST"
        case .ENODEV: "ENODEV"
        case .EINVAL: "EINVAL"
        case .ENFILE: "ENFILE"
        case .EFBIG: "EFBIG"
        case .ENOSYS: "ENOSYS"
        case .EOVERFLOW: "EOVERFLOW"
        case .ENOTSUPP: "ENOTSUPP"
        }
    }
    public init?(name: String) {
        guard let e = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = e
    }
}

/// PROT_* bits.
public struct Prot: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = Prot(rawValue: 1)
    public static let write = Prot(rawValue: 2)
    public static let exec = Prot(rawValue: 4)
    public static let none: Prot = []
    public static let rw: Prot = [.read, .write]
}

/// MAP_* flags.
public struct MapFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let shared = MapFlags(rawValue: 0x01)
    public static let `private` = MapFlags(rawValue: 0x02)
    public static let fixed = MapFlags(rawValue: 0x10)
    public static let anonymous = MapFlags(rawValue: 0x20)
    public static let growsdown = MapFlags(rawValue: 0x100)
    public static let locked = MapFlags(rawValue: 0x2000)
    public static let noreserve = MapFlags(rawValue: 0x4000)
    public static let populate = MapFlags(rawValue: 0x8000)
    public static let stack = MapFlags(rawValue: 0x20000)
    public static let hugetlb = MapFlags(rawValue: 0x40000)
    public static let fixedNoreplace = MapFlags(rawValue: 0x100000)
}

/// madvise() advice values (MADV_*).
public enum Advice: Int32, Sendable, CaseIterable {
    case normal = 0, random = 1, sequential = 2, willneed = 3, dontneed = 4, free = 8,
         dontfork = 10, dofork = 11, hugepage = 14, nohugepage = 15, cold = 20, pageout = 21,
         populateRead = 22, populateWrite = 23
}

/// mremap() flags.
public struct MremapFlags: OptionSet, Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let maymove = MremapFlags(rawValue: 1)
    public static let fixed = MremapFlags(rawValue: 2)
    public static let dontunmap = MremapFlags(rawValue: 4)
}

/// The result of a memory syscall: a value or the errno the kernel returns.
public typealias SyscallResult<T> = Result<T, Errno>

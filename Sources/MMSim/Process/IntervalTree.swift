// mm/interval_tree.c, include/linux/interval_tree_generic.h: the augmented trees of
// [vm_pgoff, vm_pgoff + pages - 1] that anon_vma (its chains) and address_space->i_mmap
// (its VMAs) keep, so that a walk finds the VMAs covering an index in O(log n + k).

/// Many interval trees in one flat node pool (index handles, a free list, no classes).
/// Each node holds an interval [start, last], the maximum `last` of its subtree (the
/// augmentation the kernel keeps in `rb_subtree_last`), and a payload (a VMA id).
/// Balanced as a treap with priorities from a seeded generator (the kernel uses a
/// red-black tree; the walk order, by start, is the same), so runs are deterministic.
struct IntervalForest {
    struct Node {
        var start: UInt64
        var last: UInt64
        var maxLast: UInt64
        var left: Int32
        var right: Int32
        var priority: UInt64
        var payload: UInt32
    }

    private(set) var nodes: [Node] = []
    private var freeList: Int32 = -1
    private var rng = SeededGenerator(seed: 0x1D7E_57A1_7EE5_0001)

    /// A new node for [start, last] carrying `payload` (not in any tree yet).
    mutating func alloc(start: UInt64, last: UInt64, payload: UInt32) -> Int32 {
        let n = Node(start: start, last: last, maxLast: last, left: -1, right: -1, priority: rng.next(), payload: payload)
        if freeList >= 0 {
            let i = freeList
            freeList = nodes[Int(i)].left
            nodes[Int(i)] = n
            return i
        }
        nodes.append(n)
        return Int32(nodes.count - 1)
    }

    mutating func free(_ i: Int32) {
        nodes[Int(i)].left = freeList
        freeList = i
    }

    func interval(_ i: Int32) -> (start: UInt64, last: UInt64) { (nodes[Int(i)].start, nodes[Int(i)].last) }

    /// Gives node `i` (not in a tree) a new interval.
    mutating func setInterval(_ i: Int32, start: UInt64, last: UInt64) {
        nodes[Int(i)].start = start
        nodes[Int(i)].last = last
        nodes[Int(i)].maxLast = last
    }

    @inline(__always) private func less(_ a: Int32, _ b: Int32) -> Bool {
        let x = nodes[Int(a)], y = nodes[Int(b)]
        if x.start != y.start { return x.start < y.start }
        if x.last != y.last { return x.last < y.last }
        return a < b
    }

    @inline(__always) private mutating func update(_ t: Int32) {
        var m = nodes[Int(t)].last
        let l = nodes[Int(t)].left, r = nodes[Int(t)].right
        if l >= 0 { m = max(m, nodes[Int(l)].maxLast) }
        if r >= 0 { m = max(m, nodes[Int(r)].maxLast) }
        nodes[Int(t)].maxLast = m
    }

    /// interval_tree_insert(): `n` joins the tree rooted at `root`.
    mutating func insert(_ root: inout Int32, _ n: Int32) {
        nodes[Int(n)].left = -1
        nodes[Int(n)].right = -1
        nodes[Int(n)].maxLast = nodes[Int(n)].last
        root = insert(at: root, n)
    }

    private mutating func insert(at t: Int32, _ n: Int32) -> Int32 {
        guard t >= 0 else { return n }
        if less(n, t) {
            nodes[Int(t)].left = insert(at: nodes[Int(t)].left, n)
            let l = nodes[Int(t)].left
            if nodes[Int(l)].priority > nodes[Int(t)].priority {
                // rotate right
                nodes[Int(t)].left = nodes[Int(l)].right
                nodes[Int(l)].right = t
                update(t)
                update(l)
                return l
            }
        } else {
            nodes[Int(t)].right = insert(at: nodes[Int(t)].right, n)
            let r = nodes[Int(t)].right
            if nodes[Int(r)].priority > nodes[Int(t)].priority {
                // rotate left
                nodes[Int(t)].right = nodes[Int(r)].left
                nodes[Int(r)].left = t
                update(t)
                update(r)
                return r
            }
        }
        update(t)
        return t
    }

    /// interval_tree_remove(): `n` leaves the tree rooted at `root`.
    mutating func remove(_ root: inout Int32, _ n: Int32) {
        root = remove(at: root, n)
    }

    private mutating func remove(at t: Int32, _ n: Int32) -> Int32 {
        guard t >= 0 else { return -1 }
        if t == n { return join(nodes[Int(t)].left, nodes[Int(t)].right) }
        if less(n, t) {
            nodes[Int(t)].left = remove(at: nodes[Int(t)].left, n)
        } else {
            nodes[Int(t)].right = remove(at: nodes[Int(t)].right, n)
        }
        update(t)
        return t
    }

    private mutating func join(_ a: Int32, _ b: Int32) -> Int32 {
        if a < 0 { return b }
        if b < 0 { return a }
        if nodes[Int(a)].priority > nodes[Int(b)].priority {
            nodes[Int(a)].right = join(nodes[Int(a)].right, b)
            update(a)
            return a
        }
        nodes[Int(b)].left = join(a, nodes[Int(b)].left)
        update(b)
        return b
    }

    /// interval_tree_iter_first()/iter_next(): every node overlapping [qStart, qLast], by
    /// start. `body` gets the node and returns false to stop; returns false if stopped.
    /// Iterative, with its stack on the host stack: nothing is allocated or retained per node.
    @discardableResult
    func forEachOverlap(_ root: Int32, _ qStart: UInt64, _ qLast: UInt64, _ body: (Int32) -> Bool) -> Bool {
        guard root >= 0 else { return true }
        return nodes.withUnsafeBufferPointer { nb in
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: 256) { stack in
                var sp = 0
                var t = root
                while true {
                    // Go left while the subtree can hold an interval reaching qStart.
                    while t >= 0 && nb[Int(t)].maxLast >= qStart {
                        precondition(sp < 256, "interval tree deeper than 256")
                        stack[sp] = t
                        sp += 1
                        t = nb[Int(t)].left
                    }
                    if sp == 0 { return true }
                    sp -= 1
                    let n = stack[sp]
                    // In order: every later node starts at or after this one.
                    if nb[Int(n)].start > qLast { return true }
                    if nb[Int(n)].last >= qStart && !body(n) { return false }
                    t = nb[Int(n)].right
                }
            }
        }
    }

    /// Number of nodes in the tree (for checks).
    func count(_ t: Int32) -> Int {
        t < 0 ? 0 : 1 + count(nodes[Int(t)].left) + count(nodes[Int(t)].right)
    }
}

//! The RFC 9162 Merkle tree over evidence entries: hashing, roots, inclusion and consistency
//! proofs, and their verification.
//!
//! Leaf hash `SHA-256(0x00 || entry)`, node hash `SHA-256(0x01 || left || right)`; a tree of `n`
//! leaves splits at the largest power of two below `n` (RFC 9162 §2.1.1). Proofs are produced
//! from *perfect subtrees*: the subtree at `level` number `index` covers leaves
//! `index·2^level .. (index+1)·2^level`. Those hashes never change once the last of their leaves
//! is appended, so a store keeps them (two per leaf, amortized) and any root or proof needs only
//! O(log n) of them. Where they live is the caller's business ([`Nodes`]); [`MemoryTree`] keeps
//! them in memory for verifiers and tests.
//!
//! Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 literally and never trusts a size or an
//! index it was given: every mismatch is `false`, never a panic.

use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// Why a hash could not be produced.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The store has no hash for a perfect subtree the tree should have.
    #[error("the tree has no node at level {level}, index {index}")]
    Missing { level: u32, index: u64 },
    /// A proof was asked for an index or size the tree does not have.
    #[error("{0}")]
    OutOfRange(String),
    /// The store the hashes are read from failed.
    #[error("the tree store failed")]
    Store(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

/// The hash of a leaf holding `entry`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Where perfect-subtree hashes come from.
pub trait Nodes {
    /// The hash of the perfect subtree of `2^level` leaves starting at leaf `index << level`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, TreeError>;
}

/// The place of the perfect subtree at `level`, number `index`, in a post-order walk of the
/// tree (left half, right half, then the subtree's own root; leaves are counted too), from 0.
/// The `m = index·2^level` leaves before it span `2m − popcount(m)` perfect subtrees, and the
/// subtree itself has `2^(level+1) − 1` nodes, its root last. Appending leaf `i` completes
/// exactly the subtrees numbered next, in order, so a store keyed by this number only ever
/// appends to its end. `None` beyond 2^62 leaves.
pub fn postorder(level: u32, index: u64) -> Option<u64> {
    if level >= 63 {
        return None;
    }
    let m = u128::from(index) << level;
    let before = 2 * m - u128::from(m.count_ones());
    let own = (1u128 << (level + 1)) - 2;
    u64::try_from(before + own).ok()
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The hash of leaves `lo..hi` (`lo < hi`), where `lo` is a multiple of the largest power of two
/// not above `hi - lo`: every range the RFC's recursion produces is.
fn range_hash(nodes: &impl Nodes, lo: u64, hi: u64) -> Result<Hash, TreeError> {
    let n = hi - lo;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return nodes.node(level, lo >> level);
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(nodes, lo, lo + k)?,
        &range_hash(nodes, lo + k, hi)?,
    ))
}

/// The root of the first `size` leaves.
pub fn root(nodes: &impl Nodes, size: u64) -> Result<Hash, TreeError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(nodes, 0, size)
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 9162
/// §2.1.3.1), lowest sibling first.
pub fn inclusion_proof(nodes: &impl Nodes, index: u64, size: u64) -> Result<Vec<Hash>, TreeError> {
    if index >= size {
        return Err(TreeError::OutOfRange(format!(
            "leaf {index} is not in a tree of {size}"
        )));
    }
    let mut proof = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    // Walk down from the root, noting each sibling; the proof lists them bottom up.
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            proof.push(range_hash(nodes, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(range_hash(nodes, lo, lo + k)?);
            lo += k;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The consistency proof between the trees of the first `old` and `new` leaves (RFC 9162
/// §2.1.4.1). Empty when the sizes are equal.
pub fn consistency_proof(nodes: &impl Nodes, old: u64, new: u64) -> Result<Vec<Hash>, TreeError> {
    if old == 0 || old > new {
        return Err(TreeError::OutOfRange(format!(
            "no consistency proof from size {old} to size {new}"
        )));
    }
    let mut proof = Vec::new();
    let (mut m, mut lo, mut hi, mut whole) = (old, 0u64, new, true);
    // SUBPROOF(m, D[lo:hi], whole), unrolled; the proof lists hashes bottom up.
    while m != hi - lo {
        let k = split(hi - lo);
        if m <= k {
            proof.push(range_hash(nodes, lo + k, hi)?);
            hi = lo + k;
        } else {
            proof.push(range_hash(nodes, lo, lo + k)?);
            m -= k;
            lo += k;
            whole = false;
        }
    }
    if !whole {
        proof.push(range_hash(nodes, lo, hi)?);
    }
    proof.reverse();
    Ok(proof)
}

/// Whether `proof` shows that `leaf` is leaf `index` of the tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Whether `proof` shows the tree of `old` leaves with `old_root` is a prefix of the tree of
/// `new` leaves with `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 || old > new {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

/// The perfect subtrees completed by appending leaf number `index` with hash `leaf`: the leaf
/// itself at level 0, then each parent whose right half it completes. `nodes` must already hold
/// every perfect subtree of the leaves before it.
pub fn completed_by(
    nodes: &impl Nodes,
    index: u64,
    leaf: Hash,
) -> Result<Vec<(u32, u64, Hash)>, TreeError> {
    let mut out = vec![(0, index, leaf)];
    let (mut level, mut i, mut hash) = (0u32, index, leaf);
    while i & 1 == 1 {
        let left = nodes.node(level, i - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        i >>= 1;
        out.push((level, i, hash));
    }
    Ok(out)
}

/// The right edge of a tree: the hashes of the perfect subtrees that cover its leaves, largest
/// first (one per set bit of the size). Enough to append leaves and compute the root at every
/// size from here on, in O(log n) memory: what a verifier streaming a log needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (level, hash), levels strictly decreasing.
    edge: Vec<(u32, Hash)>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of a tree of `size` leaves given its subtree hashes, largest first. Fails
    /// unless there is exactly one hash per set bit of `size`.
    pub fn from_hashes(size: u64, hashes: &[Hash]) -> Option<Self> {
        let levels: Vec<u32> = (0..64).rev().filter(|b| size >> b & 1 == 1).collect();
        (levels.len() == hashes.len()).then(|| Self {
            size,
            edge: levels.into_iter().zip(hashes.iter().copied()).collect(),
        })
    }

    /// Reads the frontier of the first `size` leaves from stored subtrees.
    pub fn read(nodes: &impl Nodes, size: u64) -> Result<Self, TreeError> {
        let mut edge = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev().filter(|b| size >> b & 1 == 1) {
            edge.push((level, nodes.node(level, start >> level)?));
            start += 1 << level;
        }
        Ok(Self { size, edge })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree hashes, largest first.
    pub fn hashes(&self) -> Vec<Hash> {
        self.edge.iter().map(|(_, h)| *h).collect()
    }

    /// Appends a leaf by its hash.
    pub fn push(&mut self, leaf: Hash) {
        self.append(leaf);
    }

    /// Appends a leaf by its hash and returns the perfect subtrees it completes, as
    /// [`completed_by`] would read them from stored nodes: (level, index, hash), the leaf first.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let index = self.size;
        let mut completed = vec![(0, index, leaf)];
        let mut node = (0u32, leaf);
        while let Some(&(level, left)) = self.edge.last() {
            if level != node.0 {
                break;
            }
            self.edge.pop();
            node = (level + 1, node_hash(&left, &node.1));
            completed.push((node.0, index >> node.0, node.1));
        }
        self.edge.push(node);
        self.size += 1;
        completed
    }

    /// The root of the leaves covered.
    pub fn root(&self) -> Hash {
        let mut hashes = self.edge.iter().rev().map(|(_, h)| *h);
        match hashes.next() {
            None => empty_root(),
            Some(last) => hashes.fold(last, |acc, left| node_hash(&left, &acc)),
        }
    }
}

/// A tree kept in memory: one vector of perfect-subtree hashes per level.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf by its hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let (mut level, mut hash) = (0usize, leaf);
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                break;
            };
            row.push(hash);
            let n = row.len();
            if n % 2 == 1 {
                break;
            }
            let (Some(left), Some(right)) = (row.get(n - 2), row.get(n - 1)) else {
                break;
            };
            hash = node_hash(left, right);
            level += 1;
        }
        index
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TreeError> {
        root(self, size)
    }
}

impl Nodes for MemoryTree {
    fn node(&self, level: u32, index: u64) -> Result<Hash, TreeError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(level as usize)?.get(i))
            .copied()
            .ok_or(TreeError::Missing { level, index })
    }
}

#[cfg(test)]
mod frontier_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_frontier_gives_every_root_and_resumes_from_stored_nodes() {
        let mut mem = MemoryTree::new();
        let mut edge = Frontier::new();
        assert_eq!(edge.root(), empty_root());
        for i in 0..300u32 {
            let leaf = leaf_hash(&i.to_be_bytes());
            mem.push(leaf);
            edge.push(leaf);
            let n = u64::from(i) + 1;
            assert_eq!(edge.root(), mem.root(n).unwrap(), "size {n}");
            let read = Frontier::read(&mem, n).unwrap();
            assert_eq!(read, edge);
            assert_eq!(Frontier::from_hashes(n, &read.hashes()), Some(read));
        }
        assert_eq!(Frontier::from_hashes(5, &[empty_root()]), None);
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::needless_range_loop
    )]
    use super::*;

    // A straightforward transcription of RFC 9162 §2.1 over a slice of leaf hashes: the
    // reference the stored-node implementation must match. Ranges are (start, end) indices
    // into the slice; subtree hashes are memoized so every size up to 300 stays quick.
    struct Reference<'a> {
        d: &'a [Hash],
        memo: std::cell::RefCell<std::collections::HashMap<(usize, usize), Hash>>,
    }

    impl<'a> Reference<'a> {
        fn new(d: &'a [Hash]) -> Self {
            Self {
                d,
                memo: Default::default(),
            }
        }

        fn mth(&self, lo: usize, hi: usize) -> Hash {
            if let Some(h) = self.memo.borrow().get(&(lo, hi)) {
                return *h;
            }
            let h = match hi - lo {
                0 => empty_root(),
                1 => self.d[lo],
                n => {
                    let k = split(n as u64) as usize;
                    node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
                }
            };
            self.memo.borrow_mut().insert((lo, hi), h);
            h
        }

        fn path(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
            let n = hi - lo;
            if n == 1 {
                return vec![];
            }
            let k = split(n as u64) as usize;
            if m < k {
                let mut p = self.path(m, lo, lo + k);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.path(m - k, lo + k, hi);
                p.push(self.mth(lo, lo + k));
                p
            }
        }

        fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
            let n = hi - lo;
            if m == n {
                return if b { vec![] } else { vec![self.mth(lo, hi)] };
            }
            let k = split(n as u64) as usize;
            if m <= k {
                let mut p = self.subproof(m, lo, lo + k, b);
                p.push(self.mth(lo + k, hi));
                p
            } else {
                let mut p = self.subproof(m - k, lo + k, hi, false);
                p.push(self.mth(lo, lo + k));
                p
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    const MAX: usize = 300;

    fn tree() -> (MemoryTree, Vec<Hash>) {
        let d = leaves(MAX);
        let mut t = MemoryTree::new();
        for (i, h) in d.iter().enumerate() {
            assert_eq!(t.push(*h), i as u64);
        }
        (t, d)
    }

    #[test]
    fn hashes_follow_rfc_9162() {
        // RFC 6962/9162 test vectors: the empty tree, and a leaf of no bytes.
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn roots_match_the_reference_for_every_size() {
        let (t, d) = tree();
        let r = Reference::new(&d);
        for n in 0..=MAX {
            assert_eq!(t.root(n as u64).unwrap(), r.mth(0, n), "size {n}");
        }
    }

    #[test]
    fn every_inclusion_proof_matches_and_verifies() {
        let (t, d) = tree();
        let r = Reference::new(&d);
        for n in 1..=MAX {
            let root = r.mth(0, n);
            for m in 0..n {
                let proof = inclusion_proof(&t, m as u64, n as u64).unwrap();
                assert_eq!(proof, r.path(m, 0, n), "index {m} of {n}");
                assert!(verify_inclusion(m as u64, n as u64, &d[m], &proof, &root));
                // A wrong index, a wrong size, a wrong leaf and a cut proof all fail.
                if m + 1 < n {
                    assert!(!verify_inclusion(
                        m as u64 + 1,
                        n as u64,
                        &d[m],
                        &proof,
                        &root
                    ));
                }
                // (A size comes with its own root: a checkpoint signs the pair.)
                if n < MAX {
                    let bigger = r.mth(0, n + 1);
                    assert!(!verify_inclusion(
                        m as u64,
                        n as u64 + 1,
                        &d[m],
                        &proof,
                        &bigger
                    ));
                }
                let other = leaf_hash(b"not this one");
                assert!(!verify_inclusion(m as u64, n as u64, &other, &proof, &root));
                if let Some((_, shorter)) = proof.split_last() {
                    assert!(!verify_inclusion(m as u64, n as u64, &d[m], shorter, &root));
                }
            }
            assert!(inclusion_proof(&t, n as u64, n as u64).is_err());
        }
    }

    #[test]
    fn every_consistency_proof_matches_and_verifies() {
        let (t, d) = tree();
        let r = Reference::new(&d);
        let roots: Vec<Hash> = (0..=MAX).map(|n| r.mth(0, n)).collect();
        for new in 1..=MAX {
            for old in 1..=new {
                let proof = consistency_proof(&t, old as u64, new as u64).unwrap();
                assert_eq!(proof, r.subproof(old, 0, new, true), "{old} -> {new}");
                let (ro, rn) = (&roots[old], &roots[new]);
                assert!(verify_consistency(old as u64, new as u64, ro, rn, &proof));
                if old < new {
                    // Wrong sizes or roots fail.
                    assert!(!verify_consistency(old as u64, new as u64, rn, rn, &proof));
                    assert!(!verify_consistency(old as u64, new as u64, ro, ro, &proof));
                    // A size comes with its own root: a checkpoint signs the pair.
                    if old + 1 < new {
                        let (bumped, rb) = (old as u64 + 1, &roots[old + 1]);
                        assert!(!verify_consistency(bumped, new as u64, rb, rn, &proof));
                    }
                    if new < MAX {
                        let (bumped, rb) = (new as u64 + 1, &roots[new + 1]);
                        assert!(!verify_consistency(old as u64, bumped, ro, rb, &proof));
                    }
                }
            }
        }
        assert!(consistency_proof(&t, 0, 5).is_err());
        assert!(consistency_proof(&t, 6, 5).is_err());
    }

    /// Numbers every perfect subtree of a tree of `2^height` leaves in post-order, by walking it.
    fn walk(level: u32, index: u64, next: &mut u64, out: &mut Vec<(u32, u64, u64)>) {
        if level > 0 {
            walk(level - 1, 2 * index, next, out);
            walk(level - 1, 2 * index + 1, next, out);
        }
        out.push((level, index, *next));
        *next += 1;
    }

    #[test]
    fn postorder_numbers_subtrees_as_a_walk_does_and_appends_only_at_the_end() {
        let mut walked = Vec::new();
        walk(9, 0, &mut 0, &mut walked);
        for &(level, index, n) in &walked {
            assert_eq!(
                postorder(level, index),
                Some(n),
                "level {level} index {index}"
            );
        }
        // Growing a tree leaf by leaf completes subtrees numbered 0, 1, 2, ... in order.
        let mut f = Frontier::new();
        let mut next = 0u64;
        for h in leaves(600) {
            for (level, index, _) in f.append(h) {
                assert_eq!(postorder(level, index), Some(next));
                next += 1;
            }
        }
        assert_eq!(postorder(62, 0), Some((1u64 << 63) - 2));
        assert_eq!(postorder(63, 0), None);
        assert_eq!(postorder(0, u64::MAX), None);
    }

    #[test]
    fn appending_completes_the_right_subtrees() {
        let d = leaves(70);
        let mut t = MemoryTree::new();
        for (i, h) in d.iter().enumerate() {
            let done = completed_by(&t, i as u64, *h).unwrap();
            t.push(*h);
            for (level, index, hash) in done {
                assert_eq!(t.node(level, index).unwrap(), hash);
            }
        }
        assert!(matches!(
            completed_by(&t, 71, d[0]),
            Err(TreeError::Missing {
                level: 0,
                index: 70
            })
        ));
    }
}

//! `arictl bench proof`: inclusion and consistency proof generation from a log of N entries
//! built for the run in a scratch database, against reading, warm, exactly the tree nodes each
//! proof read. Every proof is checked against the root; one that does not verify fails the run.

use super::daemon::scratch;
use super::{BenchError, ratio};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Builds a log of `entries` entries in a scratch directory (removed afterwards) and times
/// `samples` proofs of each kind; `progress` hears what is being built.
pub fn run(entries: u64, samples: u64, progress: fn(&str)) -> Result<ProofReport, BenchError> {
    let tmp = scratch("proof")?;
    progress(&format!(
        "building a log of {entries} entries in {} ...",
        tmp.display()
    ));
    let report = proofs(&tmp, entries.max(1), samples.max(1));
    let _ = std::fs::remove_dir_all(&tmp);
    report
}

#[derive(Debug, Clone, Serialize)]
pub struct ProofReport {
    /// Entries in the log.
    pub entries: u64,
    /// Appends per second while building it (one transaction per 10 000, no signing).
    pub build_entries_per_s: f64,
    /// Inclusion proofs generated.
    pub proofs: u64,
    /// Inclusion proofs per second, one thread (samples over their total time).
    pub inclusion_ops_per_s: f64,
    /// Median time to generate one inclusion proof from SQLite, microseconds.
    pub inclusion_p50_us: f64,
    /// 99th percentile, microseconds.
    pub inclusion_p99_us: f64,
    /// Tree nodes read per inclusion proof, on average.
    pub inclusion_node_reads: f64,
    /// Baseline: the same node rows read again per operation, per second.
    pub inclusion_baseline_ops_per_s: f64,
    /// Baseline median, microseconds.
    pub inclusion_baseline_p50_us: f64,
    /// Baseline p99, microseconds.
    pub inclusion_baseline_p99_us: f64,
    /// `inclusion_ops_per_s / inclusion_baseline_ops_per_s`.
    pub inclusion_ratio: f64,
    /// Consistency proofs per second, one thread.
    pub consistency_ops_per_s: f64,
    /// Median time for a consistency proof between two random sizes, microseconds.
    pub consistency_p50_us: f64,
    /// 99th percentile, microseconds.
    pub consistency_p99_us: f64,
    /// Tree nodes read per consistency proof, on average.
    pub consistency_node_reads: f64,
    /// Baseline: the same node rows read again per operation, per second.
    pub consistency_baseline_ops_per_s: f64,
    /// Baseline median, microseconds.
    pub consistency_baseline_p50_us: f64,
    /// Baseline p99, microseconds.
    pub consistency_baseline_p99_us: f64,
    /// `consistency_ops_per_s / consistency_baseline_ops_per_s`.
    pub consistency_ratio: f64,
    /// Hashes in a proof at this size (inclusion, at most).
    pub proof_hashes: usize,
    /// Database bytes per entry.
    pub bytes_per_entry: f64,
}

impl ProofReport {
    /// The human-readable report.
    pub fn text(&self) -> String {
        format!(
            "log of {n} entries built at {build:.0} entries/s, {bytes:.0} bytes per entry\n\
             inclusion proof    {iops:>8.0} ops/s  p50 {ip50:>7.1} µs  p99 {ip99:>7.1} µs  ({proofs} proofs, up to {hashes} hashes, {ir:.1} node reads each)\n\
             same nodes again   {ibops:>8.0} ops/s  p50 {ibp50:>7.1} µs  p99 {ibp99:>7.1} µs  ratio {iratio:.2}\n\
             consistency proof  {cops:>8.0} ops/s  p50 {cp50:>7.1} µs  p99 {cp99:>7.1} µs  ({cr:.1} node reads each)\n\
             same nodes again   {cbops:>8.0} ops/s  p50 {cbp50:>7.1} µs  p99 {cbp99:>7.1} µs  ratio {cratio:.2}\n",
            n = self.entries,
            build = self.build_entries_per_s,
            bytes = self.bytes_per_entry,
            iops = self.inclusion_ops_per_s,
            ip50 = self.inclusion_p50_us,
            ip99 = self.inclusion_p99_us,
            proofs = self.proofs,
            hashes = self.proof_hashes,
            ir = self.inclusion_node_reads,
            ibops = self.inclusion_baseline_ops_per_s,
            ibp50 = self.inclusion_baseline_p50_us,
            ibp99 = self.inclusion_baseline_p99_us,
            iratio = self.inclusion_ratio,
            cops = self.consistency_ops_per_s,
            cp50 = self.consistency_p50_us,
            cp99 = self.consistency_p99_us,
            cr = self.consistency_node_reads,
            cbops = self.consistency_baseline_ops_per_s,
            cbp50 = self.consistency_baseline_p50_us,
            cbp99 = self.consistency_baseline_p99_us,
            cratio = self.consistency_ratio,
        )
    }
}

/// A node source that records which nodes it read.
struct Counted<'n, N> {
    inner: &'n N,
    read: std::cell::RefCell<Vec<(u32, u64)>>,
}

impl<N: crate::merkle::Nodes> crate::merkle::Nodes for Counted<'_, N> {
    fn node(
        &self,
        level: u32,
        index: u64,
    ) -> Result<crate::merkle::Hash, crate::merkle::TreeError> {
        self.read.borrow_mut().push((level, index));
        self.inner.node(level, index)
    }
}

/// Latencies of one side of `bench proof`, with the mean rate over their sum.
#[derive(Default)]
struct Samples {
    us: Vec<f64>,
    reads: u64,
}

impl Samples {
    fn push(&mut self, since: Instant) {
        self.us.push(since.elapsed().as_secs_f64() * 1e6);
    }

    fn ops_per_s(&self) -> f64 {
        self.us.len() as f64 * 1e6 / self.us.iter().sum::<f64>().max(1e-9)
    }

    fn pick(&mut self, q: f64) -> f64 {
        self.us.sort_by(f64::total_cmp);
        let i = ((self.us.len() as f64 - 1.0) * q).round() as usize;
        self.us.get(i).copied().unwrap_or(0.0)
    }

    fn reads_per_op(&self) -> f64 {
        self.reads as f64 / self.us.len().max(1) as f64
    }
}

/// Builds a log of `entries` payment-sized entries in a fresh database under `dir`, then times
/// inclusion and consistency proofs read from it. Every proof is checked against the root. After
/// each proof, exactly the node rows it read are read again through the same query: the
/// baseline, the cost of fetching those rows alone (from a warm cache, so a floor); what the
/// proof adds is the tree walk and the hashes of incomplete subtrees.
pub fn proofs(dir: &Path, entries: u64, samples: u64) -> Result<ProofReport, BenchError> {
    use crate::evidence::entry::{Draft, Kind};
    use crate::{ledger::log, merkle};
    let path = dir.join("ari.db");
    crate::store::Store::open(&path)?;
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let start = Instant::now();
    let mut written = 0u64;
    while written < entries {
        let tx = conn.transaction()?;
        let batch = (entries - written).min(10_000);
        for i in written..written + batch {
            let draft = Draft::new(
                Kind::PaymentDenied,
                serde_json::json!({
                    "decision": format!("{i:032x}"),
                    "voucher": "BfyGAohPhxJA8fuOFjkgMKkz5Iae63BBbRx79VgQOGU",
                    "transaction_id": format!("tx-{i}"),
                    "amount": 1999, "currency": "CNY", "payee": "shop.example",
                    "reason": "budget_exhausted",
                }),
            )
            .about("shop-bot", "alice@example.com");
            log::append_entry(&tx, "bench.example/ari", &draft, 1_795_000_000)?;
        }
        tx.commit()?;
        written += batch;
    }
    let build = written as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let stored = log::StoredNodes(&conn);
    let nodes = Counted {
        inner: &stored,
        read: std::cell::RefCell::new(Vec::new()),
    };
    let root = merkle::root(&stored, entries)?;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let raw_reads = |read: Vec<(u32, u64)>, samples: &mut Samples| {
        let t = Instant::now();
        for (level, index) in read {
            merkle::Nodes::node(&stored, level, index)?;
        }
        samples.push(t);
        Ok::<(), BenchError>(())
    };
    let (mut inclusion, mut consistency) = (Samples::default(), Samples::default());
    let (mut inclusion_raw, mut consistency_raw) = (Samples::default(), Samples::default());
    let mut longest = 0;
    for _ in 0..samples {
        let index = next(entries);
        let t = Instant::now();
        let proof = merkle::inclusion_proof(&nodes, index, entries)?;
        inclusion.push(t);
        let read = nodes.read.take();
        inclusion.reads += read.len() as u64;
        raw_reads(read, &mut inclusion_raw)?;
        longest = longest.max(proof.len());
        let leaf = merkle::Nodes::node(&stored, 0, index)?;
        if !merkle::verify_inclusion(index, entries, &leaf, &proof, &root) {
            return Err(BenchError::Unverified(format!(
                "the inclusion proof of entry {index}"
            )));
        }
        let old = 1 + next(entries - 1);
        let t = Instant::now();
        let proof = merkle::consistency_proof(&nodes, old, entries)?;
        consistency.push(t);
        let read = nodes.read.take();
        consistency.reads += read.len() as u64;
        raw_reads(read, &mut consistency_raw)?;
        let old_root = merkle::root(&stored, old)?;
        if !merkle::verify_consistency(old, entries, &old_root, &root, &proof) {
            return Err(BenchError::Unverified(format!(
                "the consistency proof {old}..{entries}"
            )));
        }
    }
    let (pages, page): (i64, i64) = (
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))?,
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))?,
    );
    let (iops, ibops) = (inclusion.ops_per_s(), inclusion_raw.ops_per_s());
    let (cops, cbops) = (consistency.ops_per_s(), consistency_raw.ops_per_s());
    Ok(ProofReport {
        entries,
        build_entries_per_s: build,
        proofs: samples,
        inclusion_ops_per_s: iops,
        inclusion_p50_us: inclusion.pick(0.5),
        inclusion_p99_us: inclusion.pick(0.99),
        inclusion_node_reads: inclusion.reads_per_op(),
        inclusion_baseline_ops_per_s: ibops,
        inclusion_baseline_p50_us: inclusion_raw.pick(0.5),
        inclusion_baseline_p99_us: inclusion_raw.pick(0.99),
        inclusion_ratio: ratio(iops, ibops),
        consistency_ops_per_s: cops,
        consistency_p50_us: consistency.pick(0.5),
        consistency_p99_us: consistency.pick(0.99),
        consistency_node_reads: consistency.reads_per_op(),
        consistency_baseline_ops_per_s: cbops,
        consistency_baseline_p50_us: consistency_raw.pick(0.5),
        consistency_baseline_p99_us: consistency_raw.pick(0.99),
        consistency_ratio: ratio(cops, cbops),
        proof_hashes: longest,
        bytes_per_entry: (pages * page) as f64 / entries.max(1) as f64,
    })
}

//! `arictl bench verify`: how fast the offline verifier checks what a verifier is handed, against
//! the P-256 signature checks it cannot avoid.
//!
//! The artifacts are real, made by a daemon in the same run: a payment receipt (the voucher
//! chain, the authorization hop signed in the key store, the attestation bundle) and the
//! payment's evidence entry with its inclusion proof against a signed checkpoint. Two verifiers
//! are timed, exactly as `arictl verify` calls them: [`crate::payment::verify`] (every link of the
//! chain to a trusted issuer, the holder binding, the authorization's signature, its limits and
//! expiry, the bundle's digest and binding) and
//! [`crate::evidence::export::verify_inclusion`] (the entry's format, the checkpoint's
//! signature, the Merkle path to its root).
//!
//! The baseline of each, run in the same process with the same number of threads, is raw
//! `p256` ECDSA verification of SHA-256 digests (`verify_prehash`, no parsing, no hashing of
//! messages), as many per operation as the verifier checks signatures: one per voucher in the
//! chain plus the authorization's for a receipt, the checkpoint's for an inclusion proof. The
//! signatures come from a random software key made for the run. So the ratio says how much of
//! the verifier's time is the unavoidable elliptic-curve work. Figures are printed, never
//! asserted.

use super::daemon::Target;
use super::drive::authorize_params;
use super::{BenchError, Figures, Plan, ratio, timed_loop};
use crate::clock::unix_now;
use crate::evidence::export::{self, InclusionProof};
use crate::jose::PublicKey;
use crate::payment::{self, Receipt};
use crate::protocol::call;
use crate::protocol::daemon::NoParams;
use crate::protocol::evidence::{CheckpointParams, EntryParams, InclusionParams};
use crate::protocol::payment::Authorization;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// What the verifier is handed, made by a daemon in the same run.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// A payment receipt, as `arictl payment authorize` prints it.
    pub receipt: Receipt,
    /// The trusted issuer keys.
    pub trusted: Vec<PublicKey>,
    /// The time to verify the receipt at (inside the authorization's short validity).
    pub at: i64,
    /// An evidence entry's exact bytes.
    pub entry: Vec<u8>,
    /// Its inclusion proof.
    pub proof: InclusionProof,
    /// The signed checkpoint note the proof is against.
    pub checkpoint: String,
    /// The log's public key.
    pub log_key: PublicKey,
}

/// One verifier against its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRow {
    /// What is verified: `payment` or `inclusion`.
    pub what: &'static str,
    /// ECDSA signatures the verifier checks per operation (and the baseline verifies).
    pub signatures: usize,
    /// Verifications per second.
    pub ops_per_s: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Baseline operations (that many raw signature checks) per second.
    pub baseline_ops_per_s: f64,
    /// Baseline median latency, microseconds.
    pub baseline_p50_us: f64,
    /// Baseline p99 latency, microseconds.
    pub baseline_p99_us: f64,
    /// `ops_per_s / baseline_ops_per_s`.
    pub ratio: f64,
}

/// What one `bench verify` run measured, at one thread count.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Verifier threads (each side).
    pub clients: usize,
    /// Seconds per side and verifier.
    pub seconds: f64,
    /// Vouchers in the receipt's chain.
    pub chain: usize,
    /// Entries in the tree the checkpoint signs.
    pub tree_size: u64,
    /// Hashes in the inclusion proof.
    pub proof_hashes: usize,
    /// The verifiers, each with its baseline.
    pub rows: Vec<VerifyRow>,
}

impl VerifyReport {
    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut out = format!(
            "offline verification, {threads} threads, {seconds} s per side; receipt with {chain} voucher(s), inclusion proof of {hashes} hashes in a tree of {size}\n",
            threads = self.clients,
            seconds = self.seconds,
            chain = self.chain,
            hashes = self.proof_hashes,
            size = self.tree_size,
        );
        for r in &self.rows {
            out.push_str(&format!(
                "verify {what:<9}  {ops:>9.0} ops/s  p50 {p50:>7.1} µs  p99 {p99:>7.1} µs\n\
                 raw ECDSA × {n}     {bops:>9.0} ops/s  p50 {bp50:>7.1} µs  p99 {bp99:>7.1} µs  ratio {ratio:.2}\n",
                what = r.what,
                ops = r.ops_per_s,
                p50 = r.p50_us,
                p99 = r.p99_us,
                n = r.signatures,
                bops = r.baseline_ops_per_s,
                bp50 = r.baseline_p50_us,
                bp99 = r.baseline_p99_us,
                ratio = r.ratio,
            ));
        }
        out
    }
}

/// Makes a receipt and an inclusion proof on the plan's daemon, stops a throwaway daemon so it
/// does not compete for CPU, then times the offline verifier on them at each of the plan's
/// thread counts. `log_entries` statements recorded after the payment put its entry inside the
/// tree, where a proof has about log2(size) hashes, rather than at its right edge.
pub fn measure(plan: &Plan, log_entries: u64) -> Result<Vec<VerifyReport>, BenchError> {
    let artifacts = make_artifacts(plan, log_entries)?;
    let mut reports = Vec::new();
    for &threads in &plan.clients {
        plan.say(&format!(
            "verifying with {threads} threads, then raw ECDSA, {} s each ...",
            plan.seconds
        ));
        reports.push(run(&artifacts, threads, plan.seconds)?);
    }
    Ok(reports)
}

/// What [`measure`] verifies, made by the plan's daemon (stopped afterwards if throwaway).
fn make_artifacts(plan: &Plan, log_entries: u64) -> Result<Artifacts, BenchError> {
    let target = Target::open(plan)?;
    let agent = target.bench_agent()?;
    let voucher = target.bench_voucher(&agent)?;
    let nonce = format!("bench-verify-{}", unix_now());
    let paid = target.agent::<call::PaymentAuthorize>(&authorize_params(&voucher, &nonce))?;
    let at = unix_now();
    let Authorization::Authorized(paid) = paid else {
        return Err(BenchError::Answer(
            "the bench voucher's payment was held, not signed",
        ));
    };
    let (receipt, index) = (paid.receipt, paid.log_index);
    if log_entries > 0 {
        plan.say(&format!(
            "recording {log_entries} statements so the proof has a realistic length ..."
        ));
        super::drive::fill(&target.layout.agent_socket, log_entries, 8)?;
    }
    let cp = target.admin::<call::EvidenceCheckpoint>(&CheckpointParams {
        at_least: index + 1 + log_entries,
        wait_ms: 10_000,
    })?;
    let entry = target.admin::<call::EvidenceEntry>(&EntryParams { index })?;
    let proof = target.admin::<call::EvidenceInclusion>(&InclusionParams {
        index,
        tree_size: Some(cp.size),
    })?;
    let status = target.admin::<call::AdminStatus>(&NoParams {})?;
    let key = |role: &str| -> Result<PublicKey, BenchError> {
        let key = status.daemon_keys.get(role).ok_or(BenchError::Answer(
            "the daemon reports no issuer or log key",
        ))?;
        Ok(key.jwk.to_public_key()?)
    };
    Ok(Artifacts {
        receipt,
        trusted: vec![key("issuer")?],
        at,
        entry: entry.entry.into_bytes(),
        proof,
        checkpoint: cp.note,
        log_key: key("log")?,
    })
}

/// Checks that both artifacts verify, then times each verifier and its baseline from `threads`
/// threads for `seconds` each.
pub fn run(a: &Artifacts, threads: usize, seconds: f64) -> Result<VerifyReport, BenchError> {
    let threads = threads.max(1);
    let verified =
        payment::verify(&a.receipt, &a.trusted, None, a.at).map_err(BenchError::Receipt)?;
    let cp = export::verify_inclusion(&a.entry, &a.proof, &a.checkpoint, &a.log_key)
        .map_err(BenchError::Inclusion)?;
    let pool = SignaturePool::new()?;
    let duration = Duration::from_secs_f64(seconds);
    let payment_sigs = verified.chain.len() + 1;
    let payment = timed_loop(vec![(); threads], duration, |_, _, _| {
        payment::verify(&a.receipt, &a.trusted, None, a.at)
            .map(drop)
            .map_err(BenchError::Receipt)
    })?;
    let payment_raw = pool.time(payment_sigs, threads, duration)?;
    let inclusion = timed_loop(vec![(); threads], duration, |_, _, _| {
        export::verify_inclusion(&a.entry, &a.proof, &a.checkpoint, &a.log_key)
            .map(drop)
            .map_err(BenchError::Inclusion)
    })?;
    let inclusion_raw = pool.time(1, threads, duration)?;
    Ok(VerifyReport {
        clients: threads,
        seconds,
        chain: verified.chain.len(),
        tree_size: cp.size,
        proof_hashes: a.proof.hashes.len(),
        rows: vec![
            row("payment", payment_sigs, payment, payment_raw),
            row("inclusion", 1, inclusion, inclusion_raw),
        ],
    })
}

fn row(what: &'static str, signatures: usize, f: Figures, raw: Figures) -> VerifyRow {
    VerifyRow {
        what,
        signatures,
        ops_per_s: f.ops_per_s,
        p50_us: f.p50_us,
        p99_us: f.p99_us,
        baseline_ops_per_s: raw.ops_per_s,
        baseline_p50_us: raw.p50_us,
        baseline_p99_us: raw.p99_us,
        ratio: ratio(f.ops_per_s, raw.ops_per_s),
    }
}

/// Signatures over distinct digests by a random software key, verified round-robin.
struct SignaturePool {
    key: VerifyingKey,
    signed: Vec<([u8; 32], Signature)>,
}

impl SignaturePool {
    const SIZE: usize = 64;

    fn new() -> Result<Self, BenchError> {
        let mut scalar = [0u8; 32];
        getrandom::fill(&mut scalar).map_err(BenchError::Random)?;
        let sk = SigningKey::from_slice(&scalar)?;
        let signed = (0..Self::SIZE)
            .map(|i| {
                let digest: [u8; 32] = Sha256::digest(format!("raw-verify-{i}").as_bytes()).into();
                sk.sign_prehash(&digest).map(|s: Signature| (digest, s))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            key: *sk.verifying_key(),
            signed,
        })
    }

    /// Times operations of `n` signature checks each.
    fn time(&self, n: usize, threads: usize, duration: Duration) -> Result<Figures, BenchError> {
        timed_loop(vec![(); threads], duration, |_, t, i| {
            for k in 0..n {
                let at = t
                    .wrapping_mul(7)
                    .wrapping_add((i as usize).wrapping_mul(n))
                    .wrapping_add(k)
                    % Self::SIZE;
                let (digest, sig) = self
                    .signed
                    .get(at)
                    .ok_or_else(|| BenchError::Missing("no signature".into()))?;
                self.key.verify_prehash(digest, sig)?;
            }
            Ok(())
        })
    }
}

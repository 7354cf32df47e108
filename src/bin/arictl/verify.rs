//! `arictl verify`: the offline verifier. Vouchers and chains, payment receipts, exported logs,
//! inclusion proofs, attestations and their TPM evidence, each checked with nothing but the
//! files given and the keys the verifier trusts; no daemon is asked.

use crate::artifact::{read_bundle, read_public_key, status_list, trusted_keys};
use crate::cli::{LogTrust, VerifyCmd};
use crate::file::read_input;
use crate::print_json;
use anyhow::{Context, Result, anyhow, bail};
use ari::clock::unix_now;
use ari::jose::Jwk;
use ari::protocol::agent::Attestation;
use ari::{attest, evidence, payment, verifier, voucher};
use std::path::Path;

/// With `--status-list` on a bare chain: every segment that names its place in that list must
/// be VALID there, and one at least must name it (the signatures are checked after).
fn chain_statuses(chain: &str, list: &voucher::status::Verified) -> Result<()> {
    let mut referenced = false;
    for (i, segment) in ari::sdjwt::split(chain)?.iter().enumerate() {
        let payload = segment.jwt.split('.').nth(1).unwrap_or_default();
        let claims: serde_json::Value = ari::jose::b64url_decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let Some(status) = claims.get("status") else {
            continue;
        };
        let status: voucher::status::Status = serde_json::from_value(status.clone())
            .with_context(|| format!("segment {i}: an unreadable status claim"))?;
        if status.status_list.uri != list.claims().sub {
            continue;
        }
        referenced = true;
        let found = list.status_of(&status.status_list)?;
        if found != voucher::status::StatusType::Valid {
            bail!("segment {i} is {found:?} in the status list");
        }
    }
    if !referenced {
        bail!("no voucher of the chain names its place in this status list");
    }
    Ok(())
}

/// `arictl verify payment` on a bare AP2 payment mandate chain.
fn mandate_chain(
    chain: &str,
    keys: &[ari::jose::PublicKey],
    now: i64,
    aud: Option<&str>,
    nonce: Option<&str>,
) -> Result<()> {
    let expect = ari::sdjwt::Expect {
        aud,
        nonce,
        at: Some(now),
        skew: voucher::CLOCK_SKEW_S,
        open: false,
    };
    let v = ari::mandate::verify_chain(chain, keys, &expect, None)?;
    let summary = serde_json::json!({
        "segments": v.payloads.len(),
        "bindings": v.bindings,
        "open": v.open,
        "closed": v.closed,
        "violations": v.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    if !v.violations.is_empty() {
        print_json(&summary)?;
        bail!(
            "the closed mandate violates its open mandate: {}",
            v.violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    eprintln!(
        "mandate OK: {} segment(s), {} {} to {}",
        v.payloads.len(),
        v.closed.payment_amount.amount,
        v.closed.payment_amount.currency,
        v.closed.payee.id
    );
    print_json(&summary)
}

/// Runs one `arictl verify` command.
pub(crate) fn run(cmd: &VerifyCmd) -> Result<()> {
    match cmd {
        VerifyCmd::Voucher {
            trust,
            status_list: list_file,
            files,
        } => {
            let keys = trusted_keys(trust)?;
            let now = unix_now();
            let list = status_list(list_file.as_ref(), &keys, now)?;
            let texts = files
                .iter()
                .map(|f| read_input(f).map(|t| t.trim().to_string()))
                .collect::<Result<Vec<_>>>()?;
            // One file holding the chain, or one file per voucher, root first.
            let chain = match texts.as_slice() {
                [one] => one.clone(),
                many => voucher::join(many)?,
            };
            let claims = voucher::verify_chain(&chain, &keys, now)?;
            if let Some(list) = &list {
                list.check_chain(&claims)?;
            }
            let leaf = claims.last().ok_or_else(|| anyhow!("empty chain"))?;
            eprintln!(
                "voucher OK: {} link(s), agent {}, user {}",
                claims.len(),
                leaf.agent,
                leaf.sub
            );
            print_json(&serde_json::to_value(leaf)?)
        }
        VerifyCmd::Payment {
            trust,
            status_list: list_file,
            at,
            log_vkey,
            witness,
            quorum,
            aud,
            nonce,
            file,
        } => {
            let keys = trusted_keys(trust)?;
            let now = at.unwrap_or_else(unix_now);
            let text = read_input(file)?;
            let list = status_list(list_file.as_ref(), &keys, now)?;
            if !text.trim_start().starts_with('{') {
                let chain = text.trim();
                if let Some(list) = &list {
                    chain_statuses(chain, list)?;
                }
                return mandate_chain(chain, &keys, now, aud.as_deref(), nonce.as_deref());
            }
            let receipt: payment::Receipt = serde_json::from_str(&text)
                .context("the receipt is not the JSON `arictl payment authorize` prints")?;
            let expected = payment::Expected {
                aud: aud.as_deref(),
                nonce: nonce.as_deref(),
            };
            let v = payment::verify_expecting(&receipt, &keys, list.as_ref(), now, expected)?;
            if let Some(log_vkey) = log_vkey {
                let (log, policy) = log_trust(&LogTrust {
                    log_vkey: log_vkey.clone(),
                    witness: witness.clone(),
                    quorum: *quorum,
                })?;
                let cp = evidence::proof::verify_receipt(&receipt, &log, policy.as_ref())?;
                eprintln!(
                    "logged OK: entry {} of {} is in its checkpoint of size {}",
                    v.claims.log_index, cp.origin, cp.size
                );
            }
            eprintln!(
                "payment OK: {} {} to {} by agent {} for user {}, {} voucher(s)",
                v.claims.amount,
                v.claims.currency,
                v.claims.payee,
                v.claims.agent,
                v.claims.sub,
                v.chain.len()
            );
            print_json(&serde_json::to_value(&v.claims)?)
        }
        VerifyCmd::Log {
            dir,
            log_key,
            since,
            allow_unsigned_tail,
        } => {
            use evidence::export::Tail;
            let key = Jwk::from_json(&read_input(log_key)?)?.to_public_key()?;
            let since = since.as_ref().map(|f| read_input(f)).transpose()?;
            let tail = if *allow_unsigned_tail {
                Tail::Report
            } else {
                Tail::Refuse
            };
            let summary = evidence::export::verify_dir_with(dir, &key, since.as_deref(), tail)
                .map_err(|e| match e.check() {
                    evidence::export::SIGNED_TAIL => anyhow!(e).context(
                        "the export does not end on a signed checkpoint; export it again \
                         (`arictl log export` ends on one), or pass --allow-unsigned-tail to \
                         list the entries no signature covers",
                    ),
                    _ => anyhow!(e),
                })?;
            let extends = if since.is_some() {
                ", extends the --since checkpoint"
            } else {
                ""
            };
            match summary.unsigned_tail {
                None => eprintln!(
                    "log OK: {} entries ({}..{}) of {}, {} checkpoint(s) checked{extends}",
                    summary.to - summary.from,
                    summary.from,
                    summary.to,
                    summary.origin,
                    summary.checkpoints,
                ),
                Some(t) => {
                    if summary.to == summary.from {
                        eprintln!(
                            "log NOT verified: no checkpoint of {} covers any of its entries",
                            summary.origin
                        );
                    } else {
                        eprintln!(
                            "log verified only up to its newest checkpoint: {} entries ({}..{}) of {}, {} checkpoint(s) checked{extends}",
                            summary.to - summary.from,
                            summary.from,
                            summary.to,
                            summary.origin,
                            summary.checkpoints,
                        );
                    }
                    eprintln!(
                        "WARNING: {} past the newest checkpoint {} NOT covered by any signature (entries {}..{}: read and linked, but anyone could have written them)",
                        if t.len() == 1 {
                            "1 entry".to_string()
                        } else {
                            format!("{} entries", t.len())
                        },
                        if t.len() == 1 { "is" } else { "are" },
                        t.from,
                        t.to
                    );
                }
            }
            print_json(&serde_json::to_value(&summary)?)
        }
        VerifyCmd::Inclusion {
            entry,
            proof,
            checkpoint,
            log_key,
        } => {
            let key = Jwk::from_json(&read_input(log_key)?)?.to_public_key()?;
            let bytes =
                std::fs::read(entry).with_context(|| format!("cannot read {}", entry.display()))?;
            let bytes = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let proof: evidence::export::InclusionProof = serde_json::from_str(&read_input(proof)?)
                .context("the proof is not the JSON `arictl log proof` prints")?;
            let cp =
                evidence::export::verify_inclusion(bytes, &proof, &read_input(checkpoint)?, &key)?;
            eprintln!(
                "inclusion OK: entry {} is in {} at size {}",
                proof.index, cp.origin, cp.size
            );
            Ok(())
        }
        VerifyCmd::Checkpoint { note, trust } => {
            let (log, policy) = log_trust(trust)?;
            let text = read_input(note)?;
            let cp = log.verify(&text)?;
            let witnesses = match &policy {
                Some(p) => p.check(&text, log.origin())?,
                None => Vec::new(),
            };
            eprintln!(
                "checkpoint OK: {} at size {}{}",
                cp.origin,
                cp.size,
                cosigned_by(&witnesses)
            );
            Ok(())
        }
        VerifyCmd::TlogProof {
            entry,
            proof,
            trust,
        } => {
            let (log, policy) = log_trust(trust)?;
            let bytes =
                std::fs::read(entry).with_context(|| format!("cannot read {}", entry.display()))?;
            let proof = evidence::proof::TlogProof::parse(&read_input(proof)?)?;
            let cp = proof.verify(&bytes, &log, policy.as_ref())?;
            let witnesses = match &policy {
                Some(p) => p.check(&proof.note, log.origin())?,
                None => Vec::new(),
            };
            eprintln!(
                "tlog-proof OK: entry {} is in {} at size {}{}",
                proof.index,
                cp.origin,
                cp.size,
                cosigned_by(&witnesses)
            );
            Ok(())
        }
        VerifyCmd::Attestation {
            bundle,
            ak,
            policy,
            state,
            nonce,
        } => verify_attestation(bundle, ak, policy, state.as_deref(), nonce.as_deref()),
        VerifyCmd::Attest { jwk, nonce, file } => {
            let key = Jwk::from_json(&read_input(jwk)?)?.to_public_key()?;
            let text = read_input(file)?;
            let token = text.trim();
            // Accept either the bare JWS or the JSON that `arictl attest` prints.
            let token = match serde_json::from_str::<Attestation>(token) {
                Ok(printed) => printed.attestation,
                Err(_) => token.to_owned(),
            };
            let claims = attest::verify(&token, &key, nonce)?;
            eprintln!(
                "attestation OK: agent {} (user {}), key {}",
                claims.evidence.agent.id, claims.evidence.agent.user, claims.evidence.key.kid
            );
            print_json(&claims)
        }
    }
}

/// `arictl verify attestation`: the bundle's TPM evidence against the enrolled AK and a policy,
/// with the state file of clocks seen.
/// The log key and the witness policy a verifier gave.
fn log_trust(
    trust: &LogTrust,
) -> Result<(
    evidence::checkpoint::LogKey,
    Option<evidence::witness::Policy>,
)> {
    let log = evidence::checkpoint::LogKey::from_vkey(&trust.log_vkey).context("--log-vkey")?;
    if trust.witness.is_empty() {
        if trust.quorum.is_some_and(|q| q > 0) {
            bail!("--quorum needs the witnesses' keys (--witness)");
        }
        return Ok((log, None));
    }
    let witnesses = trust
        .witness
        .iter()
        .map(|v| evidence::note::Cosigner::from_vkey(v).with_context(|| format!("--witness {v}")))
        .collect::<Result<Vec<_>>>()?;
    let quorum = trust.quorum.unwrap_or(witnesses.len());
    if quorum > witnesses.len() {
        bail!(
            "--quorum {quorum} is more than the {} witnesses given",
            witnesses.len()
        );
    }
    Ok((log, Some(evidence::witness::Policy { witnesses, quorum })))
}

fn cosigned_by(witnesses: &[(String, u64)]) -> String {
    if witnesses.is_empty() {
        return String::new();
    }
    let names: Vec<String> = witnesses
        .iter()
        .map(|(name, t)| format!("{name} at {t}"))
        .collect();
    format!(", cosigned by {}", names.join(", "))
}

fn verify_attestation(
    bundle: &Path,
    ak: &Path,
    policy: &Path,
    state: Option<&Path>,
    nonce: Option<&str>,
) -> Result<()> {
    let bundle = read_bundle(bundle)?;
    let ak = read_public_key(ak)?;
    let policy = verifier::load_policy(policy)?;
    let v = verifier::verify_attestation(&bundle, &ak, &policy, nonce, state)?;
    if v.tpm {
        eprintln!(
            "attestation OK: agent {} key {} in the TPM of AK {}, {} PCR(s) quoted, batch of {}",
            bundle.evidence.agent.id,
            bundle.evidence.key.kid,
            ak.thumbprint(),
            v.pcrs.len(),
            v.batch_size
        );
    } else {
        eprintln!(
            "attestation OK without TPM evidence: no TPM evidence (key store {}), which the policy allows",
            bundle.evidence.key.store
        );
    }
    print_json(&v)
}

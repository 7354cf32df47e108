//! The witness client: asks witnesses (C2SP `tlog-witness`) to cosign the log's checkpoints.
//!
//! For each new checkpoint the daemon posts `add-checkpoint` to every witness in
//! `evidence.witnesses`, with the consistency proof from the size that witness last cosigned
//! (kept in the state database). A witness that knows another size answers 409 with it: a
//! smaller one is retried once from there; a larger one means this checkpoint is stale to the
//! witness, and it stays uncosigned by it. A returned cosignature is checked against the
//! witness's configured key before it is added to the stored and published checkpoint, so a
//! served checkpoint never carries a line that does not verify.
//!
//! Witnessing runs on its own task behind the checkpoints, one witness at a time with a
//! timeout each, at most one round a second on the newest checkpoint; it never holds up a
//! payment, a commit or a checkpoint.

use super::{Service, blocking};
use crate::clock::unix_now;
use crate::config::witness_url_ok;
use crate::error::Error;
use crate::evidence::checkpoint;
use crate::evidence::note::{self, Cosigner};
use crate::evidence::witness::{MAX_PROOF_LINES, add_checkpoint_body, conflict_size};
use crate::ledger::log::{self, StoredNodes};
use crate::merkle;
use crate::protocol::evidence::{WitnessParams, Witnessed};
use std::sync::Arc;
use std::time::Duration;

/// Least time between two rounds of submissions to the configured witnesses.
const WITNESS_SPACING: Duration = Duration::from_secs(1);

/// Largest witness answer read.
const MAX_ANSWER_BYTES: u64 = 16 * 1024;

/// A witness's answer to one request.
enum Answer {
    /// 200: cosignature lines.
    Cosigned(String),
    /// 409 with the size the witness has.
    Conflict(u64),
    /// Anything else: the status and the start of the body.
    Refused(u16, String),
}

impl Service {
    /// Submits each newly signed checkpoint to the configured witnesses, until the daemon stops.
    pub async fn keep_witnessed(self: Arc<Self>) {
        let mut signed = self.signed.subscribe();
        let mut done = 0;
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            // At most one round a second, on the newest checkpoint: a witness serves many logs
            // and needs no more than that to keep this one's view fresh.
            if let Some(at) = last {
                tokio::time::sleep_until(at + WITNESS_SPACING).await;
            }
            let size = signed.borrow_and_update().as_ref().map(|s| s.size);
            if let Some(size) = size.filter(|s| *s > done) {
                for w in self.settings().witnesses {
                    let params = WitnessParams {
                        url: w.url.clone(),
                        vkey: w.vkey.clone(),
                        size: Some(size),
                    };
                    match self.log_witness(params).await {
                        Ok(c) => tracing::debug!(witness = %c.witness, size, "cosigned"),
                        Err(e) => {
                            tracing::warn!(url = %w.url, size, error = %e, "witness did not cosign")
                        }
                    }
                }
                done = size;
                last = Some(tokio::time::Instant::now());
            }
            if signed.changed().await.is_err() {
                return;
            }
        }
    }

    /// `admin.log_witness`: one checkpoint to one witness.
    pub(super) async fn log_witness(&self, p: WitnessParams) -> Result<Witnessed, Error> {
        let cosigner =
            Cosigner::from_vkey(&p.vkey).map_err(|e| Error::InvalidParams(format!("vkey: {e}")))?;
        if !witness_url_ok(&p.url) {
            return Err(Error::InvalidParams(
                "url: an https:// URL, or http:// to 127.0.0.1, [::1] or localhost".into(),
            ));
        }
        let size = match p.size {
            Some(size) => size,
            None => self.signed_size()?,
        };
        let store = self.store.clone();
        let (note, mut old) = {
            let name = cosigner.name.clone();
            blocking(move || {
                store.read(|c| {
                    let cp = log::checkpoints(c, size, size)?.pop();
                    Ok((cp.map(|cp| cp.note), log::witness_size(c, &name)?))
                })
            })
            .await?
        };
        let note = note.ok_or_else(|| {
            Error::NotYetCheckpointed(format!("no checkpoint of size {size} was signed"))
        })?;
        let timeout = self.settings().witness_timeout;
        // One retry from the size a witness says it has, if that is behind this checkpoint.
        for _ in 0..2 {
            if old > size {
                return Err(Error::WitnessRefused(format!(
                    "stale: witness {} has cosigned size {old}, past this checkpoint of size {size}",
                    cosigner.name
                )));
            }
            let proof = self.consistency(old, size).await?;
            let body = add_checkpoint_body(old, &proof, &note);
            let url = format!("{}/add-checkpoint", p.url.trim_end_matches('/'));
            let answer = blocking(move || post(&url, body, timeout)).await?;
            match answer {
                Answer::Cosigned(lines) => {
                    return self.cosigned(&cosigner, size, old, &note, &lines).await;
                }
                Answer::Conflict(has) => {
                    tracing::info!(witness = %cosigner.name, has, thought = old, "the witness has another size");
                    self.record_witness(&cosigner.name, has).await?;
                    if has == old {
                        return Err(Error::WitnessRefused(format!(
                            "witness {} has a checkpoint of size {size} with another root",
                            cosigner.name
                        )));
                    }
                    old = has;
                }
                Answer::Refused(status, why) => {
                    return Err(Error::WitnessRefused(format!(
                        "witness {} answered {status}: {why}",
                        cosigner.name
                    )));
                }
            }
        }
        Err(Error::WitnessRefused(format!(
            "witness {} keeps answering with another size",
            cosigner.name
        )))
    }

    /// The RFC 6962 consistency proof from `old` to `size` as a witness wants it: none from 0
    /// or to the same size.
    async fn consistency(&self, old: u64, size: u64) -> Result<Vec<merkle::Hash>, Error> {
        if old == 0 || old == size {
            return Ok(Vec::new());
        }
        let store = self.store.clone();
        let proof = blocking(move || {
            store.read(|c| Ok(merkle::consistency_proof(&StoredNodes(c), old, size)?))
        })
        .await?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(Error::WitnessRefused(format!(
                "the consistency proof from {old} to {size} has {} hashes, more than a witness takes",
                proof.len()
            )));
        }
        Ok(proof)
    }

    /// Checks a witness's cosignature lines, keeps the valid one in the stored checkpoint (in
    /// place of an older one by the same witness), and republishes if it is the newest.
    async fn cosigned(
        &self,
        cosigner: &Cosigner,
        size: u64,
        old: u64,
        note: &str,
        answer: &str,
    ) -> Result<Witnessed, Error> {
        let refused =
            |why: String| Error::WitnessRefused(format!("witness {}: {why}", cosigner.name));
        let lines = note::parse_lines(answer).map_err(|e| refused(e.to_string()))?;
        let (text, existing) = note::split(note, checkpoint::MAX_NOTE_BYTES)
            .map_err(|e| refused(format!("the stored checkpoint: {e}")))?;
        let mut time = None;
        for line in &lines {
            if let Some(t) = cosigner
                .check(text, line)
                .map_err(|e| refused(e.to_string()))?
            {
                time = Some((t, line.clone()));
            }
        }
        let Some((time, line)) = time else {
            return Err(refused(
                "its answer carries no cosignature by its key".into(),
            ));
        };
        let mut updated = text.to_string();
        updated.push('\n');
        for l in existing
            .iter()
            .filter(|l| !(l.name == cosigner.name && l.id == cosigner.id()))
            .chain(std::iter::once(&line))
        {
            updated.push_str(&note::line(&l.name, l.id, &l.signature));
        }
        let (stored, name) = (updated.clone(), cosigner.name.clone());
        self.ledger
            .run(move |tx| {
                log::put_cosigned(tx.conn(), size, &stored)?;
                log::put_witness_size(tx.conn(), &name, size, unix_now())
            })
            .await?;
        self.signed.send_if_modified(|s| match s {
            Some(s) if s.size == size => {
                s.note = updated.clone();
                true
            }
            _ => false,
        });
        Ok(Witnessed {
            witness: cosigner.name.clone(),
            size,
            old,
            time,
            note: updated,
        })
    }

    async fn record_witness(&self, name: &str, size: u64) -> Result<(), Error> {
        let name = name.to_string();
        self.ledger
            .run(move |tx| log::put_witness_size(tx.conn(), &name, size, unix_now()))
            .await?;
        Ok(())
    }
}

/// Posts one `add-checkpoint` request.
fn post(url: &str, body: String, timeout: Duration) -> Result<Answer, Error> {
    use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::NativeTls)
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    let unreachable = |e: ureq::Error| Error::WitnessUnreachable(format!("{url}: {e}"));
    let mut response = agent
        .post(url)
        .header("Content-Type", "text/plain; charset=utf-8")
        .send(body)
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(unreachable)?;
    Ok(match status {
        200 => Answer::Cosigned(text),
        409 => match conflict_size(&text) {
            Some(size) => Answer::Conflict(size),
            None => Answer::Refused(status, first_line(&text)),
        },
        _ => Answer::Refused(status, first_line(&text)),
    })
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

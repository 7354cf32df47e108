//! The offline verifier of attestation bundles, with its memory: what `arictl verify
//! attestation` runs on a verifier's machine, away from the daemon.
//!
//! A TPM's quote proves where its clock and counters stood. Kept per attestation key (by its
//! JWK thumbprint) in a JSON state file ([`TpmState`]), they let a verifier refuse a bundle
//! older than one it has already accepted: a replay. The state only moves forward, and only
//! after a bundle passed every check; a refused bundle never changes it. The checks themselves
//! are [`crate::attest::tpm::verify`]'s; this module adds the caller's nonce, the policy file and
//! the state file, and must never accept what that function refuses.

use crate::attest::Bundle;
use crate::attest::tpm::{self, Failure, Policy, Seen, Verified};
use crate::jose::PublicKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a bundle was not accepted, or the verifier's files could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The policy file is not a valid policy.
    #[error("{} is not a valid policy", path.display())]
    Policy {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// The state file is not one this verifier wrote.
    #[error("{} is not a state file", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The state file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bundle does not answer the verifier's nonce.
    #[error("attestation REJECTED by check binding: the bundle does not answer this nonce")]
    Nonce,
    /// A check of the bundle failed (the failure names it).
    #[error("attestation REJECTED by check {}: {}", .0.check, .0.detail)]
    Rejected(Failure),
}

/// The TPM clocks and counters last accepted, per attestation key, as kept in a state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmState {
    path: PathBuf,
    seen: BTreeMap<String, Seen>,
}

impl TpmState {
    /// Reads the state file at `path`; a file that does not exist yet is an empty state.
    pub fn load(path: &Path) -> Result<Self, VerifierError> {
        let seen = if path.exists() {
            serde_json::from_str(&read(path)?).map_err(|source| VerifierError::State {
                path: path.to_path_buf(),
                source,
            })?
        } else {
            BTreeMap::new()
        };
        Ok(Self {
            path: path.to_path_buf(),
            seen,
        })
    }

    /// What was last accepted from the TPM of `ak`.
    pub fn last_seen(&self, ak: &PublicKey) -> Option<Seen> {
        self.seen.get(&ak.thumbprint()).copied()
    }

    /// Remembers `seen` as the newest accepted from the TPM of `ak` and writes the file.
    pub fn advance(&mut self, ak: &PublicKey, seen: Seen) -> Result<(), VerifierError> {
        self.seen.insert(ak.thumbprint(), seen);
        let write = |source| VerifierError::Write {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(&self.seen)
            .map_err(|e| write(std::io::Error::other(e)))?;
        std::fs::write(&self.path, text).map_err(write)
    }
}

/// Reads a verifier's policy (TOML, unknown keys refused).
pub fn load_policy(path: &Path) -> Result<Policy, VerifierError> {
    toml::from_str(&read(path)?).map_err(|source| VerifierError::Policy {
        path: path.to_path_buf(),
        source,
    })
}

/// A verifier's file as text.
fn read(path: &Path) -> Result<String, VerifierError> {
    std::fs::read_to_string(path).map_err(|source| VerifierError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Verifies `bundle` against the enrolled `ak` and `policy`: with `nonce`, that the bundle
/// answers it (an `agent.attest` bundle); with a `state` file, that the TPM's clock has not gone
/// back since the last bundle accepted from it, and then records this one.
pub fn verify_attestation(
    bundle: &Bundle,
    ak: &PublicKey,
    policy: &Policy,
    nonce: Option<&str>,
    state: Option<&Path>,
) -> Result<Verified, VerifierError> {
    if let Some(nonce) = nonce
        && bundle.binding != tpm::challenge_binding(nonce, &bundle.evidence.key.kid)
    {
        return Err(VerifierError::Nonce);
    }
    let mut state = state.map(TpmState::load).transpose()?;
    let last = state.as_ref().and_then(|s| s.last_seen(ak));
    let verified = tpm::verify(bundle, ak, policy, last).map_err(VerifierError::Rejected)?;
    if let (Some(state), Some(now)) = (state.as_mut(), verified.seen) {
        state.advance(ak, now)?;
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn key() -> PublicKey {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        PublicKey::from_sec1(&sk.verifying_key().to_sec1_bytes()).unwrap()
    }

    /// A bundle without TPM evidence (a PKCS#11 key store) answering `nonce`.
    fn pkcs11_bundle(nonce: &str) -> Bundle {
        let kid = "_dW8A-GLXVqbPP-vIvMJwYatEeWuGKu-mPxI1ZmIkTs";
        serde_json::from_value(serde_json::json!({
            "typ": "ari-attest-bundle", "iat": 1_767_225_600,
            "binding": tpm::challenge_binding(nonce, kid),
            "agent": {"id": "shop-bot", "instance": "i-1", "user": "alice"},
            "runtime": {"uid": 1000, "gid": 1000, "pid": 4242, "start_time": 123_456,
                        "exe_sha256": "ab".repeat(32), "cgroup": "/user.slice/agent.service"},
            "host": {"boot_id": "3f1c7d2e-0000-4000-8000-000000000001"},
            "daemon": {"version": "0.1.0", "config_sha256": "01".repeat(32)},
            "key": {"kid": kid, "store": "pkcs11", "uri": "pkcs11:token=ari;object=agent-shop-bot",
                    "attributes": {"always_sensitive": true, "decrypt": false, "derive": false,
                                   "extractable": false, "local": true, "never_extractable": true,
                                   "private": true, "sensitive": true, "sign": true,
                                   "token": true, "unwrap": false}},
            "tpm": {"present": false},
        }))
        .unwrap()
    }

    #[test]
    fn the_state_starts_empty_moves_forward_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.json");
        let mut state = TpmState::load(&path).unwrap();
        assert_eq!(state.last_seen(&key()), None);
        assert!(!path.exists(), "loading must not create the file");
        let seen = Seen {
            clock: 5_000,
            reset_count: 1,
            restart_count: 2,
        };
        state.advance(&key(), seen).unwrap();
        assert_eq!(TpmState::load(&path).unwrap().last_seen(&key()), Some(seen));
    }

    #[test]
    fn a_state_file_that_is_not_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        match TpmState::load(&path) {
            Err(e @ VerifierError::State { .. }) => {
                assert!(e.to_string().contains("seen.json"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_policy_with_an_unknown_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "require_tmp = true\n").unwrap();
        assert!(matches!(
            load_policy(&path),
            Err(VerifierError::Policy { .. })
        ));
        std::fs::write(&path, "require_tpm = false\n").unwrap();
        assert!(!load_policy(&path).unwrap().require_tpm);
    }

    #[test]
    fn the_nonce_is_checked_before_anything_else_and_the_policy_decides_without_tpm() {
        let bundle = pkcs11_bundle("nonce-1");
        let lenient = Policy {
            require_tpm: false,
            ..Policy::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("seen.json");
        let v =
            verify_attestation(&bundle, &key(), &lenient, Some("nonce-1"), Some(&state)).unwrap();
        assert!(!v.tpm);
        assert!(
            !state.exists(),
            "nothing TPM-backed was seen, so nothing is kept"
        );
        assert!(matches!(
            verify_attestation(&bundle, &key(), &lenient, Some("nonce-2"), None),
            Err(VerifierError::Nonce)
        ));
        let strict = Policy {
            require_tpm: true,
            ..Policy::default()
        };
        match verify_attestation(&bundle, &key(), &strict, None, None) {
            Err(VerifierError::Rejected(f)) => assert!(!f.check.is_empty()),
            other => panic!("{other:?}"),
        }
    }
}

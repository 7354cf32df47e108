//! # ARI signer
//!
//! `ari` is the library behind `arid`, a host daemon that keeps each AI agent's Agent Runtime
//! Identity (ARI) key inside a hardware key store and signs only what that agent is allowed to
//! sign, and `arictl`, the operator, agent-side and verifier command line. Everything the
//! binaries do is a library call first.
//!
//! ## Map of the crate
//!
//! Floors from the bottom up: a module uses only modules on its own floor or below.
//! `.ci/module-circles` (run in CI) fails on any import circle and prints the floors as the code
//! has them.
//!
//! | floor | module | concept |
//! | --- | --- | --- |
//! | formats | [`jose`], [`merkle`], [`condition`], [`voucher`], [`attest`], [`payment`], [`evidence`], [`keyset`], [`mandate`], [`sdjwt`] | re-exported from `ari_core`: the documents and their offline verification, pure |
//! | ground | [`clock`] | Unix seconds, the one notion of time |
//! | | [`config`] | the daemon's TOML configuration, strictly checked |
//! | | [`metrics`] | counters and latency histograms, read by `arictl metrics` |
//! | | [`publish`] | the publish directory: static files for verifiers, replaced atomically |
//! | decision | [`policy`] | the payment decision: constraints, autonomy levels, budgets; pure, no I/O |
//! | key stores | [`backend`] | one trait; [`backend::pkcs11`] drives a PKCS#11 token on a session pool, [`backend::tpm`] a TPM 2.0 through one owner thread (its layers: the public face, the owner, objects, quotes, faults); `backend::memory`, for tests only (feature `memory-backend`), keeps keys in memory |
//! | identity | [`identity`] | agents, selectors, the registry that matches callers, certificates |
//! | | [`peer`] | the kernel's account of a caller: credentials, the pinned process, its measurement |
//! | durable state | [`store`] | SQLite state with versioned migrations |
//! | | [`ledger`] | the group-committing writer for money and the log, the log's tables and export pages, and the proofs its commits mint |
//! | | [`archive`] | the evidence log read straight from a copy of the state database, for offline exports |
//! | | [`seal`] | signed output withheld until its entry is durable; the service's only way to sign |
//! | serving | [`protocol`] | JSON-RPC 2.0 framing and the wire contract in types: each method's params and result, the error codes |
//! | | [`error`] | the service error type and its one mapping to wire errors |
//! | | [`client`] | a blocking client that calls methods by type |
//! | | [`service`] | the methods, one file per domain: from a parsed call to its typed result |
//! | | [`server`] | socket listeners, connections and their limits, shutdown; hands lines to the service |
//! | | [`daemon`] | start-up and shutdown of the whole daemon |
//! | verifier | [`verifier`] | the offline verifier's memory of TPMs: clocks and counters seen per attestation key |
//! | tools | `tools` | only with the cargo feature `tools` (on by default), outside the daemon: `tools::dev` (dev mode on a throwaway token or a software TPM), `tools::swtpm` (a software TPM on loopback ports), `tools::bench` (the `arictl bench` measurements), `tools::assets` (man pages and completions) |
//!
//! ## Invariants that hold across modules
//!
//! - Private keys are generated inside the key store and never leave it; no method signs bytes
//!   chosen by an agent: every signed document is built by the daemon.
//! - A caller on the agent socket is identified by the kernel and `/proc`, never by what it says.
//! - Bad input gets a typed error on the wire and never stops the daemon.

pub mod archive;
pub mod backend;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod error;
pub mod identity;
pub mod ledger;
pub mod metrics;
pub mod peer;
pub mod policy;
pub mod protocol;
pub mod publish;
pub mod seal;
pub mod server;
pub mod service;
pub mod store;
#[cfg(feature = "tools")]
pub mod tools;
pub mod verifier;

// The formats and their verification live in `ari_core`; the daemon builds and signs with the
// same types, under the same paths.
pub use ari_core::{
    ap2, attest, condition, evidence, jose, keyset, mandate, merkle, payment, sdjwt, voucher,
};

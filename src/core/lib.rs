//! # ARI core: the formats and their verification
//!
//! `ari_core` holds every document ARI signer emits and everything a third party needs to check
//! one offline: a merchant checking a payment authorization, a payment provider checking the
//! voucher chain behind it, an auditor replaying the evidence log. The daemon (`ari`) builds
//! and signs with these same types, so what it signs and what a verifier reads cannot drift.
//!
//! The crate is pure: it never does I/O beyond reading an export directory it is pointed at,
//! never reads a clock (callers pass `now`), and depends on no async runtime, database, PKCS#11
//! or TSS library. It builds for `wasm32-unknown-unknown`.
//!
//! ## Map of the crate
//!
//! | module | concept |
//! | --- | --- |
//! | [`jose`] | ES256 JWK/JWS encoding and verification, base64url |
//! | [`merkle`] | the RFC 9162 Merkle tree: roots, inclusion and consistency proofs and their checks |
//! | [`condition`] | the condition language of L4 vouchers: parsing and evaluation on facts |
//! | [`voucher`] | delegation vouchers: claims, constraints, narrowing, chains, and their status in an IETF Token Status List |
//! | [`payment`] | payment authorizations (closed mandates) and receipts, verified offline |
//! | [`attest`] | runtime attestations and bundles; [`attest::tpm`] checks TPM quotes and certifications |
//! | [`evidence`] | evidence entries, the Merkle tree, checkpoints, statements, key rotations, export verification |
//! | [`keyset`] | JWK Sets of every public key a verifier needs, with roles and validity windows |
//! | [`mandate`] | AP2 v0.2 open and closed payment mandates, their constraints and units, and the A2P2 limits beside them |
//! | [`sdjwt`] | SD-JWT (RFC 9901) disclosures and the delegation chains of AP2 mandates, verified |
//! | [`ap2`] | AP2 v0.2 merchant checkout JWTs and payment receipts, verified, and the hashes that bind them to mandates |
//!
//! ## Checking a payment
//!
//! A merchant holding a receipt (the `~~`-joined mandate chain, its authorization and voucher
//! segments, and the attestation bundle) and the public keys of the voucher issuers it trusts
//! (a bare AP2 chain of any issuer is [`mandate::verify_chain`]'s):
//!
//! ```
//! use ari_core::jose::PublicKey;
//! use ari_core::payment::{self, Receipt};
//!
//! fn accept(
//!     receipt: &str,
//!     issuers: &[PublicKey],
//!     now: i64,
//! ) -> Result<payment::Verified, Box<dyn std::error::Error>> {
//!     let receipt: Receipt = serde_json::from_str(receipt)?;
//!     Ok(payment::verify(&receipt, issuers, None, now)?)
//! }
//! # assert!(accept("{}", &[], 0).is_err());
//! ```
//!
//! ## What holds across modules
//!
//! - Verification never says yes to something no signature covers; every failure names the
//!   check that failed.
//! - Parsing untrusted bytes never panics (the lints deny `unwrap`, `expect`, `panic` and
//!   slice indexing; fuzz targets exercise every parser).

pub mod ap2;
pub mod attest;
pub mod condition;
pub mod evidence;
pub mod jose;
pub mod keyset;
pub mod mandate;
pub mod merkle;
pub mod payment;
pub mod sdjwt;
pub mod voucher;

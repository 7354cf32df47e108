//! The evidence chain: every fact the daemon vouches for (agents provisioned and frozen,
//! vouchers issued and revoked, payment decisions and their outcomes, agents' own statements)
//! becomes an entry of an append-only log that anyone holding the log key can check offline.
//!
//! The log is an RFC 9162 Merkle tree ([`crate::merkle`]); its checkpoints are signed by the daemon's log
//! key, so a verifier who has seen one checkpoint can demand proof that every later one extends
//! it, and that a given entry is in it.

pub mod checkpoint;
pub mod entry;
pub mod export;
pub mod note;
pub mod proof;
pub mod rotation;
pub mod statement;
pub mod tiles;
pub mod witness;

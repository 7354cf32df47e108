//! Tooling around the daemon, outside its public surface: what a developer, a benchmark or a
//! packager needs and a deployed daemon never runs on its own.
//!
//! | module | concept |
//! | --- | --- |
//! | [`dev`] | dev mode: a daemon on a throwaway SoftHSM2 token, or on a software TPM |
//! | [`swtpm`] | a software TPM (`swtpm`) on loopback ports, for dev mode, tests and benchmarks |
//! | [`bench`](mod@bench) | the `arictl bench` measurements, each against a same-run baseline |
//! | [`assets`] | man pages and shell completions generated from the command lines |
//!
//! Compiled only with the cargo feature `tools` (on by default; the binaries need it). A crate
//! that embeds the daemon library with `default-features = false` gets none of it. Nothing in
//! the daemon's own modules may depend on these: the dependencies point from here to the daemon,
//! never back. Secrets here (dev PINs, software TPM state) sit next to what they protect: none of
//! it is meant for production keys.

pub mod assets;
pub mod bench;
pub mod dev;
pub mod swtpm;

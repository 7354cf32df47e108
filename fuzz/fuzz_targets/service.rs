//! The whole request handler: `Service::handle_line`, from the bytes of a line to the bytes of
//! its answer, over a fresh daemon state per input (SQLite store, ledger and evidence log in a
//! temporary directory, keys in the library's in-memory key store, `ari::backend::memory`).
//!
//! The input is lines; each line's first byte picks the socket — `a` the agent socket, anything
//! else the admin socket — and the rest is the wire line. The caller is this process (root), so
//! an agent provisioned with `"uid":0` is the caller on the agent socket. Properties: every
//! answer is one JSON line; no call panics.
//!
//! Inputs that mention `wait_ms` are skipped: `payment.status` may then legitimately wait for a
//! decision, which libFuzzer would report as a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 16 * 1024 || data.windows(7).any(|w| w == b"wait_ms") {
        return;
    }
    ari_fuzz::service::run_lines(data);
});

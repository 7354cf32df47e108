//! The integration tests: the real `arid` and `arictl` binaries on real SoftHSM2 tokens and
//! software TPMs, real sockets and real processes, with the files the package installs (systemd
//! units, udev rules) checked by their own tools. What needs none of these is tested in-process
//! next to the code (`src/service/tests/` drives the service on an in-memory key store).
//!
//! One test binary, one module per concern, so the library is linked once instead of once per
//! file. A test is named `module::test`; run one family with a filter, e.g.
//! `cargo test --test daemon payment::`, or several: `cargo test --test daemon agent_flow::
//! voucher::`. Tests that run a test of this binary again in a child process (to give it its
//! own environment, or to play another process) name it with [`common::test_name`].
//!
//! The Debian package test (`tests/package.rs`) is a binary of its own: it runs a release
//! build of the whole crate through `.ci/package`, which should not share the two cores with
//! the tests here that bound memory or count answers under load.

mod common;

mod agent_flow;
mod backend;
mod bench;
mod cli;
mod console;
mod evidence;
mod faults;
mod hostile;
mod keys;
mod keyset;
mod lifecycle;
mod malformed;
mod mandate;
mod payment;
mod publication;
mod python_client;
mod status;
mod systemd;
mod tpm;
mod tpm_wire;
mod udev;
mod views;
mod voucher;

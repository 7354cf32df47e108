//! What the service knows about whoever sent a call: the socket it came in on, the kernel's
//! credentials, the process pinned to the connection and its cached measurement, and whether the
//! connection must end after the answer.
//!
//! The service defines this and the server fills it in when it accepts a connection, so the
//! dependency runs one way (server to service). Nothing here comes from what the client sends;
//! it never reads or writes the socket itself.

use crate::peer::{MeasurementCache, PeerCred, Pin};
use crate::protocol::Role;
use tokio::sync::watch;

/// What the service knows about a connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// Which socket it came in on.
    pub role: Role,
    /// Kernel credentials at connect time.
    pub cred: PeerCred,
    /// The process that opened the connection, for the connection's whole life.
    pub pin: Pin,
    /// The peer's last full measurement, revalidated on every call (see
    /// [`crate::peer::PeerMeter`]).
    pub measured: MeasurementCache,
    /// Set once a call's answer must be the connection's last.
    closing: watch::Sender<bool>,
}

impl ConnInfo {
    /// A connection from `cred` on the `role` socket, pinned to whoever holds `cred.pid` now
    /// (for callers without a socket: tests, fuzzing; the server pins the process that
    /// connected, [`ConnInfo::pinned`]).
    pub fn new(role: Role, cred: PeerCred) -> Self {
        Self::pinned(role, cred, Pin::current(cred))
    }

    /// A connection from `cred` on the `role` socket, pinned to `pin`.
    pub fn pinned(role: Role, cred: PeerCred, pin: Pin) -> Self {
        Self {
            role,
            cred,
            pin,
            measured: MeasurementCache::default(),
            closing: watch::Sender::new(false),
        }
    }

    /// Closes the connection once the calls already running are answered (this one's
    /// included); lines not yet read are not.
    pub fn close_after_answer(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`ConnInfo::close_after_answer`] was called.
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        // The sender lives in `self`, so this only ends when the flag is set.
        let _ = rx.wait_for(|closing| *closing).await;
    }
}

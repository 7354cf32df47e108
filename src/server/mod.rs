//! The socket servers: accept loops for the agent and admin sockets, and shutdown.
//!
//! The connection cap is a semaphore whose permit is taken *before* `accept`, so past the cap
//! new clients wait in the kernel's listen backlog instead of costing the daemon memory. Each
//! connection task holds its permit until it ends. [`run`] returns once shutdown was signalled
//! and every connection has drained (or the grace period ran out).

pub mod connection;
pub mod peer;

use crate::config::Limits;
use crate::protocol::Role;
use crate::service::Service;
use peer::PeerCred;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// What the server knows about a connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// Which socket it came in on.
    pub role: Role,
    /// Kernel credentials at connect time.
    pub cred: PeerCred,
    /// The peer's last full measurement, revalidated on every call (see [`peer::PeerMeter`]).
    pub measured: peer::MeasurementCache,
}

impl ConnInfo {
    /// A connection from `cred` on the `role` socket, not yet measured.
    pub fn new(role: Role, cred: PeerCred) -> Self {
        Self {
            role,
            cred,
            measured: peer::MeasurementCache::default(),
        }
    }
}

/// A shutdown signal that every task can wait on.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side of [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A new signal pair.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Signals every waiter.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown is signalled (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown has been signalled.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

/// Grows or shrinks a connection cap. Shrinking takes permits as connections end, in the
/// background, and forgets them.
fn resize(cap: &Arc<Semaphore>, from: usize, to: usize) {
    if to > from {
        cap.add_permits(to - from);
    } else if from > to {
        let cap = cap.clone();
        let fewer = u32::try_from(from - to).unwrap_or(u32::MAX);
        tokio::spawn(async move {
            if let Ok(p) = cap.acquire_many_owned(fewer).await {
                p.forget();
            }
        });
    }
}

/// The task serving `stream` as a connection on the `role` socket, holding `permit`; `None`
/// (logged) if the kernel has no credentials for its peer, so it is dropped.
fn connection_task(
    stream: tokio::net::UnixStream,
    role: Role,
    service: &Arc<Service>,
    limits: &watch::Receiver<Limits>,
    shutdown: &Shutdown,
    permit: OwnedSemaphorePermit,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let cred = match stream.peer_cred() {
        Ok(c) => PeerCred {
            pid: c.pid().unwrap_or(0),
            uid: c.uid(),
            gid: c.gid(),
        },
        Err(e) => {
            tracing::warn!(socket = role.name(), error = %e, "no peer credentials; connection dropped");
            return None;
        }
    };
    Some(connection::serve(
        stream,
        ConnInfo::new(role, cred),
        service.clone(),
        limits.clone(),
        shutdown.clone(),
        permit,
    ))
}

/// Accepts and serves connections on `listener` until shutdown, then drains.
///
/// `limits` may change while serving (a reload): the connection cap follows it (lowering it
/// closes no connection; new ones wait until enough have ended), and each connection reads the
/// line limits and deadlines afresh for every line.
pub async fn run(
    listener: UnixListener,
    role: Role,
    service: Arc<Service>,
    mut limits: watch::Receiver<Limits>,
    mut shutdown: Shutdown,
) {
    let mut max_connections = limits.borrow_and_update().max_connections;
    let cap = Arc::new(Semaphore::new(max_connections));
    let mut tasks = JoinSet::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Ok(()) = limits.changed() => {
                let wanted = limits.borrow_and_update().max_connections;
                resize(&cap, max_connections, wanted);
                max_connections = wanted;
                continue;
            }
            p = cap.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let stream = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(socket = role.name(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        if let Some(task) = connection_task(stream, role, &service, &limits, &shutdown, permit) {
            tasks.spawn(task);
        }
    }
    // Connections the kernel already queued when shutdown came are taken too, so their calls
    // are answered `shutting_down` (retryable) rather than the peer seeing a reset.
    while let Ok(permit) = cap.clone().try_acquire_owned()
        && let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(1), listener.accept()).await
    {
        if let Some(task) = connection_task(stream, role, &service, &limits, &shutdown, permit) {
            tasks.spawn(task);
        }
    }
    drop(listener);
    let grace = Duration::from_millis(limits.borrow().shutdown_grace_ms);
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            socket = role.name(),
            remaining = tasks.len(),
            "grace period over; dropping connections"
        );
        tasks.abort_all();
    }
}

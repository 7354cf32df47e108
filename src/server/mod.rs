//! The socket servers: accept loops for the agent and admin sockets, and shutdown. The server
//! depends on the service (it hands it each line with the caller's [`ConnInfo`]), never the
//! other way round.
//!
//! The connection cap is a semaphore whose permit is taken *before* `accept`, so past the cap
//! new clients wait in the kernel's listen backlog instead of costing the daemon memory. Each
//! connection task holds its permit until it ends. Within the cap each uid has a share
//! ([`quota`]): a connection from a uid that already holds `limits.max_connections_per_uid` is
//! answered `busy` and closed right after `accept`, giving its permit back at once, so a user
//! who opens connections without end only ever holds its share and the moment of each refusal.
//! [`run`] returns once shutdown was signalled and every connection has drained (or the grace
//! period ran out).

pub mod connection;
pub mod quota;

use crate::config::Limits;
use crate::peer::{PeerCred, Pin};
use crate::protocol::Role;
use crate::service::{ConnInfo, Service};
use quota::UidQuota;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// The connection just accepted on `socket`, on the `role` socket, pinned to the process that
/// connected.
fn accepted(role: Role, socket: &tokio::net::UnixStream) -> std::io::Result<ConnInfo> {
    let c = socket.peer_cred()?;
    let cred = PeerCred {
        pid: c.pid().unwrap_or(0),
        uid: c.uid(),
        gid: c.gid(),
    };
    Ok(ConnInfo::pinned(role, cred, Pin::accepted(socket, cred)))
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

/// The task serving `stream` as a connection on the `role` socket, holding `permit` and a slot
/// of its uid's share in `quota`; `None` if it is not served: the kernel has no credentials for
/// its peer (logged), or its uid holds its share already (answered `busy`). The stream and the
/// permit are then dropped at once.
fn connection_task(
    stream: tokio::net::UnixStream,
    role: Role,
    service: &Arc<Service>,
    limits: &watch::Receiver<Limits>,
    shutdown: &Shutdown,
    permit: OwnedSemaphorePermit,
    quota: &UidQuota,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let info = match accepted(role, &stream) {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(socket = role.name(), error = %e, "no peer credentials; connection dropped");
            return None;
        }
    };
    let share = limits.borrow().max_connections_per_uid;
    let Some(slot) = quota.try_take(info.cred.uid, share) else {
        let uid = info.cred.uid;
        tracing::debug!(
            socket = role.name(),
            uid,
            pid = info.cred.pid,
            share,
            "uid over its connection share; refused"
        );
        crate::metrics::metrics().refused_uid_share(role.name());
        let msg = format!(
            "uid {uid} already holds {share} connections to this socket (limits.max_connections_per_uid); close one or retry later"
        );
        // Written straight to the descriptor (tokio's readiness for a stream it has just
        // accepted may not be known yet). The socket is non-blocking, so this never waits; its
        // send buffer is empty, so the short line goes out whole (at worst the peer misses the
        // explanation).
        let answer = connection::closing_error(crate::protocol::ErrorCode::Busy, &msg);
        if let Ok(stream) = stream.into_std() {
            let _ = std::io::Write::write_all(&mut &stream, &answer);
        }
        return None;
    };
    Some(connection::serve(
        stream,
        info,
        service.clone(),
        limits.clone(),
        shutdown.clone(),
        permit,
        slot,
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
    let quota = UidQuota::new();
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
        if let Some(task) =
            connection_task(stream, role, &service, &limits, &shutdown, permit, &quota)
        {
            tasks.spawn(task);
        }
    }
    // Connections the kernel already queued when shutdown came are taken too, so their calls
    // are answered `shutting_down` (retryable) rather than the peer seeing a reset.
    while let Ok(permit) = cap.clone().try_acquire_owned()
        && let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(1), listener.accept()).await
    {
        if let Some(task) =
            connection_task(stream, role, &service, &limits, &shutdown, permit, &quota)
        {
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

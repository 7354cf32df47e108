//! Connections per uid: one user cannot hold every connection of a socket.
//!
//! The socket's connection cap (`limits.max_connections`) bounds what all clients together cost;
//! it does not say who gets the connections. Without a share per user, any uid allowed to open
//! the socket could hold every connection idle and leave registered agents waiting in the listen
//! backlog. A [`UidQuota`] counts the open connections of each uid on one socket; a connection is
//! served only while it holds a [`UidSlot`], and the slot gives its count back when dropped,
//! however the connection task ends (a panic, or an abort after the shutdown grace period,
//! included). A uid over its share is answered and closed at once by the accept loop, so it
//! never holds one of the socket's connection permits for longer than that answer.
//!
//! Both sockets apply it, each with a count of its own. On the agent socket any user with access
//! to the socket is a stranger until measured. On the admin socket only operators get in (the
//! socket's file mode), but one operator's runaway script must not lock the others out of the
//! socket they would use to freeze an agent. Root is counted like everyone else: a runaway
//! client is as likely to run as root, and a root process that needs more can be given more by
//! raising the cap (a reload applies it). The cap is read for each new connection, so lowering
//! it closes nothing: a uid above the new cap is refused until enough of its connections have
//! ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Open connections by uid, for one socket.
#[derive(Debug, Default, Clone)]
pub struct UidQuota(Arc<Mutex<HashMap<u32, usize>>>);

/// One open connection of `uid`, counted until dropped.
#[derive(Debug)]
pub struct UidSlot {
    quota: UidQuota,
    uid: u32,
}

impl UidQuota {
    /// An empty count.
    pub fn new() -> Self {
        Self::default()
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<u32, usize>> {
        // The map is consistent after any completed statement, so a panic elsewhere while
        // holding the lock leaves nothing half done.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more connection of `uid`, or `None` if it already holds `cap`.
    pub fn try_take(&self, uid: u32, cap: usize) -> Option<UidSlot> {
        let mut counts = self.counts();
        let held = counts.entry(uid).or_insert(0);
        if *held >= cap {
            return None;
        }
        *held += 1;
        Some(UidSlot {
            quota: self.clone(),
            uid,
        })
    }

    /// The connections `uid` holds.
    pub fn held(&self, uid: u32) -> usize {
        self.counts().get(&uid).copied().unwrap_or(0)
    }

    /// How many uids hold at least one connection.
    pub fn uids(&self) -> usize {
        self.counts().len()
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut counts = self.quota.counts();
        if let Some(held) = counts.get_mut(&self.uid) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_uid_gets_its_share_and_slots_give_it_back() {
        let quota = UidQuota::new();
        let mut alice: Vec<UidSlot> = (0..3).map(|_| quota.try_take(1000, 3).unwrap()).collect();
        assert!(
            quota.try_take(1000, 3).is_none(),
            "a fourth is over the cap"
        );
        assert_eq!(quota.held(1000), 3);
        // Another uid is not affected, root included.
        let bob = quota.try_take(1001, 3).unwrap();
        let root = quota.try_take(0, 3).unwrap();
        assert_eq!((quota.held(1001), quota.held(0)), (1, 1));
        // A lower cap (a reload) refuses new ones without touching those open.
        assert!(quota.try_take(1001, 1).is_none());
        assert_eq!(quota.held(1001), 1);
        drop(alice.pop());
        assert_eq!(quota.held(1000), 2);
        assert!(
            quota.try_take(1000, 3).is_some(),
            "room again once one ended"
        );
        assert_eq!(quota.held(1000), 2, "that slot was dropped at once");
        drop((bob, root));
        assert_eq!(quota.uids(), 1, "uids without connections are forgotten");
    }

    #[test]
    fn a_slot_is_given_back_when_its_task_panics() {
        let quota = UidQuota::new();
        let slot = quota.try_take(7, 1).unwrap();
        let task = std::thread::spawn(move || {
            let _slot = slot;
            #[allow(clippy::panic)]
            {
                panic!("the connection task failed");
            }
        });
        assert!(task.join().is_err());
        assert_eq!(quota.held(7), 0);
        assert!(quota.try_take(7, 1).is_some());
    }
}

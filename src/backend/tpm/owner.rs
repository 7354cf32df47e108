//! The one thread that owns the ESAPI context.
//!
//! Every TPM command is sent from this thread: [`Actor::run`] takes jobs from the bounded queue
//! the backend fills and answers each through its [`Reply`]. Quote requests that wait in the
//! queue together are answered by one TPM2_Quote. A failed call is recovered from once per
//! cause, as its [`Remedy`] says (reconnect, flush and reload, start the TPM, wait and retry);
//! what cannot be mended is answered at once. The thread never blocks on anything but the TPM
//! and its queue, and never answers a job twice.

use super::fault::{Fault, Remedy, TpmError};
use super::object::{Loaded, Obj};
use super::quote::pcr_selection;
use super::{AkInfo, BackendError, Counters, KeyId, KeyInfo, Quote, Reply, TpmOptions};
use crate::merkle::Hash;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tss_esapi::Context;
use tss_esapi::constants::CapabilityType;
use tss_esapi::constants::tss::TPM2_TRANSIENT_FIRST;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::structures::{Auth, CapabilityData, PcrSelectionList, Public};
use tss_esapi::tcti_ldr::TctiNameConf;

/// One request for the owner thread.
pub(super) enum Job {
    Generate {
        reply: Reply<KeyInfo>,
    },
    Describe {
        id: KeyId,
        reply: Reply<KeyInfo>,
    },
    Sign {
        id: KeyId,
        digest: [u8; 32],
        reply: Reply<[u8; 64]>,
    },
    Destroy {
        id: KeyId,
        reply: Reply<()>,
    },
    Quote {
        binding: Hash,
        reply: Reply<Quote>,
    },
    Ak {
        reply: Reply<AkInfo>,
    },
}

/// The owner of the ESAPI context and of everything the TPM holds for the daemon.
pub(super) struct Actor {
    pub(super) opts: TpmOptions,
    /// `None` after the connection was lost, until the next job connects again.
    ctx: Option<Context>,
    /// The objects loaded now, least recently used first to go.
    pub(super) loaded: Vec<Loaded>,
    /// A clock for `loaded`: bumped on every use of an object.
    pub(super) tick: u64,
    pub(super) pcr_selection: PcrSelectionList,
    /// The PCR values last read (index order) and their digest.
    pub(super) pcr_cache: Option<(Vec<[u8; 32]>, [u8; 32])>,
    /// The AK's public area, once derived.
    pub(super) ak: Option<Public>,
    pub(super) counters: Arc<Counters>,
}

impl Actor {
    /// Checks the options, connects, and derives the AK once, so a TPM that cannot serve is
    /// known before the daemon starts.
    pub(super) fn start(opts: TpmOptions, counters: Arc<Counters>) -> Result<Self, BackendError> {
        TctiNameConf::from_str(&opts.tcti).map_err(|code| {
            BackendError::Unavailable(
                TpmError::Tcti {
                    tcti: opts.tcti.clone(),
                    code,
                }
                .to_string(),
            )
        })?;
        let mut actor = Actor {
            pcr_selection: pcr_selection(&opts.pcrs)
                .map_err(|e| BackendError::Failed(e.to_string()))?,
            opts,
            ctx: None,
            loaded: Vec::new(),
            tick: 0,
            pcr_cache: None,
            ak: None,
            counters,
        };
        actor.recovering("start", |a| a.ak_public().map(drop))?;
        Ok(actor)
    }

    /// Serves jobs until every sender is gone. Quote requests are held while other work is
    /// waiting, for a few rounds at most, so the payments that arrive meanwhile join the same
    /// quote; everything else is served in arrival order.
    pub(super) fn run(mut self, rx: crossbeam_channel::Receiver<Job>) {
        const ROUNDS: usize = 4;
        let size = self.opts.quote_batch.max(1);
        while let Ok(first) = rx.recv() {
            let mut quotes = Vec::new();
            let mut next = Some(first);
            for _ in 0..ROUNDS {
                let mut served = false;
                let mut taken = 0;
                while taken < 256
                    && let Some(job) = next.take().or_else(|| rx.try_recv().ok())
                {
                    taken += 1;
                    match job {
                        Job::Quote { binding, reply } => quotes.push((binding, reply)),
                        other => {
                            self.serve(other);
                            served = true;
                        }
                    }
                    if quotes.len() >= size {
                        break;
                    }
                }
                // Holding quotes only pays while other work keeps the TPM busy.
                if !served || quotes.len() >= size || size == 1 {
                    break;
                }
            }
            while !quotes.is_empty() {
                let rest = quotes.split_off(size.min(quotes.len()));
                self.quote_batch(std::mem::replace(&mut quotes, rest));
            }
        }
        self.flush_all();
    }

    fn serve(&mut self, job: Job) {
        // A reply whose caller has gone away is dropped; the work is done either way.
        match job {
            Job::Generate { reply } => {
                reply.send(self.recovering("create", Actor::generate));
            }
            Job::Describe { id, reply } => {
                reply.send(self.recovering("load", |a| a.describe(&id)));
            }
            Job::Sign { id, digest, reply } => {
                reply.send(self.recovering("sign", |a| a.sign(&id, &digest)));
            }
            Job::Destroy { id, reply } => {
                self.forget(&Obj::Key(id));
                reply.send(Ok(()));
            }
            Job::Ak { reply } => {
                reply.send(self.recovering("read the AK", Actor::ak_info));
            }
            Job::Quote { binding, reply } => self.quote_batch(vec![(binding, reply)]),
        }
    }

    /// Runs `op`, recovering once from a lost connection, lost objects or a reset TPM.
    pub(super) fn recovering<T>(
        &mut self,
        what: &str,
        op: impl Fn(&mut Self) -> Result<T, Fault>,
    ) -> Result<T, BackendError> {
        let mut last = None;
        for _ in 0..3 {
            if self.ctx.is_none()
                && let Err(f) = self.connect()
            {
                return Err(f.into_error());
            }
            let (remedy, error) = match op(self) {
                Ok(v) => return Ok(v),
                Err(Fault::Call { remedy, error }) => (remedy, error),
                Err(f @ Fault::KeyNotFound(_)) => return Err(f.into_error()),
            };
            match remedy {
                Remedy::GiveUp | Remedy::LockedOut => {
                    return Err(Fault::Call { remedy, error }.into_error());
                }
                Remedy::Reconnect => {
                    tracing::warn!(call = what, %error, "lost the TPM; reconnecting");
                    self.disconnect();
                }
                Remedy::Reload => {
                    tracing::warn!(call = what, %error, "TPM objects lost; flushing and reloading");
                    self.flush_all();
                }
                Remedy::Startup => {
                    tracing::warn!(call = what, %error, "the TPM was reset; starting it");
                    if let Some(ctx) = self.ctx.as_mut() {
                        self.counters.commands.fetch_add(1, Ordering::Relaxed);
                        let _ = ctx.startup(tss_esapi::constants::StartupType::Clear);
                    }
                    self.loaded.clear();
                }
                Remedy::Retry => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
            last = Some(Fault::Call { remedy, error });
        }
        Err(last.map_or_else(
            || BackendError::Unavailable(format!("{what}: the TPM did not answer")),
            Fault::into_error,
        ))
    }

    fn connect(&mut self) -> Result<(), Fault> {
        let tcti = TctiNameConf::from_str(&self.opts.tcti).map_err(|code| TpmError::Tcti {
            tcti: self.opts.tcti.clone(),
            code,
        })?;
        let mut ctx = Context::new(tcti).map_err(|code| Fault::Call {
            remedy: Remedy::Reconnect,
            error: TpmError::Open {
                tcti: self.opts.tcti.clone(),
                code,
            },
        })?;
        for (hierarchy, auth) in [
            (Hierarchy::Owner, &self.opts.owner_auth),
            (Hierarchy::Endorsement, &self.opts.endorsement_auth),
        ] {
            if let Some(a) = auth {
                let auth = Auth::try_from(a.to_vec()).map_err(Fault::local("hierarchy auth"))?;
                ctx.tr_set_auth(hierarchy.into(), auth)
                    .map_err(Fault::local("hierarchy auth"))?;
            }
        }
        self.ctx = Some(ctx);
        self.loaded.clear();
        self.pcr_cache = None;
        // Without a resource manager, objects a previous process left loaded fill the TPM.
        self.flush_leftovers()?;
        Ok(())
    }

    fn disconnect(&mut self) {
        self.ctx = None;
        self.loaded.clear();
    }

    /// The context, for one TPM command (counted).
    pub(super) fn ctx(&mut self) -> Result<&mut Context, Fault> {
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
        self.local_ctx()
    }

    /// The context, for a call that stays in ESAPI (not counted).
    pub(super) fn local_ctx(&mut self) -> Result<&mut Context, Fault> {
        self.ctx.as_mut().ok_or(Fault::Call {
            remedy: Remedy::Reconnect,
            error: TpmError::NotConnected,
        })
    }

    fn flush_leftovers(&mut self) -> Result<(), Fault> {
        let (data, _) = self
            .ctx()?
            .get_capability(CapabilityType::Handles, TPM2_TRANSIENT_FIRST, 64)
            .map_err(Fault::command("TPM2_GetCapability"))?;
        let CapabilityData::Handles(handles) = data else {
            return Ok(());
        };
        for h in handles.iter().copied() {
            let ctx = self.ctx()?;
            if let Ok(obj) = ctx.tr_from_tpm_public(h) {
                ctx.flush_context(obj)
                    .map_err(Fault::command("TPM2_FlushContext"))?;
            }
        }
        Ok(())
    }

    /// Flushes every object loaded; they are loaded again when needed.
    pub(super) fn flush_all(&mut self) {
        let loaded = std::mem::take(&mut self.loaded);
        if let Some(ctx) = self.ctx.as_mut() {
            for l in loaded {
                self.counters.commands.fetch_add(1, Ordering::Relaxed);
                let _ = ctx.flush_context(l.handle.into());
            }
        }
    }

    /// Flushes `obj` if it is loaded.
    pub(super) fn forget(&mut self, obj: &Obj) {
        if let Some(pos) = self.loaded.iter().position(|l| &l.obj == obj) {
            let l = self.loaded.swap_remove(pos);
            if let Some(ctx) = self.ctx.as_mut() {
                self.counters.commands.fetch_add(1, Ordering::Relaxed);
                let _ = ctx.flush_context(l.handle.into());
            }
        }
    }
}

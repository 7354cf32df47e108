//! The service's error type and the one place errors become wire errors.
//!
//! Every failure a request can meet ends up as an [`Error`]; [`Error::to_rpc`] is the only
//! function that chooses a wire code. Details that help an attacker or leak internals (token
//! error texts, SQL errors) are logged here and replaced by a plain sentence for the caller.
//! A failure that is the daemon's own ([`Internal`]) keeps its typed cause for that log line;
//! the caller only hears that there was one.

use crate::backend::BackendError;
use crate::evidence::checkpoint::CheckpointError;
use crate::identity::MatchError;
use crate::identity::certificate::CertificateError;
use crate::jose::JoseError;
use crate::policy::Reason;
use crate::protocol::{ErrorCode, RpcError};
use crate::store::StoreError;
use std::sync::Arc;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The params are malformed or out of range.
    #[error("{0}")]
    InvalidParams(String),
    /// The caller is not a (single) registered agent.
    #[error(transparent)]
    Caller(#[from] MatchError),
    /// The caller's process could not be measured: it exited, or its pid now belongs to
    /// another process than the one that opened the connection.
    #[error("the calling process could not be measured")]
    Unmeasurable(#[source] crate::peer::PeerError),
    /// The caller may not do this here.
    #[error("{0}")]
    Forbidden(String),
    /// No agent has this id.
    #[error("no agent {0:?}")]
    AgentNotFound(String),
    /// The id or the selectors are taken.
    #[error("{0}")]
    AgentExists(String),
    /// The agent's status forbids the operation.
    #[error("{0}")]
    InvalidState(String),
    /// A certificate problem.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The key store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No voucher has this id.
    #[error("no voucher {0:?}")]
    VoucherNotFound(String),
    /// A payment (or delegation) was refused by the policy; `decision` names the recorded
    /// decision when there is one.
    #[error("{denial}")]
    Denied {
        denial: crate::policy::Denial,
        decision: Option<String>,
    },
    /// A delegation widens its parent or is malformed.
    #[error("{0}")]
    Widens(String),
    /// No decision with this id belongs to the caller.
    #[error("no payment decision {0:?}")]
    DecisionNotFound(String),
    /// A voucher from outside does not verify or is not the caller's.
    #[error("{0}")]
    UntrustedVoucher(String),
    /// The issuer name or key is taken.
    #[error("{0}")]
    IssuerExists(String),
    /// No evidence entry there.
    #[error("{0}")]
    EntryNotFound(String),
    /// No checkpoint covers it yet.
    #[error("{0}")]
    NotYetCheckpointed(String),
    /// A witness refused the checkpoint, or answered with something that does not verify.
    #[error("{0}")]
    WitnessRefused(String),
    /// A witness could not be reached.
    #[error("{0}")]
    WitnessUnreachable(String),
    /// A checkout JWT no registered merchant signed, or one that does not match the payment.
    #[error("{0}")]
    CheckoutRefused(String),
    /// A payment receipt no registered provider signed for this payment.
    #[error("{0}")]
    ReceiptRefused(String),
    /// The daemon is stopping.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A signed output and the proof offered for its release do not match: a bug, and the
    /// output does not leave.
    #[error(transparent)]
    Release(#[from] crate::seal::ReleaseError),
    /// A failure that is the daemon's, not the caller's.
    #[error("internal error: {0}")]
    Internal(#[from] Internal),
    /// The failure of work this call shared with others (statements signed together): on
    /// the wire, the same failure for each of them.
    #[error(transparent)]
    Shared(Arc<Error>),
}

/// A failure on the daemon's side that the caller can do nothing about: a broken invariant, a
/// document of its own it could not encode, a failed task or system call. Logged with its
/// cause; the caller is told only that it happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Internal {
    /// A document the daemon built could not be encoded as JSON; names the document.
    #[error("{what} does not encode as JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A JWS the daemon builds could not be prepared, or one it stored could not be read;
    /// names the document.
    #[error("{what}: {source}")]
    Jose {
        what: &'static str,
        #[source]
        source: JoseError,
    },
    /// A checkpoint could not be written as a note, or the newest signed one does not verify
    /// under the log key; says which.
    #[error("{what}: {source}")]
    Checkpoint {
        what: &'static str,
        #[source]
        source: CheckpointError,
    },
    /// An entry of the daemon's own evidence log does not read back.
    #[error("evidence entry {index} is unreadable: {source}")]
    Entry {
        index: u64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file of the publish directory could not be written.
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
    /// The voucher status list could not be built.
    #[error("the voucher status list: {0}")]
    StatusList(#[from] crate::voucher::status::StatusError),
    /// The system's random number generator failed.
    #[error("no randomness: {0}")]
    Randomness(#[source] getrandom::Error),
    /// A blocking state task panicked or was cancelled.
    #[error("state task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The task that signs statements has stopped.
    #[error("the statement signer has stopped")]
    SignerStopped,
    /// A daemon key the service needs was not loaded at start; names its role.
    #[error("no {0} key")]
    NoDaemonKey(String),
    /// Something the code guarantees did not hold; says what.
    #[error("{0}")]
    Invariant(&'static str),
}

impl From<crate::publish::PublishError> for Error {
    fn from(e: crate::publish::PublishError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::voucher::status::StatusError> for Error {
    fn from(e: crate::voucher::status::StatusError) -> Self {
        Self::Internal(e.into())
    }
}

impl Internal {
    /// For `map_err`: `what` could not be encoded as JSON.
    pub fn json(what: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::Json { what, source }
    }

    /// For `map_err`: a JWS step on `what` failed.
    pub fn jose(what: &'static str) -> impl FnOnce(JoseError) -> Self {
        move |source| Self::Jose { what, source }
    }

    /// For `map_err`: a checkpoint step, `what`, failed.
    pub fn checkpoint(what: &'static str) -> impl FnOnce(CheckpointError) -> Self {
        move |source| Self::Checkpoint { what, source }
    }
}

impl Error {
    /// The wire error for this failure. Logs what the caller is not told.
    pub fn to_rpc(&self) -> RpcError {
        use ErrorCode as C;
        match self {
            Self::InvalidParams(m) => RpcError::new(C::InvalidParams, m.clone()),
            Self::Caller(MatchError::Frozen(id)) => RpcError::new(
                C::AgentFrozen,
                format!("agent {id} is frozen by an operator"),
            ),
            Self::Caller(e) => RpcError::new(C::UnknownCaller, e.to_string()),
            Self::Unmeasurable(why) => {
                tracing::warn!(%why, "caller could not be measured");
                RpcError::new(
                    C::UnknownCaller,
                    "the calling process could not be measured",
                )
            }
            Self::Forbidden(m) => RpcError::new(C::Forbidden, m.clone()),
            Self::AgentNotFound(id) => RpcError::new(C::AgentNotFound, format!("no agent {id:?}")),
            Self::AgentExists(m) => RpcError::new(C::AgentExists, m.clone()),
            Self::InvalidState(m) => RpcError::new(C::InvalidState, m.clone()),
            Self::Certificate(CertificateError::Mismatch) => {
                RpcError::new(C::CertificateMismatch, self.to_string())
            }
            Self::Certificate(
                e @ (CertificateError::Encode(_)
                | CertificateError::PublicKey(_)
                | CertificateError::Signature),
            ) => {
                tracing::error!(error = %e, "certificate encoding failed");
                RpcError::new(C::InternalError, "internal error; see the daemon log")
            }
            Self::Certificate(e) => RpcError::new(C::InvalidParams, e.to_string()),
            Self::Backend(BackendError::Busy) => {
                RpcError::new(C::Busy, "all signing sessions are busy; retry shortly")
            }
            Self::Backend(BackendError::Unavailable(why)) => {
                tracing::error!(%why, "key store unavailable");
                RpcError::new(C::BackendUnavailable, "the key store is unavailable")
            }
            Self::Backend(e) => {
                tracing::error!(error = %e, "key store failed");
                RpcError::new(
                    C::BackendError,
                    "the key store failed the operation; see the daemon log",
                )
            }
            Self::Store(StoreError::Busy) => {
                RpcError::new(C::Busy, "the ledger is busy; retry shortly")
            }
            Self::Store(e) => {
                tracing::error!(error = %e, "state database failed");
                RpcError::new(
                    C::StorageError,
                    "the state database failed; nothing was changed",
                )
            }
            Self::VoucherNotFound(id) => {
                RpcError::new(C::VoucherNotFound, format!("no voucher {id:?}"))
            }
            Self::Denied { denial, decision } => {
                RpcError::new(denial_code(denial.reason), denial.detail.clone())
                    .with_decision(decision.clone())
            }
            Self::Widens(m) => RpcError::new(C::VoucherWidens, m.clone()),
            Self::Release(e) => {
                tracing::error!(error = %e, "a signed output was withheld");
                RpcError::new(C::InternalError, "internal error; see the daemon log")
            }
            Self::EntryNotFound(m) => RpcError::new(C::EntryNotFound, m.clone()),
            Self::NotYetCheckpointed(m) => RpcError::new(C::NotYetCheckpointed, m.clone()),
            Self::WitnessRefused(m) => RpcError::new(C::WitnessRefused, m.clone()),
            Self::WitnessUnreachable(m) => RpcError::new(C::WitnessUnreachable, m.clone()),
            Self::CheckoutRefused(m) => RpcError::new(C::CheckoutRefused, m.clone()),
            Self::ReceiptRefused(m) => RpcError::new(C::ReceiptRefused, m.clone()),
            Self::DecisionNotFound(id) => {
                RpcError::new(C::DecisionNotFound, format!("no payment decision {id:?}"))
            }
            Self::UntrustedVoucher(m) => RpcError::new(C::UntrustedVoucher, m.clone()),
            Self::IssuerExists(m) => RpcError::new(C::IssuerExists, m.clone()),
            Self::ShuttingDown => RpcError::new(C::ShuttingDown, "the daemon is shutting down"),
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                RpcError::new(C::InternalError, "internal error; see the daemon log")
            }
            Self::Shared(e) => e.to_rpc(),
        }
    }
}

/// The wire code of each policy reason.
fn denial_code(reason: Reason) -> ErrorCode {
    use ErrorCode as C;
    match reason {
        Reason::AgentFrozen => C::AgentFrozen,
        Reason::VoucherRevoked => C::VoucherRevoked,
        Reason::VoucherNotYetValid => C::VoucherNotYetValid,
        Reason::VoucherExpired => C::VoucherExpired,
        Reason::UnknownConstraint => C::UnknownConstraint,
        Reason::LevelForbidsPayment => C::LevelForbidsPayment,
        Reason::ReportOverdue => C::ReportOverdue,
        Reason::CurrencyMismatch => C::CurrencyMismatch,
        Reason::AmountOutOfRange => C::AmountOutOfRange,
        Reason::PayeeNotAllowed => C::PayeeNotAllowed,
        Reason::CategoryNotAllowed => C::CategoryNotAllowed,
        Reason::OutsideExecutionDate => C::OutsideExecutionDate,
        Reason::ConditionFailed => C::ConditionFailed,
        Reason::PaymentsExhausted => C::PaymentsExhausted,
        Reason::BudgetExhausted => C::BudgetExhausted,
        Reason::DuplicateTransaction => C::DuplicateTransaction,
        Reason::RejectedByOperator => C::RejectedByOperator,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn json_failure() -> serde_json::Error {
        serde_json::from_str::<u8>("not json").unwrap_err()
    }

    #[test]
    fn an_internal_failure_keeps_its_cause_for_the_log_and_not_for_the_caller() {
        let e = Error::from(Internal::json("a statement")(json_failure()));
        let rpc = e.to_rpc();
        assert_eq!(rpc.data.reason, ErrorCode::InternalError.reason());
        assert_eq!(rpc.message, "internal error; see the daemon log");
        // Error -> Internal -> serde_json::Error.
        let internal = std::error::Error::source(&e).unwrap();
        let cause = internal.source().unwrap();
        assert!(cause.downcast_ref::<serde_json::Error>().is_some());
        assert!(
            e.to_string()
                .contains("a statement does not encode as JSON")
        );
    }

    #[test]
    fn a_shared_failure_is_answered_as_the_failure_itself() {
        let failures = [
            Error::Backend(BackendError::Busy),
            Error::Backend(BackendError::Unavailable("gone".into())),
            Error::Backend(BackendError::Failed("refused".into())),
            Error::Store(StoreError::Busy),
            Error::Store(StoreError::NotFound),
            Error::Internal(Internal::SignerStopped),
            Error::Internal(Internal::Invariant("an empty batch of statements")),
        ];
        for e in failures {
            let alone = e.to_rpc();
            let shared = Arc::new(e);
            for _ in 0..2 {
                assert_eq!(Error::Shared(shared.clone()).to_rpc(), alone, "{shared}");
            }
        }
    }

    #[test]
    fn every_policy_reason_has_the_same_name_on_the_wire() {
        for r in Reason::ALL {
            assert_eq!(denial_code(*r).reason(), r.name());
        }
    }
}

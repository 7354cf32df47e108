//! The method table: every method's name, the socket (role) that serves it, and the types of
//! its params and result. A method name is written here and nowhere else in the daemon.

use super::agent::{
    AgentList, AgentParam, AgentView, AttestParams, Attestation, CertImportParams, CertImported,
    Csr, CsrParams, ProvisionParams, Retired,
};
use super::counterparty::{
    Counterparty, CounterpartyList, CounterpartyListParams, CounterpartyParams, CounterpartyRef,
    CounterpartyRemoved,
};
use super::daemon::{MetricsText, NoParams, Status, TpmAk};
use super::evidence::{
    CheckpointParams, ConsistencyParams, ConsistencyProof, Entry, EntryParams, ExportParams,
    FollowParams, Followed, InclusionParams, RecordParams, RecordedStatement, SignedCheckpoint,
    WitnessParams, Witnessed,
};
use super::keys::{RotateParams, Rotated};
use super::payment::{
    Authorization, AuthorizeParams, DecisionParam, DecisionView, PaymentList, PaymentListParams,
    RejectParams, ReportParams, StatusParams,
};
use super::spending::{Spending, SpendingParams};
use super::voucher::{
    DelegateParams, Delegated, IssueParams, IssuerAdded, IssuerList, IssuerParams, IssuerRemoved,
    NameParam, StatusListToken, VoucherList, VoucherListParams, VoucherParam, VoucherRevoked,
    VoucherView,
};
use crate::evidence::export::{InclusionProof, Page};
use crate::keyset::KeySet;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Which socket a method is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The agent socket: callers are agent runtimes, identified by their process.
    Agent,
    /// The admin socket: callers are operators, identified by uid or group.
    Admin,
}

impl Role {
    /// `agent` or `admin`, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Admin => "admin",
        }
    }
}

/// Where a method is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// Only on the agent socket.
    Agent,
    /// Only on the admin socket.
    Admin,
    /// On both: reads of public facts (the evidence log's proofs and checkpoints).
    Both,
}

impl Surface {
    /// Whether a caller on `role`'s socket may call it.
    pub fn serves(self, role: Role) -> bool {
        matches!(
            (self, role),
            (Self::Both, _) | (Self::Agent, Role::Agent) | (Self::Admin, Role::Admin)
        )
    }

    /// `agent`, `admin` or `agent and admin`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Admin => "admin",
            Self::Both => "agent and admin",
        }
    }
}

/// One method of the protocol: its name, and the types of its params and of its result.
///
/// Implemented by the marker types in [`call`], one per [`Method`], all written by the table
/// below: the daemon decodes `Params` and answers `Result`, the Rust client sends the one and
/// reads the other, and the protocol document is checked against both.
pub trait Call {
    /// The method.
    const METHOD: Method;
    /// Its params object.
    type Params: Serialize + DeserializeOwned;
    /// Its result.
    type Result: Serialize + DeserializeOwned;
}

/// Something that looks at every method's types, for tests.
#[cfg(test)]
pub(super) trait VisitCall {
    /// Looks at method `C`, whose params and result have samples.
    fn visit<C>(&mut self)
    where
        C: Call,
        C::Params: super::sample::Sample,
        C::Result: super::sample::Sample;
}

macro_rules! methods {
    ($($variant:ident => $name:literal, $role:ident, $params:ty => $result:ty;)*) => {
        /// Every method of the protocol.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Method {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Method {
            /// Every method, in table order.
            pub const ALL: &'static [Method] = &[$(Self::$variant),*];

            /// The wire name.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }

            /// The sockets that serve it.
            pub fn surface(self) -> Surface {
                match self { $(Self::$variant => Surface::$role,)* }
            }
        }

        /// One marker type per method, carrying its params and result types ([`Call`]).
        pub mod call {
            use super::*;
            $(
                #[doc = concat!("`", $name, "`: [`", stringify!($params), "`] in, [`", stringify!($result), "`] out.")]
                #[derive(Debug, Clone, Copy, PartialEq, Eq)]
                pub struct $variant;

                impl Call for $variant {
                    const METHOD: Method = Method::$variant;
                    type Params = $params;
                    type Result = $result;
                }
            )*
        }

        /// Shows every method's marker to `visitor`, in table order (the protocol document's
        /// test walks the table with it).
        #[cfg(test)]
        pub(super) fn visit_calls(visitor: &mut impl VisitCall) {
            $(visitor.visit::<call::$variant>();)*
        }
    };
}

methods! {
    AgentIdentity => "agent.identity", Agent, NoParams => AgentView;
    AgentAttest => "agent.attest", Agent, AttestParams => Attestation;
    AdminStatus => "admin.status", Admin, NoParams => Status;
    AdminAgentProvision => "admin.agent_provision", Admin, ProvisionParams => AgentView;
    AdminAgentList => "admin.agent_list", Admin, NoParams => AgentList;
    AdminAgentShow => "admin.agent_show", Admin, AgentParam => AgentView;
    AdminAgentFreeze => "admin.agent_freeze", Admin, AgentParam => AgentView;
    AdminAgentUnfreeze => "admin.agent_unfreeze", Admin, AgentParam => AgentView;
    AdminAgentRetire => "admin.agent_retire", Admin, AgentParam => Retired;
    AdminAgentCsr => "admin.agent_csr", Admin, CsrParams => Csr;
    AdminAgentCertImport => "admin.agent_cert_import", Admin, CertImportParams => CertImported;
    AdminVoucherIssue => "admin.voucher_issue", Admin, IssueParams => VoucherView;
    AdminVoucherList => "admin.voucher_list", Admin, VoucherListParams => VoucherList;
    AdminVoucherShow => "admin.voucher_show", Admin, VoucherParam => VoucherView;
    AdminVoucherRevoke => "admin.voucher_revoke", Admin, VoucherParam => VoucherRevoked;
    AdminVoucherImport => "admin.voucher_import", Admin, VoucherParam => VoucherView;
    AdminVoucherStatusList => "admin.voucher_status_list", Admin, NoParams => StatusListToken;
    AdminIssuerAdd => "admin.issuer_add", Admin, IssuerParams => IssuerAdded;
    AdminIssuerList => "admin.issuer_list", Admin, NoParams => IssuerList;
    AdminIssuerRemove => "admin.issuer_remove", Admin, NameParam => IssuerRemoved;
    AdminCounterpartyAdd => "admin.counterparty_add", Admin, CounterpartyParams => Counterparty;
    AdminCounterpartyList => "admin.counterparty_list", Admin, CounterpartyListParams => CounterpartyList;
    AdminCounterpartyRemove => "admin.counterparty_remove", Admin, CounterpartyRef => CounterpartyRemoved;
    AdminPaymentList => "admin.payment_list", Admin, PaymentListParams => PaymentList;
    AdminPaymentShow => "admin.payment_show", Admin, DecisionParam => DecisionView;
    AdminPaymentConfirm => "admin.payment_confirm", Admin, DecisionParam => DecisionView;
    AdminPaymentReject => "admin.payment_reject", Admin, RejectParams => DecisionView;
    AdminSpending => "admin.spending", Admin, SpendingParams => Spending;
    VoucherDelegate => "voucher.delegate", Agent, DelegateParams => Delegated;
    PaymentAuthorize => "payment.authorize", Agent, AuthorizeParams => Authorization;
    PaymentStatus => "payment.status", Agent, StatusParams => DecisionView;
    PaymentReport => "payment.report", Agent, ReportParams => DecisionView;
    EvidenceRecord => "evidence.record", Agent, RecordParams => RecordedStatement;
    EvidenceCheckpoint => "evidence.checkpoint", Both, CheckpointParams => SignedCheckpoint;
    EvidenceInclusion => "evidence.inclusion", Both, InclusionParams => InclusionProof;
    EvidenceConsistency => "evidence.consistency", Both, ConsistencyParams => ConsistencyProof;
    EvidenceEntry => "evidence.entry", Both, EntryParams => Entry;
    AdminLogExport => "admin.log_export", Admin, ExportParams => Page;
    AdminLogFollow => "admin.log_follow", Admin, FollowParams => Followed;
    AdminLogWitness => "admin.log_witness", Admin, WitnessParams => Witnessed;
    AdminTpmAk => "admin.tpm_ak", Admin, NoParams => TpmAk;
    AdminMetrics => "admin.metrics", Admin, NoParams => MetricsText;
    AdminKeysExport => "admin.keys_export", Admin, NoParams => KeySet;
    AdminKeysRotate => "admin.keys_rotate", Admin, RotateParams => Rotated;
}

impl std::fmt::Display for Method {
    /// The wire name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Method {
    /// Looks a method up by its wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }
}

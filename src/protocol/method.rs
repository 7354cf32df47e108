//! The method table: every method's name and the socket (role) that serves it.

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

macro_rules! methods {
    ($($variant:ident => $name:literal, $role:ident;)*) => {
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
    };
}

methods! {
    AgentIdentity => "agent.identity", Agent;
    AgentAttest => "agent.attest", Agent;
    AdminStatus => "admin.status", Admin;
    AdminAgentProvision => "admin.agent_provision", Admin;
    AdminAgentList => "admin.agent_list", Admin;
    AdminAgentShow => "admin.agent_show", Admin;
    AdminAgentFreeze => "admin.agent_freeze", Admin;
    AdminAgentUnfreeze => "admin.agent_unfreeze", Admin;
    AdminAgentRetire => "admin.agent_retire", Admin;
    AdminAgentCsr => "admin.agent_csr", Admin;
    AdminAgentCertImport => "admin.agent_cert_import", Admin;
    AdminVoucherIssue => "admin.voucher_issue", Admin;
    AdminVoucherList => "admin.voucher_list", Admin;
    AdminVoucherShow => "admin.voucher_show", Admin;
    AdminVoucherRevoke => "admin.voucher_revoke", Admin;
    AdminVoucherImport => "admin.voucher_import", Admin;
    AdminVoucherRevocations => "admin.voucher_revocations", Admin;
    AdminIssuerAdd => "admin.issuer_add", Admin;
    AdminIssuerList => "admin.issuer_list", Admin;
    AdminIssuerRemove => "admin.issuer_remove", Admin;
    AdminPaymentList => "admin.payment_list", Admin;
    AdminPaymentShow => "admin.payment_show", Admin;
    AdminPaymentConfirm => "admin.payment_confirm", Admin;
    AdminPaymentReject => "admin.payment_reject", Admin;
    VoucherDelegate => "voucher.delegate", Agent;
    PaymentAuthorize => "payment.authorize", Agent;
    PaymentStatus => "payment.status", Agent;
    PaymentReport => "payment.report", Agent;
    EvidenceRecord => "evidence.record", Agent;
    EvidenceCheckpoint => "evidence.checkpoint", Both;
    EvidenceInclusion => "evidence.inclusion", Both;
    EvidenceConsistency => "evidence.consistency", Both;
    EvidenceEntry => "evidence.entry", Both;
    AdminLogExport => "admin.log_export", Admin;
    AdminTpmAk => "admin.tpm_ak", Admin;
    AdminMetrics => "admin.metrics", Admin;
}

impl Method {
    /// Looks a method up by its wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }
}

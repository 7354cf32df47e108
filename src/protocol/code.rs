//! The table of error codes: number, stable reason name, and whether a retry may succeed.

/// Every error a client can receive. The numbers and reasons are stable; messages are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The line is not JSON (or not UTF-8).
    ParseError,
    /// The JSON is not a valid JSON-RPC 2.0 call.
    InvalidRequest,
    /// No method of that name exists.
    MethodNotFound,
    /// The params do not match the method's parameters.
    InvalidParams,
    /// A fault inside the daemon; details are in its log.
    InternalError,
    /// The caller's process matches no agent (or more than one).
    UnknownCaller,
    /// The caller is an agent that an operator has frozen.
    AgentFrozen,
    /// The caller may not call this method on this socket.
    Forbidden,
    /// No agent has that id.
    AgentNotFound,
    /// An agent with that id, or with the same selectors, already exists.
    AgentExists,
    /// The agent's status does not allow the operation (e.g. unfreezing an active agent).
    InvalidState,
    /// The certificate does not certify the agent's key.
    CertificateMismatch,
    /// The line is longer than the daemon accepts; the connection is closed after this error.
    LineTooLong,
    /// The rest of a line did not arrive in time; the connection is closed after this error.
    ReadTimeout,
    /// The signing queue is full; try again shortly.
    Busy,
    /// The key store (token or TPM) cannot be reached right now.
    BackendUnavailable,
    /// The key store refused or failed the operation.
    BackendError,
    /// The state database could not be read or written; nothing was signed.
    StorageError,
    /// The daemon is stopping and takes no new calls.
    ShuttingDown,
    /// No voucher has that id.
    VoucherNotFound,
    /// A delegation would widen its parent voucher, or breaks its format.
    VoucherWidens,
    /// No payment decision has that id (for this caller).
    DecisionNotFound,
    /// The voucher does not verify against a registered issuer, or is not for this agent.
    UntrustedVoucher,
    /// An issuer with that name or key is already registered.
    IssuerExists,
    /// Payment denied: a voucher in the chain is revoked.
    VoucherRevoked,
    /// Payment denied: a voucher in the chain is not valid yet.
    VoucherNotYetValid,
    /// Payment denied: a voucher in the chain has expired.
    VoucherExpired,
    /// Payment denied: a voucher carries a constraint this daemon does not understand.
    UnknownConstraint,
    /// Payment denied: the autonomy level (L0, L1, or none) never signs payments.
    LevelForbidsPayment,
    /// Payment denied: an earlier authorization on the voucher was not reported in time.
    ReportOverdue,
    /// Payment denied: the payment's currency is not the voucher's.
    CurrencyMismatch,
    /// Payment denied: the amount is outside the voucher's range.
    AmountOutOfRange,
    /// Payment denied: the payee is not allowed.
    PayeeNotAllowed,
    /// Payment denied: the category is not allowed (or none was named).
    CategoryNotAllowed,
    /// Payment denied: outside the voucher's execution dates.
    OutsideExecutionDate,
    /// Payment denied: a condition does not hold or cannot be decided.
    ConditionFailed,
    /// Payment denied: the voucher's payment count is used up.
    PaymentsExhausted,
    /// Payment denied: the amount does not fit in what is left of the budget.
    BudgetExhausted,
    /// Payment denied: this checkout is already authorized or pending on the voucher.
    DuplicateTransaction,
    /// Payment denied: an operator rejected the pending payment.
    RejectedByOperator,
    /// No evidence entry at that index, or a tree size beyond the log.
    EntryNotFound,
    /// No signed checkpoint covers the entry or size yet; retry shortly.
    NotYetCheckpointed,
    /// A witness refused to cosign the checkpoint (stale, inconsistent, unknown log, bad answer).
    WitnessRefused,
    /// A witness could not be reached or did not answer in time; retry later.
    WitnessUnreachable,
    /// A merchant's checkout JWT is not one a registered merchant signed, or does not match
    /// the payment.
    CheckoutRefused,
    /// A payment provider's receipt is not one a registered provider signed for this payment.
    ReceiptRefused,
}

impl ErrorCode {
    /// Every code, in table order.
    pub const ALL: &'static [ErrorCode] = &[
        Self::ParseError,
        Self::InvalidRequest,
        Self::MethodNotFound,
        Self::InvalidParams,
        Self::InternalError,
        Self::UnknownCaller,
        Self::AgentFrozen,
        Self::Forbidden,
        Self::AgentNotFound,
        Self::AgentExists,
        Self::InvalidState,
        Self::CertificateMismatch,
        Self::LineTooLong,
        Self::ReadTimeout,
        Self::Busy,
        Self::BackendUnavailable,
        Self::BackendError,
        Self::StorageError,
        Self::ShuttingDown,
        Self::VoucherNotFound,
        Self::VoucherWidens,
        Self::DecisionNotFound,
        Self::UntrustedVoucher,
        Self::IssuerExists,
        Self::VoucherRevoked,
        Self::VoucherNotYetValid,
        Self::VoucherExpired,
        Self::UnknownConstraint,
        Self::LevelForbidsPayment,
        Self::ReportOverdue,
        Self::CurrencyMismatch,
        Self::AmountOutOfRange,
        Self::PayeeNotAllowed,
        Self::CategoryNotAllowed,
        Self::OutsideExecutionDate,
        Self::ConditionFailed,
        Self::PaymentsExhausted,
        Self::BudgetExhausted,
        Self::DuplicateTransaction,
        Self::RejectedByOperator,
        Self::EntryNotFound,
        Self::NotYetCheckpointed,
        Self::WitnessRefused,
        Self::WitnessUnreachable,
        Self::CheckoutRefused,
        Self::ReceiptRefused,
    ];

    /// The JSON-RPC `code` number.
    pub fn code(self) -> i64 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::InternalError => -32603,
            Self::UnknownCaller => -32001,
            Self::AgentFrozen => -32002,
            Self::Forbidden => -32003,
            Self::AgentNotFound => -32004,
            Self::AgentExists => -32005,
            Self::InvalidState => -32006,
            Self::CertificateMismatch => -32007,
            Self::LineTooLong => -32008,
            Self::ReadTimeout => -32009,
            Self::Busy => -32010,
            Self::BackendUnavailable => -32011,
            Self::BackendError => -32012,
            Self::StorageError => -32013,
            Self::ShuttingDown => -32014,
            Self::VoucherNotFound => -32015,
            Self::VoucherWidens => -32016,
            Self::DecisionNotFound => -32017,
            Self::UntrustedVoucher => -32018,
            Self::IssuerExists => -32019,
            Self::VoucherRevoked => -32020,
            Self::VoucherNotYetValid => -32021,
            Self::VoucherExpired => -32022,
            Self::UnknownConstraint => -32023,
            Self::LevelForbidsPayment => -32024,
            Self::ReportOverdue => -32025,
            Self::CurrencyMismatch => -32026,
            Self::AmountOutOfRange => -32027,
            Self::PayeeNotAllowed => -32028,
            Self::CategoryNotAllowed => -32029,
            Self::OutsideExecutionDate => -32030,
            Self::ConditionFailed => -32031,
            Self::PaymentsExhausted => -32032,
            Self::BudgetExhausted => -32033,
            Self::DuplicateTransaction => -32034,
            Self::RejectedByOperator => -32035,
            Self::EntryNotFound => -32036,
            Self::NotYetCheckpointed => -32037,
            Self::WitnessRefused => -32038,
            Self::WitnessUnreachable => -32039,
            Self::CheckoutRefused => -32040,
            Self::ReceiptRefused => -32041,
        }
    }

    /// The stable name carried in `error.data.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::ParseError => "parse_error",
            Self::InvalidRequest => "invalid_request",
            Self::MethodNotFound => "method_not_found",
            Self::InvalidParams => "invalid_params",
            Self::InternalError => "internal_error",
            Self::UnknownCaller => "unknown_caller",
            Self::AgentFrozen => "agent_frozen",
            Self::Forbidden => "forbidden",
            Self::AgentNotFound => "agent_not_found",
            Self::AgentExists => "agent_exists",
            Self::InvalidState => "invalid_state",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::LineTooLong => "line_too_long",
            Self::ReadTimeout => "read_timeout",
            Self::Busy => "busy",
            Self::BackendUnavailable => "backend_unavailable",
            Self::BackendError => "backend_error",
            Self::StorageError => "storage_error",
            Self::ShuttingDown => "shutting_down",
            Self::VoucherNotFound => "voucher_not_found",
            Self::VoucherWidens => "voucher_widens",
            Self::DecisionNotFound => "decision_not_found",
            Self::UntrustedVoucher => "untrusted_voucher",
            Self::IssuerExists => "issuer_exists",
            Self::VoucherRevoked => "voucher_revoked",
            Self::VoucherNotYetValid => "voucher_not_yet_valid",
            Self::VoucherExpired => "voucher_expired",
            Self::UnknownConstraint => "unknown_constraint",
            Self::LevelForbidsPayment => "level_forbids_payment",
            Self::ReportOverdue => "report_overdue",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::AmountOutOfRange => "amount_out_of_range",
            Self::PayeeNotAllowed => "payee_not_allowed",
            Self::CategoryNotAllowed => "category_not_allowed",
            Self::OutsideExecutionDate => "outside_execution_date",
            Self::ConditionFailed => "condition_failed",
            Self::PaymentsExhausted => "payments_exhausted",
            Self::BudgetExhausted => "budget_exhausted",
            Self::DuplicateTransaction => "duplicate_transaction",
            Self::RejectedByOperator => "rejected_by_operator",
            Self::EntryNotFound => "entry_not_found",
            Self::NotYetCheckpointed => "not_yet_checkpointed",
            Self::WitnessRefused => "witness_refused",
            Self::WitnessUnreachable => "witness_unreachable",
            Self::CheckoutRefused => "checkout_refused",
            Self::ReceiptRefused => "receipt_refused",
        }
    }

    /// Whether sending the same call again later may succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::Busy
                | Self::BackendUnavailable
                | Self::StorageError
                | Self::ShuttingDown
                | Self::NotYetCheckpointed
                | Self::WitnessUnreachable
        )
    }

    /// The code with the given reason name.
    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.reason() == reason)
    }
}

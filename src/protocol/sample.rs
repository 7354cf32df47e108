//! TESTS ONLY: a fully populated value of every params and result type, for the protocol
//! document's test (`document.rs`) to list their members.
//!
//! Every optional member is present and every list holds one element, so that serializing a
//! sample shows every member the type can carry; an enum gives one sample per variant. The
//! samples are struct literals: a member added to a type does not compile here until it is
//! given a value, and then the document must describe it.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use super::Call;
use super::agent::{
    AgentKey, AgentList, AgentParam, AgentView, AttestParams, Attestation, CertImportParams,
    CertImported, Csr, CsrParams, ProvisionParams, Retired,
};
use super::counterparty::{
    Counterparty, CounterpartyList, CounterpartyListParams, CounterpartyParams, CounterpartyRef,
    CounterpartyRemoved, CounterpartyRole,
};
use super::daemon::{
    DaemonKey, Health, LogStatus, MetricsText, NoParams, Queues, Status, TpmAk, TpmStatus,
};
use super::evidence::{
    CheckpointParams, ConsistencyParams, ConsistencyProof, Entry, EntryParams, ExportParams,
    FollowParams, Followed, InclusionParams, RecordParams, RecordedStatement, SignedCheckpoint,
    WitnessParams, Witnessed,
};
use super::keys::{DaemonRole, RotateParams, Rotated};
use super::payment::{
    Authorization, AuthorizeParams, Authorized, DecisionParam, DecisionStatus, DecisionView, Held,
    PaymentList, PaymentListParams, PaymentParams, RejectParams, ReportParams, StatusParams,
};
use super::spending::{
    Amounts, Hourly, Spending, SpendingParams, Totals, VoucherBalance, VoucherState,
};
use super::voucher::{
    DelegateParams, Delegated, IssueParams, Issuer, IssuerAdded, IssuerList, IssuerParams,
    IssuerRemoved, NameParam, StatusListToken, VoucherList, VoucherListParams, VoucherParam,
    VoucherRevoked, VoucherView,
};
use crate::attest::tpm::{BatchPath, Certification};
use crate::backend::{CounterValues, KeyAttributes, QueueDepth};
use crate::evidence::export::{InclusionProof, Page, PageCheckpoint};
use crate::identity::certificate::CertificateSummary;
use crate::identity::{AgentStatus, Selectors};
use crate::jose::Jwk;
use crate::keyset::{self, KeySet, Member, Role};
use crate::ledger::{Outcome, PaymentStatus};
use crate::payment::Receipt;
use crate::store::VoucherStatus;
use crate::voucher::constraint::AutonomyLevel;
use serde_json::{Map, Value};

/// A type with fully populated samples.
pub(super) trait Sample: Sized + PartialEq + std::fmt::Debug {
    /// One value per shape the type takes (one per variant of an enum).
    fn samples() -> Vec<Self>;
}

/// Implements [`Sample`] by one value.
macro_rules! sample {
    ($($ty:ty => $value:expr;)*) => {
        $(impl Sample for $ty {
            fn samples() -> Vec<Self> {
                vec![$value]
            }
        })*
    };
}

fn text() -> String {
    "x".into()
}

fn jwk() -> Jwk {
    Jwk {
        kty: "EC".into(),
        crv: "P-256".into(),
        x: text(),
        y: text(),
        kid: Some(text()),
    }
}

fn totals() -> Totals {
    Totals {
        id: text(),
        user: Some(text()),
        status: Some(text()),
        amounts: vec![Amounts {
            currency: text(),
            today: 1,
            period: Some(1),
            lifetime: 1,
            held: 1,
        }],
        denials: [(text(), 1)].into_iter().collect(),
        pending: 1,
        overdue: 1,
    }
}

fn object() -> Map<String, Value> {
    Map::from_iter([(text(), Value::Bool(true))])
}

fn receipt() -> Receipt {
    Receipt {
        mandate: text(),
        authorization: text(),
        chain: vec![text()],
        attestation: text(),
        tlog_proof: Some(text()),
    }
}

fn agent_view() -> AgentView {
    AgentView {
        agent: text(),
        instance: text(),
        user: text(),
        status: AgentStatus::Active,
        selectors: Selectors {
            uid: 1,
            gid: Some(1),
            exe_sha256: Some(text()),
            cgroup: Some(text()),
        },
        key: AgentKey {
            kid: text(),
            jwk: jwk(),
            uri: text(),
            attributes: KeyAttributes::HARDWARE_RESIDENT,
            certification: Some(Certification {
                attest: text(),
                signature: text(),
                public: text(),
            }),
        },
        certificate: Some(text()),
        created_at: 1,
    }
}

fn voucher_view() -> VoucherView {
    VoucherView {
        id: text(),
        digest: text(),
        agent: text(),
        parent: Some(text()),
        status: VoucherStatus::Active,
        budget: Some(1),
        spent: 1,
        reserved: 1,
        payments: 1,
        issued_at: 1,
        expires_at: 1,
        compact: text(),
    }
}

fn decision_view() -> DecisionView {
    DecisionView {
        decision: text(),
        status: DecisionStatus::Authorized,
        reason: Some(text()),
        ledger_seq: 1,
        voucher: text(),
        agent: text(),
        amount: 1,
        currency: text(),
        payee: text(),
        category: Some(text()),
        transaction_id: text(),
        aud: text(),
        created_at: 1,
        decided_at: Some(1),
        report_deadline: Some(1),
        outcome: Some(Outcome::Succeeded),
        reference: Some(text()),
        receipt: Some(receipt()),
    }
}

impl Sample for DecisionView {
    fn samples() -> Vec<Self> {
        let without_receipt = DecisionView {
            receipt: None,
            ..decision_view()
        };
        vec![decision_view(), without_receipt]
    }
}

impl Sample for Authorization {
    fn samples() -> Vec<Self> {
        vec![
            Self::Authorized(Authorized {
                decision: text(),
                ledger_seq: 1,
                log_index: 1,
                receipt: receipt(),
            }),
            Self::PendingConfirmation(Held { decision: text() }),
        ]
    }
}

impl Sample for Status {
    fn samples() -> Vec<Self> {
        let queue = QueueDepth {
            waiting: 1,
            capacity: 1,
        };
        let health = [
            Health::Ok { probe_us: 1 },
            Health::Busy { detail: text() },
            Health::Error { detail: text() },
        ];
        health
            .into_iter()
            .map(|backend_health| Status {
                version: text(),
                backend: text(),
                backend_health,
                queues: Queues {
                    backend: queue,
                    ledger: queue,
                },
                boot_id: text(),
                config_sha256: text(),
                reloads: 1,
                started_at: 1,
                uptime_s: 1,
                agents: [(text(), 1)].into(),
                vouchers: [(VoucherStatus::Active, 1)].into(),
                evidence: LogStatus {
                    origin: text(),
                    entries: 1,
                    checkpoint_size: Some(1),
                    unsigned: 1,
                },
                daemon_keys: [(
                    text(),
                    DaemonKey {
                        kid: text(),
                        uri: text(),
                        jwk: jwk(),
                    },
                )]
                .into(),
                tpm: Some(TpmStatus {
                    ak: Some(text()),
                    counters: CounterValues::default(),
                }),
            })
            .collect()
    }
}

impl Sample for KeySet {
    fn samples() -> Vec<Self> {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let key =
            crate::jose::PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes())
                .unwrap();
        let mut member =
            Member::new(&key, Role::Agent, keyset::Status::Retired).window(Some(1), Some(2));
        member.ari_overlap_until = Some(3);
        member.ari_log_index = Some(4);
        member.ari_agent = Some(text());
        member.ari_instance = Some(text());
        member.ari_name = Some(text());
        vec![KeySet { keys: vec![member] }]
    }
}

sample! {
    RotateParams => RotateParams { role: DaemonRole::Log, overlap_s: Some(1) };
    Rotated => Rotated {
        role: DaemonRole::Issuer,
        old_kid: text(),
        kid: text(),
        jwk: jwk(),
        rotated_at: 1,
        overlap_until: 2,
        log_index: 3,
    };
    NoParams => NoParams {};
    AgentParam => AgentParam { agent: text() };
    AttestParams => AttestParams { nonce: text() };
    ProvisionParams => ProvisionParams {
        agent: text(),
        user: text(),
        uid: 1,
        gid: Some(1),
        exe_sha256: Some(text()),
        cgroup: Some(text()),
        rotate: true,
    };
    CsrParams => CsrParams { agent: text(), subject: text() };
    CertImportParams => CertImportParams { agent: text(), certificate: text() };
    AgentView => agent_view();
    AgentList => AgentList { agents: vec![agent_view()] };
    Attestation => Attestation {
        attestation: text(),
        kid: text(),
        bundle: text(),
        log_index: 1,
    };
    Retired => Retired {
        agent: text(),
        status: AgentStatus::Retired,
        key_destroyed: true,
    };
    Csr => Csr { agent: text(), csr: text(), log_index: 1 };
    CertImported => CertImported {
        agent: text(),
        certificate: CertificateSummary {
            subject: text(),
            issuer: text(),
            serial: text(),
            not_before: text(),
            not_after: text(),
        },
    };
    MetricsText => MetricsText { text: text() };
    TpmAk => TpmAk {
        kid: text(),
        jwk: jwk(),
        pem: text(),
        tpm_public: text(),
        ek_certificate: Some(text()),
    };
    IssueParams => IssueParams {
        agent: text(),
        level: AutonomyLevel::L3,
        currency: text(),
        min_amount: Some(1),
        max_amount: Some(1),
        budget: Some(1),
        max_payments: Some(1),
        period: Some(crate::mandate::Frequency::Monthly),
        payees: vec![text()],
        categories: vec![text()],
        funds_carrier: Some(text()),
        not_before: Some(1),
        expires_at: 1,
        report_within_s: Some(1),
        conditions: vec![text()],
        not_after_execution: Some(1),
        not_before_execution: Some(1),
    };
    VoucherListParams => VoucherListParams { agent: Some(text()) };
    VoucherParam => VoucherParam { voucher: text() };
    VoucherView => voucher_view();
    VoucherList => VoucherList { vouchers: vec![voucher_view()] };
    VoucherRevoked => VoucherRevoked { id: text(), status: VoucherStatus::Revoked };
    StatusListToken => StatusListToken {
        token: text(),
        uri: text(),
        file: text(),
        iat: 1,
        exp: 1,
        entries: 1,
        invalid: 1,
        suspended: 1,
    };
    IssuerParams => IssuerParams { name: text(), jwk: jwk() };
    NameParam => NameParam { name: text() };
    IssuerAdded => IssuerAdded { name: text(), kid: text() };
    IssuerList => IssuerList {
        issuers: vec![Issuer { name: text(), kid: text(), jwk: jwk(), own: true }],
    };
    IssuerRemoved => IssuerRemoved { name: text(), removed: true };
    CounterpartyParams => CounterpartyParams {
        role: CounterpartyRole::Merchant,
        name: text(),
        jwk: jwk(),
    };
    CounterpartyRef => CounterpartyRef { role: CounterpartyRole::Provider, name: text() };
    CounterpartyListParams => CounterpartyListParams { role: Some(CounterpartyRole::Merchant) };
    Counterparty => Counterparty {
        role: CounterpartyRole::Merchant,
        name: text(),
        kid: text(),
        jwk: jwk(),
    };
    CounterpartyList => CounterpartyList {
        counterparties: vec![Counterparty {
            role: CounterpartyRole::Provider,
            name: text(),
            kid: text(),
            jwk: jwk(),
        }],
    };
    CounterpartyRemoved => CounterpartyRemoved {
        role: CounterpartyRole::Merchant,
        name: text(),
        removed: true,
    };
    DelegateParams => DelegateParams {
        voucher: text(),
        agent: text(),
        constraints: vec![Value::Object(object())],
        a2p2: Some(crate::mandate::A2p2Limits {
            autonomy_level: text(),
            categories: vec![text()],
            report_within_s: Some(1),
            conditions: vec![text()],
            period_time_zone: Some(text()),
            budget_minor: Some(1),
        }),
        not_before: Some(1),
        expires_at: Some(1),
    };
    Delegated => Delegated { id: text(), digest: text(), voucher: text() };
    AuthorizeParams => AuthorizeParams {
        voucher: text(),
        payment: PaymentParams {
            amount: 1,
            currency: text(),
            payee: text(),
            category: Some(text()),
            transaction_id: Some(text()),
        },
        aud: text(),
        nonce: text(),
        facts: object(),
        proof: true,
        checkout_jwt: Some(text()),
    };
    DecisionParam => DecisionParam { decision: text() };
    RejectParams => RejectParams { decision: text(), note: Some(text()) };
    StatusParams => StatusParams { decision: text(), wait_ms: 1 };
    ReportParams => ReportParams {
        decision: text(),
        outcome: Outcome::Succeeded,
        reference: Some(text()),
        receipt_jwt: Some(text()),
        authorization: Some(text()),
    };
    PaymentListParams => PaymentListParams {
        status: Some(PaymentStatus::Authorized),
        voucher: Some(text()),
        limit: Some(1),
    };
    PaymentList => PaymentList { payments: vec![decision_view()] };
    RecordParams => RecordParams { kind: text(), body: object() };
    RecordedStatement => RecordedStatement {
        index: 1,
        leaf_hash: text(),
        statement: text(),
        signature: text(),
        batch: BatchPath { index: 1, size: 1, path: vec![text()] },
    };
    CheckpointParams => CheckpointParams { at_least: 1, wait_ms: 1 };
    SignedCheckpoint => SignedCheckpoint { origin: text(), size: 1, note: text(), vkeys: vec![text()] };
    InclusionParams => InclusionParams { index: 1, tree_size: Some(1) };
    WitnessParams => WitnessParams { url: text(), vkey: text(), size: Some(1) };
    Witnessed => Witnessed { witness: text(), size: 1, old: 1, time: 1, note: text() };
    InclusionProof => InclusionProof {
        index: 1,
        tree_size: 1,
        leaf_hash: Some(text()),
        hashes: vec![text()],
    };
    ConsistencyParams => ConsistencyParams { from: 1, to: Some(1) };
    ConsistencyProof => ConsistencyProof { from: 1, to: 1, hashes: vec![text()] };
    EntryParams => EntryParams { index: 1 };
    Entry => Entry { index: 1, kind: text(), leaf_hash: text(), entry: text() };
    ExportParams => ExportParams { from: 1, to: Some(1), limit: Some(1) };
    FollowParams => FollowParams { from: 1, wait_ms: Some(1), limit: Some(1) };
    Followed => Followed {
        size: 1,
        next: 1,
        entries: vec![crate::evidence::entry::Entry {
            v: 1,
            log: text(),
            index: 1,
            prev: text(),
            time: 1,
            kind: crate::evidence::entry::Kind::PaymentAuthorized,
            agent: Some(text()),
            user: Some(text()),
            runtime: Some(text()),
            fact: Value::Object(object()),
        }],
    };
    SpendingParams => SpendingParams {
        agent: Some(text()),
        user: Some(text()),
        day_start: Some(1),
    };
    Spending => Spending {
        now: 1,
        day_start: 1,
        vouchers: vec![VoucherBalance {
            id: text(),
            agent: text(),
            user: text(),
            parent: Some(text()),
            state: VoucherState::Active,
            level: Some(text()),
            currency: Some(text()),
            budget: Some(1),
            period: Some(text()),
            period_start: Some(1),
            spent: 1,
            held: 1,
            reserved: 1,
            remaining: Some(1),
            payments: 1,
            max_payments: Some(1),
            issued_at: 1,
            not_before: 1,
            expires_at: 1,
        }],
        agents: vec![totals()],
        users: vec![totals()],
        hourly: vec![Hourly { currency: text(), hour: 1, amount: 1 }],
    };
    Page => Page {
        origin: text(),
        from: 1,
        to: 1,
        end: 1,
        frontier: vec![text()],
        entries: vec![text()],
        checkpoints: vec![PageCheckpoint { size: 1, note: text() }],
        log_key: jwk(),
    };
}

/// Reads each sample back from what it serializes to, as a client does.
struct ReadBack;

impl ReadBack {
    fn check<T: Sample + serde::Serialize + serde::de::DeserializeOwned>(name: &str) {
        for sample in T::samples() {
            let value = serde_json::to_value(&sample).unwrap();
            let back: T = serde_json::from_value(value.clone())
                .unwrap_or_else(|e| panic!("{name}: {value} does not read back: {e}"));
            assert_eq!(back, sample, "{name}");
        }
    }
}

impl super::method::VisitCall for ReadBack {
    fn visit<C>(&mut self)
    where
        C: Call,
        C::Params: Sample,
        C::Result: Sample,
    {
        Self::check::<C::Params>(C::METHOD.name());
        Self::check::<C::Result>(C::METHOD.name());
    }
}

#[test]
fn every_params_and_result_reads_back_as_it_was_written() {
    super::method::visit_calls(&mut ReadBack);
}

//! The money SQL that ledger jobs run: what a chain of vouchers has used, debits (only from a
//! policy's `Allowed`), credits, reservations for delegations, revocations, and the payment
//! decisions with their states. Every writing function takes the job's [`Tx`], so it runs in a
//! ledger job's transaction and nowhere else; a schema trigger refuses any voucher whose spent
//! plus reserved would exceed its budget, as a last line behind the policy.

use super::Tx;
use crate::policy::Usage;
use crate::store::{StoreError, VoucherStatus};
use rusqlite::{Connection, OptionalExtension, params};

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} is out of range")))
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// What each voucher of `chain` has used so far; for one whose current period started at
/// `periods[i]`, also what it used in that period.
pub(crate) fn usage(
    tx: &Tx<'_>,
    chain: &[String],
    periods: &[Option<i64>],
    now: i64,
) -> Result<Vec<Usage>, StoreError> {
    let conn = tx.conn();
    let mut period = conn.prepare_cached(crate::store::PERIOD_USAGE)?;
    let mut row = conn.prepare_cached(
        "SELECT status, spent, reserved, payments,
                EXISTS (SELECT 1 FROM payment p
                        WHERE p.voucher_id = v.id AND p.status = 'authorized'
                          AND p.outcome IS NULL AND p.report_deadline IS NOT NULL
                          AND p.report_deadline < ?2)
         FROM voucher v WHERE id = ?1",
    )?;
    chain
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut u = row
                .query_row(params![id, now], |r| {
                    Ok(Usage {
                        revoked: r.get::<_, VoucherStatus>(0)? != VoucherStatus::Active,
                        spent: to_u64(r.get(1)?),
                        reserved: to_u64(r.get(2)?),
                        payments: to_u64(r.get(3)?),
                        overdue: r.get(4)?,
                        period_spent: 0,
                        period_payments: 0,
                    })
                })
                .optional()?
                .ok_or_else(|| StoreError::Corrupt(format!("voucher {id} is missing")))?;
            if let Some(start) = periods.get(i).copied().flatten() {
                let (spent, payments) = period.query_row(params![id, start], |r| {
                    Ok((to_u64(r.get(0)?), to_u64(r.get(1)?)))
                })?;
                u.period_spent = spent;
                u.period_payments = payments;
            }
            Ok(u)
        })
        .collect()
}

/// Proof that a payment's amount was debited in the current job, minted only from an
/// [`crate::policy::Allowed`] or a held payment's confirmation. By itself it proves nothing
/// durable: it goes into the authorization's [`Recorded`](super::Recorded) entry and comes out
/// of the commit in a [`Logged`](super::Logged), which is what releasing an authorization takes.
#[derive(Debug)]
pub struct Debited(());

/// Debits an allowed payment along its chain: one payment, `amount` minor units, moved into
/// every voucher's spending. Consumes the decision's proof, so one decision debits once.
pub fn debit_allowed(
    tx: &Tx<'_>,
    chain: &[String],
    amount: u64,
    _allowed: crate::policy::Allowed,
) -> Result<Debited, StoreError> {
    debit(tx.conn(), chain, amount, 1)?;
    Ok(Debited(()))
}

/// Moves a held (pending) payment to authorized; its amount was debited when it was held.
/// Returns `None` if it is not pending.
pub fn release_hold(
    tx: &Tx<'_>,
    id: &str,
    now: i64,
    report_deadline: Option<i64>,
) -> Result<Option<Debited>, StoreError> {
    let moved = set_payment_status(
        tx,
        id,
        &[PaymentStatus::Pending],
        PaymentStatus::Authorized,
        None,
        now,
        report_deadline,
    )?;
    Ok(moved.then_some(Debited(())))
}

/// Moves `amount` (and `count` payments) into spending along a chain (ids root first): every
/// voucher's `spent` grows; every ancestor's reservation for the next link shrinks by the same
/// amount, since that money is now spent rather than set aside. Private: a debit happens only
/// through [`debit_allowed`].
fn debit(conn: &Connection, chain: &[String], amount: u64, count: u64) -> Result<(), StoreError> {
    shift(conn, chain, to_i64(amount)?, to_i64(count)?)
}

/// Undoes [`debit`]: a failed, refunded, rejected or voided payment gives its amount back.
pub(crate) fn credit(
    tx: &Tx<'_>,
    chain: &[String],
    amount: u64,
    count: u64,
) -> Result<(), StoreError> {
    let conn = tx.conn();
    shift(conn, chain, -to_i64(amount)?, -to_i64(count)?)
}

fn shift(conn: &Connection, chain: &[String], amount: i64, count: i64) -> Result<(), StoreError> {
    let mut up = conn.prepare_cached(
        "UPDATE voucher SET spent = spent + ?2, payments = payments + ?3,
                reserved = reserved - CASE WHEN ?4 AND budget IS NOT NULL THEN ?2 ELSE 0 END
         WHERE id = ?1",
    )?;
    let last = chain.len().saturating_sub(1);
    for (i, id) in chain.iter().enumerate() {
        if up.execute(params![id, amount, count, i < last])? != 1 {
            return Err(StoreError::Corrupt(format!("voucher {id} is missing")));
        }
    }
    Ok(())
}

/// Sets aside `budget` of `parent` for a new delegation. Fails with `None` (nothing changed)
/// when the parent has not that much left.
pub(crate) fn reserve(tx: &Tx<'_>, parent: &str, budget: u64) -> Result<Option<()>, StoreError> {
    let conn = tx.conn();
    let n = conn.execute(
        "UPDATE voucher SET reserved = reserved + ?2
         WHERE id = ?1 AND budget IS NOT NULL AND spent + reserved + ?2 <= budget",
        params![parent, to_i64(budget)?],
    )?;
    Ok((n == 1).then_some(()))
}

/// Revokes a voucher; a delegation's unspent reservation goes back to its parent. Returns
/// whether it was active.
pub(crate) fn revoke(tx: &Tx<'_>, id: &str, now: i64) -> Result<bool, StoreError> {
    let conn = tx.conn();
    let row: Option<(VoucherStatus, Option<String>, Option<i64>, i64)> = conn
        .query_row(
            "SELECT status, parent, budget, spent FROM voucher WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((status, parent, budget, spent)) = row else {
        return Err(StoreError::NotFound);
    };
    if status != VoucherStatus::Active {
        return Ok(false);
    }
    conn.execute(
        "UPDATE voucher SET status = 'revoked', revoked_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    if let (Some(parent), Some(budget)) = (parent, budget) {
        conn.execute(
            "UPDATE voucher SET reserved = reserved - ?2 WHERE digest = ?1 AND budget IS NOT NULL",
            params![parent, (budget - spent).max(0)],
        )?;
    }
    Ok(true)
}

crate::store::stored_state! {
    /// Where a payment decision stands.
    pub enum PaymentStatus {
        /// Held for a human (L2); its amount is debited.
        Pending => "pending",
        /// Signed (or, for a held payment, confirmed); its amount is debited.
        Authorized => "authorized",
        /// Refused by the policy or an operator.
        Denied => "denied",
        /// Authorized, but its signature could not be made; its amount was returned.
        Void => "void",
    }
}

crate::store::stored_state! {
    /// How a payment ended, as its agent reported it.
    pub enum Outcome {
        /// The money moved.
        Succeeded => "succeeded",
        /// It did not; the amount is returned to the budget and the count.
        Failed => "failed",
        /// It moved and came back; the amount is returned to the budget.
        Refunded => "refunded",
    }
}

/// One payment decision as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// Decision id.
    pub id: String,
    /// Position in the ledger (grows with every decision).
    pub seq: i64,
    /// The voucher it was decided on (the leaf of its chain).
    pub voucher: String,
    /// The agent that asked.
    pub agent: String,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// Payee.
    pub payee: String,
    /// Category.
    pub category: Option<String>,
    /// Checkout digest.
    pub transaction_id: String,
    /// Audience of the authorization.
    pub aud: String,
    /// The verifier's nonce.
    pub nonce: String,
    /// The request's facts, JSON.
    pub facts: String,
    /// Whether a human must confirm (L2).
    pub confirm: bool,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The denial reason.
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was authorized or denied.
    pub decided_at: Option<i64>,
    /// Report due by.
    pub report_deadline: Option<i64>,
    /// How it ended, once reported.
    pub outcome: Option<Outcome>,
    /// The payment rail's reference.
    pub reference: Option<String>,
    /// The attestation bundle measured when the payment was asked for (base64url JSON).
    pub attestation: String,
    /// The signed authorization, kept for confirmed (L2) payments.
    pub authorization: Option<String>,
    /// The merchant's checkout JWT that bound the payment (verified under its registered key);
    /// `None` when the transaction id was the agent's own.
    pub checkout: Option<String>,
    /// The payment provider's receipt JWT its report carried (verified), if any.
    pub receipt: Option<String>,
}

/// Records a decision; returns its `seq`.
pub(crate) fn insert_payment(tx: &Tx<'_>, p: &PaymentRow) -> Result<i64, StoreError> {
    let conn = tx.conn();
    let mut ins = conn.prepare_cached(
        "INSERT INTO payment (id, voucher_id, agent_id, amount, currency, payee, category,
                              transaction_id, aud, nonce, facts, confirm, status, reason,
                              created_at, decided_at, report_deadline, attestation, checkout)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19)",
    )?;
    ins.execute(params![
        p.id,
        p.voucher,
        p.agent,
        to_i64(p.amount)?,
        p.currency,
        p.payee,
        p.category,
        p.transaction_id,
        p.aud,
        p.nonce,
        p.facts,
        p.confirm,
        p.status,
        p.reason,
        p.created_at,
        p.decided_at,
        p.report_deadline,
        p.attestation,
        p.checkout
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Whether this checkout is already authorized or pending on this voucher.
pub(crate) fn checkout_taken(
    tx: &Tx<'_>,
    voucher: &str,
    transaction_id: &str,
) -> Result<bool, StoreError> {
    let conn = tx.conn();
    let mut q = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM payment WHERE voucher_id = ?1 AND transaction_id = ?2
                        AND status IN ('authorized', 'pending'))",
    )?;
    Ok(q.query_row(params![voucher, transaction_id], |r| r.get(0))?)
}

const PAYMENT_COLUMNS: &str = "id, seq, voucher_id, agent_id, amount, currency, payee, category,
    transaction_id, aud, nonce, facts, confirm, status, reason, created_at, decided_at,
    report_deadline, outcome, reference, attestation, authorization, checkout, receipt";

fn payment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PaymentRow> {
    Ok(PaymentRow {
        id: r.get(0)?,
        seq: r.get(1)?,
        voucher: r.get(2)?,
        agent: r.get(3)?,
        amount: to_u64(r.get(4)?),
        currency: r.get(5)?,
        payee: r.get(6)?,
        category: r.get(7)?,
        transaction_id: r.get(8)?,
        aud: r.get(9)?,
        nonce: r.get(10)?,
        facts: r.get(11)?,
        confirm: r.get(12)?,
        status: r.get(13)?,
        reason: r.get(14)?,
        created_at: r.get(15)?,
        decided_at: r.get(16)?,
        report_deadline: r.get(17)?,
        outcome: r.get(18)?,
        reference: r.get(19)?,
        attestation: r.get(20)?,
        authorization: r.get(21)?,
        checkout: r.get(22)?,
        receipt: r.get(23)?,
    })
}

/// The decision with this id.
pub fn payment(conn: &Connection, id: &str) -> Result<Option<PaymentRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {PAYMENT_COLUMNS} FROM payment WHERE id = ?1"),
            [id],
            payment_row,
        )
        .optional()?)
}

/// Decisions, newest first, filtered by status and/or voucher id.
pub fn payments(
    conn: &Connection,
    status: Option<PaymentStatus>,
    voucher: Option<&str>,
    limit: u32,
) -> Result<Vec<PaymentRow>, StoreError> {
    // The held ones through their own index (`payment_pending`), which a query names only by
    // the constant its condition holds.
    let held = if status == Some(PaymentStatus::Pending) {
        "status = 'pending' AND"
    } else {
        ""
    };
    let mut q = conn.prepare_cached(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payment
         WHERE {held} (status = ?1 OR ?1 IS NULL) AND (voucher_id = ?2 OR ?2 IS NULL)
         ORDER BY seq DESC LIMIT ?3"
    ))?;
    let rows = q.query_map(params![status, voucher, limit], payment_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Moves a decision to a new status (from one of `from`); returns whether it moved.
pub(crate) fn set_payment_status(
    tx: &Tx<'_>,
    id: &str,
    from: &[PaymentStatus],
    to: PaymentStatus,
    reason: Option<&str>,
    now: i64,
    report_deadline: Option<i64>,
) -> Result<bool, StoreError> {
    let conn = tx.conn();
    let current: Option<PaymentStatus> = conn
        .query_row("SELECT status FROM payment WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match current {
        Some(s) if from.contains(&s) => {
            conn.execute(
                "UPDATE payment SET status = ?2, reason = ?3, decided_at = ?4,
                        report_deadline = coalesce(?5, report_deadline)
                 WHERE id = ?1",
                params![id, to, reason, now, report_deadline],
            )?;
            Ok(true)
        }
        Some(_) => Ok(false),
        None => Err(StoreError::NotFound),
    }
}

/// Keeps a confirmed payment's signed authorization for the agent to collect.
pub(crate) fn set_authorization(tx: &Tx<'_>, id: &str, jwt: &str) -> Result<(), StoreError> {
    let conn = tx.conn();
    conn.execute(
        "UPDATE payment SET authorization = ?2 WHERE id = ?1",
        params![id, jwt],
    )?;
    Ok(())
}

/// Records a payment's outcome.
pub(crate) fn set_outcome(
    tx: &Tx<'_>,
    id: &str,
    outcome: Outcome,
    reference: Option<&str>,
    receipt: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let conn = tx.conn();
    conn.execute(
        "UPDATE payment SET outcome = ?2, reference = coalesce(?3, reference), reported_at = ?4,
                            receipt = coalesce(?5, receipt)
         WHERE id = ?1",
        params![id, outcome, reference, now, receipt],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ledger::Ledger;
    use crate::store::{Store, StoredVoucher};

    fn row(id: &str, parent: Option<&str>, budget: Option<u64>) -> StoredVoucher {
        StoredVoucher {
            id: id.into(),
            digest: format!("d-{id}"),
            agent: "bot".into(),
            compact: "x~".into(),
            status: VoucherStatus::Active,
            parent: parent.map(|p| format!("d-{p}")),
            budget,
            spent: 0,
            reserved: 0,
            payments: 0,
            issued_at: 0,
            expires_at: 10,
        }
    }

    fn agent() -> crate::identity::Agent {
        let sk = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let public =
            crate::jose::PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes())
                .unwrap();
        let attributes: crate::backend::KeyAttributes = serde_json::from_value(serde_json::json!({
            "token": true, "private": true, "sensitive": true, "always_sensitive": true,
            "extractable": false, "never_extractable": true, "local": true, "sign": true,
            "decrypt": false, "derive": false, "unwrap": false
        }))
        .unwrap();
        crate::identity::Agent {
            id: "bot".into(),
            instance: "i-1".into(),
            user: "alice".into(),
            key: crate::backend::KeyInfo {
                id: crate::backend::KeyId(vec![1]),
                uri: "pkcs11:id=%01".into(),
                public,
                attributes,
                certification: None,
            },
            selectors: crate::identity::Selectors {
                uid: 1000,
                gid: None,
                exe_sha256: None,
                cgroup: None,
            },
            status: crate::identity::AgentStatus::Active,
            certificate: None,
            created_at: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_period_counts_only_its_own_payments_as_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ari.db");
        let store = Store::open(&path).unwrap();
        store.insert_agent(&agent()).unwrap();
        store
            .insert_voucher(&row("daily", None, Some(1000)))
            .unwrap();
        let ledger = Ledger::open(&path, 16, "test.example/log").unwrap();
        let today = 86_400 * 20_000;
        // (created at, amount, status, outcome)
        let payments = [
            (today - 1, 500, PaymentStatus::Authorized, None),
            (today, 300, PaymentStatus::Authorized, None),
            (
                today + 10,
                200,
                PaymentStatus::Authorized,
                Some(Outcome::Failed),
            ),
            (
                today + 20,
                70,
                PaymentStatus::Authorized,
                Some(Outcome::Refunded),
            ),
            (
                today + 30,
                60,
                PaymentStatus::Authorized,
                Some(Outcome::Succeeded),
            ),
            (today + 40, 100, PaymentStatus::Pending, None),
            (today + 50, 50, PaymentStatus::Denied, None),
            (today + 60, 40, PaymentStatus::Void, None),
        ];
        ledger
            .run(move |tx| {
                for (i, (at, amount, status, outcome)) in payments.into_iter().enumerate() {
                    let id = format!("p-{i}");
                    insert_payment(
                        tx,
                        &PaymentRow {
                            id: id.clone(),
                            seq: 0,
                            voucher: "daily".into(),
                            agent: "bot".into(),
                            amount,
                            currency: "EUR".into(),
                            payee: "shop".into(),
                            category: None,
                            transaction_id: id.clone(),
                            aud: "aud".into(),
                            nonce: id.clone(),
                            facts: "{}".into(),
                            confirm: false,
                            status,
                            reason: None,
                            created_at: at,
                            decided_at: Some(at),
                            report_deadline: None,
                            outcome: None,
                            reference: None,
                            attestation: String::new(),
                            authorization: None,
                            checkout: None,
                            receipt: None,
                        },
                    )?;
                    if let Some(o) = outcome {
                        set_outcome(tx, &id, o, None, None, at)?;
                    }
                }
                Ok(())
            })
            .await
            .unwrap();
        let u = ledger
            .run(move |c| usage(c, &["daily".to_string()], &[Some(today)], today + 100))
            .await
            .unwrap();
        // Today: 300, the refunded 70's count, the succeeded 60, the pending 100; not
        // yesterday's, the failed, the denied or the voided one.
        assert_eq!((u[0].period_spent, u[0].period_payments), (460, 4));
        let u = ledger
            .run(move |c| usage(c, &["daily".to_string()], &[None], today + 100))
            .await
            .unwrap();
        assert_eq!((u[0].period_spent, u[0].period_payments), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chain_spending_reservations_and_the_budget_trigger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ari.db");
        let store = Store::open(&path).unwrap();
        store.insert_agent(&agent()).unwrap();
        let ledger = Ledger::open(&path, 16, "test.example/log").unwrap();
        store
            .insert_voucher(&row("root", None, Some(1000)))
            .unwrap();
        let chain = vec!["root".to_string(), "child".to_string()];
        let reserved = ledger
            .run(|c| {
                let r = reserve(c, "root", 300)?;
                crate::store::insert_voucher(c.conn(), &row("child", Some("root"), Some(300)))?;
                Ok(r)
            })
            .await
            .unwrap();
        assert_eq!(reserved, Some(()));
        assert_eq!(
            ledger.run(|c| reserve(c, "root", 701)).await.unwrap(),
            None,
            "only 700 left to carve"
        );
        let ch = chain.clone();
        ledger
            .run(move |c| debit(c.conn(), &ch, 100, 1))
            .await
            .unwrap();
        let ch = chain.clone();
        let u = ledger.run(move |c| usage(c, &ch, &[], 5)).await.unwrap();
        assert_eq!((u[0].spent, u[0].reserved, u[0].payments), (100, 200, 1));
        assert_eq!((u[1].spent, u[1].reserved), (100, 0));
        // The trigger refuses overspending even if the policy were bypassed; the job rolls back
        // alone and its neighbours in the group still commit.
        let ch = chain.clone();
        let over = ledger.run(move |c| debit(c.conn(), &ch, 201, 1));
        let ch = chain.clone();
        let fine = ledger.run(move |c| debit(c.conn(), &ch, 50, 1));
        let (over, fine) = tokio::join!(over, fine);
        assert!(over.is_err());
        fine.unwrap();
        let ch = chain.clone();
        ledger.run(move |c| credit(c, &ch, 50, 1)).await.unwrap();
        // Revoking the child returns its unspent 200 to the root.
        assert!(ledger.run(|c| revoke(c, "child", 7)).await.unwrap());
        assert!(!ledger.run(|c| revoke(c, "child", 8)).await.unwrap());
        let ch = chain.clone();
        let u = ledger.run(move |c| usage(c, &ch, &[], 5)).await.unwrap();
        assert_eq!((u[0].spent, u[0].reserved), (100, 0));
        assert!(u[1].revoked);
    }
}

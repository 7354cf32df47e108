//! What a failed TPM call means, and the error it ends in.
//!
//! Every failure inside the TPM backend is a [`TpmError`] that keeps its cause (the TSS's typed
//! response code where there is one) with a [`Remedy`]: what the owner thread may do so that
//! the call succeeds when tried again. [`remedy`] reads the remedy from the response code's
//! typed fields (its layer, its format and its kind as tss-esapi decodes them), never from the
//! code's text. Only [`Fault::into_error`] turns a fault into the [`BackendError`] callers see:
//! a fault the owner could have recovered from, and a TPM in dictionary-attack lockout, are
//! `Unavailable` (clients may retry); any other is `Failed`. This module decides nothing about
//! the wire: `crate::error` does.

use super::super::{BackendError, KeyId};
use tss_esapi::constants::response_code::{Tss2ResponseCode, Tss2ResponseCodeKind};
use tss_esapi::constants::tss::TPM2_RC_VER1;
use tss_esapi::tss2_esys::TSS2_RC_LAYER_SHIFT;

/// The bits of a TSS response code that name the layer that answered; zero is the TPM itself.
const LAYER_MASK: u32 = 0xff << TSS2_RC_LAYER_SHIFT;

/// The bits of a format-zero TPM 2.0 response code that are reserved, so always clear.
const FORMAT_ZERO_RESERVED: u32 = 0xf200;

/// What went wrong in a call to the TPM or to the TSS around it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(super) enum TpmError {
    /// A TPM command or a TSS call failed; names the call.
    #[error("{call}: {code}")]
    Call {
        call: &'static str,
        #[source]
        code: tss_esapi::Error,
    },
    /// The TCTI configuration does not parse.
    #[error("bad TCTI {tcti:?}: {code}")]
    Tcti {
        tcti: String,
        #[source]
        code: tss_esapi::Error,
    },
    /// The TPM could not be opened through the TCTI.
    #[error("cannot open the TPM at {tcti}: {code}")]
    Open {
        tcti: String,
        #[source]
        code: tss_esapi::Error,
    },
    /// The connection was dropped after a failure and not made again.
    #[error("not connected to the TPM")]
    NotConnected,
    /// Every loaded object is needed by the call under way.
    #[error("the TPM has no room for another loaded object")]
    NoRoom,
    /// The attestation key's public area was not kept when it was derived.
    #[error("the attestation key has no public area")]
    NoAkPublic,
    /// A public area is not an ECC P-256 point; names the key.
    #[error("the {0} is not a P-256 key")]
    NotP256(&'static str),
    /// A signature the TPM made is not an ECDSA signature with scalars of at most 32 bytes.
    #[error("the TPM's signature is not a P-256 ECDSA signature")]
    NotEcdsa,
    /// TPM2_Quote answered with another kind of attestation.
    #[error("TPM2_Quote returned another attestation type")]
    NotAQuote,
    /// The PCR digest a quote covers is not a SHA-256 digest.
    #[error("the quoted PCR digest is not SHA-256")]
    QuotedDigest,
    /// The PCRs were extended between every quote and the read of their values.
    #[error("the PCRs kept changing while they were quoted")]
    PcrsChanging,
    /// TPM2_PCR_Read returned fewer values than PCRs asked for.
    #[error("TPM2_PCR_Read returned {got} PCRs of the {asked} asked")]
    PcrCount { asked: usize, got: usize },
    /// A PCR value of the SHA-256 bank is not 32 bytes.
    #[error("a PCR value is not 32 bytes")]
    PcrSize,
    /// A configured PCR index that no TPM has.
    #[error("PCR {0} does not exist")]
    NoSuchPcr(u8),
}

/// What the owner thread may do so that a failed call succeeds when tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Remedy {
    /// The link to the TPM (TCTI, resource manager) failed, or the TPM is in failure mode:
    /// connect again.
    Reconnect,
    /// Loaded objects are gone or the TPM has no room: flush and load again.
    Reload,
    /// The TPM was reset without a TPM2_Startup: start it.
    Startup,
    /// The TPM asked to be called again (busy, self-testing, yielded).
    Retry,
    /// The TPM refuses authorizations protected against dictionary attacks until its lockout
    /// recovery time passes: nothing helps now, and the store is unavailable meanwhile.
    LockedOut,
    /// The request itself failed (a bad authorization, a bad parameter): nothing helps.
    GiveUp,
}

/// The remedy for a TSS response code, from its layer, its format and its kind.
pub(super) fn remedy(code: Tss2ResponseCode) -> Remedy {
    use Tss2ResponseCodeKind as K;
    let raw = match code {
        // A success handed over as an error: nothing would change on a retry.
        Tss2ResponseCode::Success => return Remedy::GiveUp,
        Tss2ResponseCode::FormatZero(c) => c.0,
        Tss2ResponseCode::FormatOne(c) => c.0,
    };
    if raw & LAYER_MASK != 0 {
        // The TCTI, ESAPI or resource manager layer answered: the link to the TPM failed, not
        // the TPM.
        return Remedy::Reconnect;
    }
    if matches!(code, Tss2ResponseCode::FormatZero(_))
        && (raw & TPM2_RC_VER1 == 0 || raw & FORMAT_ZERO_RESERVED != 0)
    {
        // Without the version bit, a TPM 1.2 code; with reserved bits set, none TPM 2.0 defines.
        return Remedy::GiveUp;
    }
    match code.kind() {
        // Format one: a handle is not correct for its use, such as an object no longer loaded.
        Some(K::Handle) => Remedy::Reload,
        Some(
            K::ContextGap
            | K::ObjectMemory
            | K::SessionMemory
            | K::ReferenceH0
            | K::ReferenceH1
            | K::ReferenceH2
            | K::ReferenceH3
            | K::ReferenceH4
            | K::ReferenceH5
            | K::ReferenceH6,
        ) => Remedy::Reload,
        Some(K::Initialize) => Remedy::Startup,
        Some(K::Yielded | K::Testing | K::Retry) => Remedy::Retry,
        Some(K::Failure) => Remedy::Reconnect,
        Some(K::Lockout) => Remedy::LockedOut,
        _ => Remedy::GiveUp,
    }
}

/// A failed call inside the TPM backend and what may be done about it.
#[derive(Debug)]
pub(super) enum Fault {
    /// A call failed; `remedy` says whether and how the owner thread may recover.
    Call { remedy: Remedy, error: TpmError },
    /// The key id is not a blob the TPM loads under this storage key.
    KeyNotFound(KeyId),
}

impl Fault {
    /// For `map_err` on a TPM command: the failure of `call`, classified by its response code.
    /// A failure of the TSS wrapper itself (a bad parameter) is given up on.
    pub(super) fn command(call: &'static str) -> impl FnOnce(tss_esapi::Error) -> Self {
        move |code| Fault::Call {
            remedy: match code {
                tss_esapi::Error::Tss2Error(rc) => remedy(rc),
                tss_esapi::Error::WrapperError(_) => Remedy::GiveUp,
            },
            error: TpmError::Call { call, code },
        }
    }

    /// For `map_err` on a local TSS call (marshalling, building a structure): a failure that
    /// no retry mends, whatever layer reported it.
    pub(super) fn local(call: &'static str) -> impl FnOnce(tss_esapi::Error) -> Self {
        move |code| TpmError::Call { call, code }.into()
    }

    /// What the callers are told.
    pub(super) fn into_error(self) -> BackendError {
        match self {
            Fault::KeyNotFound(id) => BackendError::KeyNotFound(id),
            Fault::Call {
                remedy: Remedy::GiveUp,
                error,
            } => BackendError::Failed(error.to_string()),
            Fault::Call { error, .. } => BackendError::Unavailable(error.to_string()),
        }
    }
}

impl From<TpmError> for Fault {
    /// A failure that no retry mends.
    fn from(error: TpmError) -> Self {
        Fault::Call {
            remedy: Remedy::GiveUp,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remedy for a raw response code as the TSS reports it.
    fn of(raw: u32) -> Remedy {
        remedy(Tss2ResponseCode::from(raw))
    }

    /// Checks that each raw code gets `expected`, and that a TPM command failing with it
    /// ends as the error callers must see: `Failed` when nothing helps, else `Unavailable`
    /// (clients may retry).
    fn all_get(codes: &[u32], expected: Remedy) {
        for &raw in codes {
            assert_eq!(of(raw), expected, "{raw:#x}");
            let code = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(raw));
            let told = Fault::command("TPM2_Sign")(code).into_error();
            match expected {
                Remedy::GiveUp => assert!(matches!(told, BackendError::Failed(_)), "{raw:#x}"),
                _ => assert!(matches!(told, BackendError::Unavailable(_)), "{raw:#x}"),
            }
        }
    }

    #[test]
    fn a_tpm_in_lockout_is_unavailable_and_not_retried() {
        // TPM_RC_LOCKOUT.
        all_get(&[0x921], Remedy::LockedOut);
    }

    #[test]
    fn a_failed_authorization_is_a_failure_not_an_outage() {
        // TPM_RC_AUTH_FAIL and TPM_RC_BAD_AUTH on session 1, TPM_RC_AUTH_MISSING.
        all_get(&[0x98e, 0x9a2, 0x125], Remedy::GiveUp);
    }

    #[test]
    fn busy_answers_are_retried() {
        // TPM_RC_YIELDED, TPM_RC_TESTING, TPM_RC_RETRY.
        all_get(&[0x908, 0x90a, 0x922], Remedy::Retry);
    }

    #[test]
    fn lost_or_crowded_objects_are_loaded_again() {
        // TPM_RC_CONTEXT_GAP, TPM_RC_OBJECT_MEMORY, TPM_RC_SESSION_MEMORY,
        // TPM_RC_REFERENCE_H0 and _H6, TPM_RC_HANDLE on handle 1 and on parameter 2.
        all_get(
            &[0x901, 0x902, 0x903, 0x910, 0x916, 0x18b, 0x2cb],
            Remedy::Reload,
        );
        // TPM_RC_MEMORY and TPM_RC_REFERENCE_S0 are not object slots.
        all_get(&[0x904, 0x918], Remedy::GiveUp);
    }

    #[test]
    fn a_reset_tpm_is_started_and_a_failed_one_reconnected() {
        // TPM_RC_INITIALIZE, TPM_RC_FAILURE.
        all_get(&[0x100], Remedy::Startup);
        all_get(&[0x101], Remedy::Reconnect);
    }

    #[test]
    fn a_broken_link_below_the_tpm_is_reconnected() {
        // TCTI I/O error, ESAPI bad sequence, resource manager busy: the layer decides.
        all_get(&[0xa000a, 0x70007, 0xb0922], Remedy::Reconnect);
    }

    #[test]
    fn other_codes_are_given_up_on() {
        // Success, a TPM 1.2 code, a vendor code, TPM_RC_SENSITIVE, TPM_RC_NV_UNAVAILABLE,
        // TPM_RC_VALUE on parameter 1, and TPM_RC_LOCKOUT and _RETRY with a reserved bit set.
        all_get(
            &[0x0, 0x21, 0x521, 0x155, 0x923, 0x1c4, 0x1921, 0xb22],
            Remedy::GiveUp,
        );
    }

    #[test]
    fn a_wrapper_failure_is_given_up_on_and_names_the_call() {
        let wrapper =
            tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::WrongValueFromTpm);
        let BackendError::Failed(why) = Fault::command("TPM2_Quote")(wrapper).into_error() else {
            unreachable!("a wrapper failure is not retried");
        };
        assert!(why.starts_with("TPM2_Quote: "), "{why}");
        // Local calls are not classified by layer: a marshalling failure is not an outage.
        let marshal = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(0x9000a));
        assert!(matches!(
            Fault::local("marshal TPMT_PUBLIC")(marshal).into_error(),
            BackendError::Failed(_)
        ));
    }
}

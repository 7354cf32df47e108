//! The daemon's notion of time: whole Unix seconds, as every token, voucher and row carries it.
//!
//! A clock before 1970 reads as 0 and one beyond `i64` as `i64::MAX`; neither can make a check
//! pass that would otherwise fail, because validity windows are compared, never subtracted.

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

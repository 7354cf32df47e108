//! Durations and times as an operator types them: `90s`, `15m`, `12h`, `7d`, or Unix seconds.

use anyhow::{Result, anyhow, bail};
use ari::clock::unix_now;

/// Parses a duration such as `90s`, `15m`, `12h` or `7d` into seconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow!("{text:?} is not a duration such as 90s, 15m, 12h or 7d"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{text:?}: the unit must be s, m, h or d"),
    };
    n.checked_mul(scale)
        .ok_or_else(|| anyhow!("{text:?} is too long"))
}

/// Parses a time: Unix seconds (10 digits or more) or a duration from now.
pub(crate) fn parse_time(text: &str) -> Result<i64> {
    if text.len() >= 10 && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(text.parse()?);
    }
    Ok(unix_now().saturating_add(i64::try_from(parse_duration(text)?)?))
}

//! The one timestamp of a reproducible build: `SOURCE_DATE_EPOCH` (reproducible-builds.org), else 0.

use crate::error::{OciError, Result};

/// Seconds since 1970 from `SOURCE_DATE_EPOCH`, or 0 when it is unset or empty.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| {
            OciError::InvalidInput(format!(
                "SOURCE_DATE_EPOCH='{v}' is not a number of seconds since 1970"
            ))
        }),
        _ => Ok(0),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (UTC), as OCI `created` fields want (RFC 3339).
pub fn rfc3339_utc(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's civil_from_days, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}

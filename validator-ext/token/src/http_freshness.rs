//! How long an HTTP response may be used: `Cache-Control: max-age` (preferred) or `Expires` (RFC 9111).

use crate::time::UnixTime;

/// Seconds the response is fresh for, from its caching headers; `None` when they say nothing.
///
/// `no-store`/`no-cache` and an unparsable `Expires` mean zero (RFC 9111 section 5.3: an invalid date is in
/// the past). `Expires` is taken relative to `Date` when present, else to `now`.
pub fn max_age(
    cache_control: Option<&str>,
    expires: Option<&str>,
    date: Option<&str>,
    now: UnixTime,
) -> Option<u64> {
    if let Some(cc) = cache_control {
        let mut max_age = None;
        for directive in cc.split(',') {
            let directive = directive.trim();
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(0);
            }
            if name.eq_ignore_ascii_case("max-age") {
                // An invalid max-age makes the response stale (RFC 9111 section 4.2.1).
                max_age = Some(value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0));
            }
        }
        if max_age.is_some() {
            return max_age;
        }
    }
    let expires = expires?;
    let Some(expires_at) = parse_http_date(expires) else {
        return Some(0);
    };
    let base = date.and_then(parse_http_date).unwrap_or(now);
    Some(expires_at.since(base))
}

/// Parses an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT` (the format HTTP/1.1 senders must use).
pub fn parse_http_date(s: &str) -> Option<UnixTime> {
    let s = s.trim();
    let (_weekday, rest) = s.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: i64 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let mut hms = time.split(':');
    let (h, m, sec): (i64, i64, i64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || h > 23
        || m > 59
        || sec > 60
        || !(1900..=9999).contains(&year)
    {
        return None;
    }
    Some(UnixTime(
        days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UnixTime(784_111_777))
        );
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UnixTime(0))
        );
        assert_eq!(
            parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(UnixTime(1_700_000_000))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(UnixTime(1_709_208_000))
        );
        for bad in [
            "0",
            "",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn cache_control_wins() {
        assert_eq!(max_age(Some("max-age=300"), None, None, NOW), Some(300));
        assert_eq!(
            max_age(
                Some("public, max-age=\"60\", must-revalidate"),
                None,
                None,
                NOW
            ),
            Some(60)
        );
        assert_eq!(
            max_age(
                Some("MAX-AGE=5"),
                Some("Tue, 14 Nov 2023 23:13:20 GMT"),
                None,
                NOW
            ),
            Some(5)
        );
        assert_eq!(max_age(Some("no-cache"), None, None, NOW), Some(0));
        assert_eq!(
            max_age(Some("max-age=300, no-store"), None, None, NOW),
            Some(0)
        );
        assert_eq!(max_age(Some("max-age=abc"), None, None, NOW), Some(0));
        assert_eq!(max_age(Some("max-age=-5"), None, None, NOW), Some(0));
    }

    #[test]
    fn expires_relative_to_date_or_now() {
        assert_eq!(
            max_age(None, Some("Tue, 14 Nov 2023 23:13:20 GMT"), None, NOW),
            Some(3600)
        );
        assert_eq!(
            max_age(
                Some("public"),
                Some("Tue, 14 Nov 2023 23:13:20 GMT"),
                None,
                NOW
            ),
            Some(3600)
        );
        assert_eq!(
            max_age(
                None,
                Some("Tue, 14 Nov 2023 23:13:20 GMT"),
                Some("Tue, 14 Nov 2023 23:03:20 GMT"),
                NOW
            ),
            Some(600),
            "Date header corrects for clock differences"
        );
        assert_eq!(
            max_age(None, Some("Tue, 14 Nov 2023 21:13:20 GMT"), None, NOW),
            Some(0),
            "in the past"
        );
        assert_eq!(
            max_age(None, Some("0"), None, NOW),
            Some(0),
            "invalid means expired"
        );
        assert_eq!(max_age(None, None, None, NOW), None);
    }
}

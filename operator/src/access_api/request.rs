//! The body of an access request, checked before anything is created.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;

use super::error::ApiError;
use crate::api::AccessLevel;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Body {
    level: AccessLevel,
    /// How long, e.g. `30m`, `2h`, `1h30m`.
    ttl: String,
    reason: String,
}

#[derive(Debug, PartialEq)]
pub struct AccessRequest {
    pub level: AccessLevel,
    pub ttl: Duration,
    pub reason: String,
}

impl AccessRequest {
    pub fn parse(body: &[u8], max_ttl: Duration) -> Result<AccessRequest, ApiError> {
        let body: Body = serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body must be JSON {{\"level\": \"read|readwrite|admin\", \"ttl\": \"1h\", \"reason\": \"...\"}}: {e}"),
            )
        })?;
        let ttl = parse_ttl(&body.ttl)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_ttl", e))?;
        if ttl > max_ttl {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ttl_too_long",
                format!(
                    "ttl {} is longer than the platform allows ({} minutes)",
                    body.ttl,
                    max_ttl.as_secs() / 60
                ),
            ));
        }
        let reason = body.reason.trim().to_owned();
        // The reason goes into events, logs and the object: one line of plain text.
        if reason.chars().any(char::is_control) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_reason",
                "reason must be plain text on one line: no control characters such as newlines or tabs",
            ));
        }
        if reason.chars().count() < 10 || reason.chars().count() > 500 {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_reason",
                "reason must say why the access is needed, in 10 to 500 characters",
            ));
        }
        Ok(AccessRequest {
            level: body.level,
            ttl,
            reason,
        })
    }
}

/// `90s`, `30m`, `2h`, `1h30m`: at least a minute.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = || format!("ttl {text:?} must be like 30m, 2h or 1h30m");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    if total < 60 {
        return Err(format!("ttl {text:?} is shorter than a minute"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: Duration = Duration::from_secs(8 * 3600);

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "30", "h", "1d", "-1h", "30s", "1h 2m"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies() {
        let ok = AccessRequest::parse(
            br#"{"level":"read","ttl":"1h","reason":"look at the orders table"}"#,
            MAX,
        )
        .expect("valid");
        assert_eq!(ok.level, AccessLevel::Read);
        let code = |b: &[u8]| {
            AccessRequest::parse(b, MAX)
                .map(|_| ())
                .map_err(|e| (e.status.as_u16(), e.code))
        };
        assert_eq!(code(b"not json"), Err((400, "bad_request")));
        assert_eq!(
            code(br#"{"level":"root","ttl":"1h","reason":"xxxxxxxxxxxx"}"#),
            Err((400, "bad_request"))
        );
        assert_eq!(
            code(br#"{"level":"read","ttl":"9h","reason":"xxxxxxxxxxxx"}"#),
            Err((422, "ttl_too_long"))
        );
        assert_eq!(
            code(br#"{"level":"read","ttl":"1h","reason":"  short   "}"#),
            Err((422, "bad_reason"))
        );
        for control in [
            r#"{"level":"read","ttl":"1h","reason":"fixing order 4711\nGranted: admin"}"#,
            r#"{"level":"read","ttl":"1h","reason":"fixing order\t4711 now"}"#,
            r#"{"level":"read","ttl":"1h","reason":"fixing order 4711 \u001b[31mnow"}"#,
        ] {
            assert_eq!(
                code(control.as_bytes()),
                Err((422, "bad_reason")),
                "{control}"
            );
        }
        assert_eq!(
            code(br#"{"level":"read","ttl":"1h","reason":"xxxxxxxxxxxx","extra":1}"#),
            Err((400, "bad_request"))
        );
    }

    proptest! {
        #[test]
        fn no_body_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = AccessRequest::parse(&body, MAX);
        }
    }
}

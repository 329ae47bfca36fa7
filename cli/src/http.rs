//! One HTTPS agent for the IdP and the access API, trusting the system's CAs or a given CA file.

use std::time::Duration;

use crate::CliError;

/// HTTPS only unless `insecure_http` (`--insecure-http`, for a test world on loopback).
pub fn agent(ca_file: Option<&str>, insecure_http: bool) -> Result<ureq::Agent, CliError> {
    pgrator_operator::https::agent(
        ca_file,
        Duration::from_secs(15),
        concat!("pgrator/", env!("CARGO_PKG_VERSION")),
        insecure_http,
    )
    .map_err(CliError::Usage)
}

/// True for `http://127.0.0.1[:port]/...`, `http://localhost...` or `http://[::1]...`.
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Reads a JSON answer (any status) or explains why there is none.
pub fn json(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> Result<(u16, serde_json::Value), CliError> {
    let mut response = result.map_err(|e| CliError::Unavailable(format!("{what}: {e}")))?;
    let status = response.status().as_u16();
    let body = pgrator_operator::https::body(&mut response)
        .map_err(|e| CliError::Unavailable(format!("{what}: {e}")))?;
    let value = serde_json::from_slice(&body).map_err(|_| {
        CliError::Unavailable(format!(
            "{what}: HTTP {status}, not JSON: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    })?;
    Ok((status, value))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_url;

    #[test]
    fn loopback_urls() {
        for yes in [
            "http://127.0.0.1:8080/api",
            "http://localhost",
            "http://[::1]:80/x",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback_url(yes), "{yes}");
        }
        for no in [
            "https://127.0.0.1",
            "http://10.0.0.1",
            "http://127.0.0.1.evil.example",
            "http://localhost.example",
        ] {
            assert!(!is_loopback_url(no), "{no}");
        }
    }
}

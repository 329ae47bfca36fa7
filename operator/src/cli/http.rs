//! One HTTPS agent for the IdP and the access API, trusting the system's CAs or a given CA file.

use std::time::Duration;

use super::CliError;

const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn agent(ca_file: Option<&str>) -> Result<ureq::Agent, CliError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let path = ca_file.unwrap_or(SYSTEM_CA_BUNDLE);
    let pem = std::fs::read(path)
        .map_err(|e| CliError::Usage(format!("reading the CA file {path}: {e}")))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CliError::Usage(format!("no certificate in {path}")));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&certs))
                .build(),
        )
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .user_agent(concat!("pgrator/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

/// Reads a JSON answer (any status) or explains why there is none.
pub fn json(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> Result<(u16, serde_json::Value), CliError> {
    let mut response = result.map_err(|e| CliError::Unavailable(format!("{what}: {e}")))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
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

//! One HTTPS agent (ureq, rustls) trusting the system's CAs or a given CA file: the access API's key fetches and
//! the CLI's calls to the IdP and the API.

use std::time::Duration;

/// Debian's bundle of the system's trusted CAs (the default when no CA file is given).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An agent trusting the CAs in `ca_file` (default: the system's), with a deadline per request; HTTP errors are
/// answers, not errors. Errs with a sentence naming the file when it cannot be used.
///
/// HTTPS only: a plain `http://` URL (the API, the IdP's discovery, device, token, key and userinfo endpoints) is
/// refused unless `insecure_http` is set, which only the tests' explicit flag does.
pub fn agent(
    ca_file: Option<&str>,
    timeout: Duration,
    user_agent: &str,
    insecure_http: bool,
) -> Result<ureq::Agent, String> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let path = ca_file.unwrap_or(SYSTEM_CA_BUNDLE);
    let pem = std::fs::read(path).map_err(|e| format!("reading the CA file {path}: {e}"))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("no certificate in the CA file {path}"));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&certs))
                .build(),
        )
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .https_only(!insecure_http)
        .user_agent(user_agent)
        .build()
        .new_agent())
}

/// The largest answer read from the IdP or the access API (no document of theirs comes near it).
pub const MAX_BODY: u64 = 1 << 20;

/// The body of an answer, at most [`MAX_BODY`] bytes.
pub fn body(response: &mut ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, ureq::Error> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
}

//! Logging in to the IdP with the OAuth 2.0 Device Authorization Grant (RFC 8628): the user approves in a
//! browser, we poll. The access token is cached (file mode 0600) until a minute before it expires.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::CliError;
use super::http::json;

/// Where and as whom to log in.
pub struct LoginConfig {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub cache: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    issuer: String,
    client_id: String,
    access_token: String,
    expires_at: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A valid access token: from the cache, or by a device-flow login that prints its prompt to `out`.
pub fn access_token(
    agent: &ureq::Agent,
    config: &LoginConfig,
    out: &mut dyn Write,
) -> Result<String, CliError> {
    if let Some(token) = cached(config) {
        return Ok(token);
    }
    let (token, expires_in) = device_flow(agent, config, out)?;
    if let Some(path) = &config.cache {
        let entry = Cached {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            access_token: token.clone(),
            expires_at: now() + expires_in,
        };
        if let Err(e) = write_private(path, &serde_json::to_vec(&entry).unwrap_or_default()) {
            let _ = writeln!(
                out,
                "(could not cache the login in {}: {e})",
                path.display()
            );
        }
    }
    Ok(token)
}

fn cached(config: &LoginConfig) -> Option<String> {
    let path = config.cache.as_ref()?;
    let entry: Cached = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    (entry.issuer == config.issuer
        && entry.client_id == config.client_id
        && entry.expires_at > now() + 60)
        .then_some(entry.access_token)
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

fn device_flow(
    agent: &ureq::Agent,
    config: &LoginConfig,
    out: &mut dyn Write,
) -> Result<(String, u64), CliError> {
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    );
    let (_, discovery) = json(agent.get(&discovery_url).call(), "IdP discovery")?;
    let endpoint = |key: &str| {
        discovery[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CliError::Login(format!("the IdP's discovery document has no {key}")))
    };
    let device_endpoint = endpoint("device_authorization_endpoint")?;
    let token_endpoint = endpoint("token_endpoint")?;
    let scope = config.scopes.join(" ");
    let (status, authz) = json(
        agent.post(&device_endpoint).send_form([
            ("client_id", config.client_id.as_str()),
            ("scope", scope.as_str()),
        ]),
        "device authorization",
    )?;
    if status != 200 {
        return Err(CliError::Login(format!(
            "the IdP refused the device authorization (HTTP {status}): {}",
            authz["error_description"]
                .as_str()
                .or(authz["error"].as_str())
                .unwrap_or("no reason given")
        )));
    }
    let text = |key: &str| authz[key].as_str().unwrap_or_default().to_owned();
    let (device_code, user_code) = (text("device_code"), text("user_code"));
    let uri = authz["verification_uri_complete"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| text("verification_uri"));
    let mut interval = Duration::from_secs(authz["interval"].as_u64().unwrap_or(5).max(1));
    let deadline =
        Instant::now() + Duration::from_secs(authz["expires_in"].as_u64().unwrap_or(300));
    let _ = writeln!(out, "To log in, open {uri} and enter the code {user_code}");
    let _ = out.flush();
    loop {
        std::thread::sleep(interval);
        if Instant::now() > deadline {
            return Err(CliError::Login(
                "the code expired before it was approved; run the command again".into(),
            ));
        }
        let (status, answer) = json(
            agent.post(&token_endpoint).send_form([
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code.as_str()),
                ("client_id", config.client_id.as_str()),
            ]),
            "polling the IdP",
        )?;
        if status == 200 {
            let token = answer["access_token"].as_str().ok_or_else(|| {
                CliError::Login("the IdP answered without an access token".into())
            })?;
            return Ok((
                token.to_owned(),
                answer["expires_in"].as_u64().unwrap_or(300),
            ));
        }
        match answer["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += Duration::from_secs(5),
            Some("access_denied") => return Err(CliError::Login("the login was denied".into())),
            Some("expired_token") => {
                return Err(CliError::Login(
                    "the code expired before it was approved; run the command again".into(),
                ));
            }
            other => {
                return Err(CliError::Login(format!(
                    "the IdP answered HTTP {status} {}",
                    other.unwrap_or("without an error code")
                )));
            }
        }
    }
}

//! Logging in to the IdP with the OAuth 2.0 Device Authorization Grant (RFC 8628): the user approves in a
//! browser, we poll. The access token is cached (file mode 0600) until shortly before it expires; where the IdP
//! gave a refresh token (the `offline_access` scope, a client allowed to refresh), a new access token comes from it
//! without a new approval, and only when that fails does the device flow run again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::CliError;
use crate::http::json;

/// Where and as whom to log in.
#[derive(Clone)]
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
    #[serde(default)]
    issued_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// Usable for a while yet: more than a minute left, or a quarter of its life for short-lived tokens.
fn fresh(issued_at: u64, expires_at: u64, now: u64) -> bool {
    let margin = 60.min(expires_at.saturating_sub(issued_at) / 4);
    expires_at > now + margin
}

impl Cached {
    fn fresh_at(&self, now: u64) -> bool {
        fresh(self.issued_at, self.expires_at, now)
    }

    fn token(&self) -> Token {
        Token {
            access_token: self.access_token.clone(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
        }
    }
}

/// An access token, when it was issued and when it expires (Unix seconds).
#[derive(Clone)]
pub struct Token {
    pub access_token: String,
    pub issued_at: u64,
    pub expires_at: u64,
}

impl Token {
    /// Good for a while yet (renewed before it runs out, not at the last second).
    pub fn fresh_at(&self, now: u64) -> bool {
        fresh(self.issued_at, self.expires_at, now)
    }
}

/// What the token endpoint gave.
struct Answer {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
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
    login(agent, config, out).map(|t| t.access_token)
}

/// A token that is fresh for a while yet: the cached one, one from the cached refresh token, or a device-flow login
/// that prints its prompt to `out`. What the IdP gives is cached.
pub fn login(
    agent: &ureq::Agent,
    config: &LoginConfig,
    out: &mut dyn Write,
) -> Result<Token, CliError> {
    let cached = cached(config);
    if let Some(entry) = cached.as_ref().filter(|c| c.fresh_at(now())) {
        return Ok(entry.token());
    }
    let old_refresh = cached.and_then(|c| c.refresh_token);
    let refreshed = old_refresh.as_deref().and_then(|refresh| {
        match refresh_flow(agent, config, refresh) {
            // An IdP that does not rotate refresh tokens answers without one: the old one stays good.
            Ok(answer) => Some(Answer {
                refresh_token: answer.refresh_token.or_else(|| old_refresh.clone()),
                ..answer
            }),
            Err(e) => {
                let _ = writeln!(out, "(the saved login could not be renewed: {e})");
                None
            }
        }
    });
    let answer = match refreshed {
        Some(answer) => answer,
        None => device_flow(agent, config, out)?,
    };
    let issued_at = now();
    let entry = Cached {
        issuer: config.issuer.clone(),
        client_id: config.client_id.clone(),
        access_token: answer.access_token,
        expires_at: issued_at.saturating_add(answer.expires_in),
        issued_at,
        refresh_token: answer.refresh_token,
    };
    if let Some(path) = &config.cache
        && let Err(e) = write_private(
            path.as_path(),
            &serde_json::to_vec(&entry).unwrap_or_default(),
        )
    {
        let _ = writeln!(
            out,
            "(could not cache the login in {}: {e})",
            path.display()
        );
    }
    Ok(entry.token())
}

fn cached(config: &LoginConfig) -> Option<Cached> {
    let path = config.cache.as_ref()?;
    let entry: Cached = serde_json::from_slice(&read_private(path)?).ok()?;
    (entry.issuer == config.issuer && entry.client_id == config.client_id).then_some(entry)
}

/// The cache file's bytes, only if it is a regular file (not a symlink) of ours that nobody else can read or
/// write: a token planted or read by another local user is never used.
fn read_private(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    // Our own uid, as the kernel shows it (the owner of /proc/self); unknown elsewhere.
    let ours = std::fs::metadata("/proc/self").map_or(true, |me| me.uid() == meta.uid());
    if !meta.file_type().is_file() || !ours || meta.mode() & 0o077 != 0 {
        return None;
    }
    std::fs::read(path).ok()
}

/// Writes the cache as a new private file (0600, in a directory made 0700) renamed over the old one: an existing
/// file's wider permissions are not kept, and a symlink at the path is replaced, never followed.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        // create_new: fails on anything already there, a symlink included (O_CREAT|O_EXCL never follows one).
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

/// The IdP's device authorization and token endpoints, from its discovery document.
fn endpoints(agent: &ureq::Agent, config: &LoginConfig) -> Result<(String, String), CliError> {
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
    Ok((
        endpoint("device_authorization_endpoint")?,
        endpoint("token_endpoint")?,
    ))
}

/// The token endpoint's answer to a successful grant.
fn token_answer(answer: &serde_json::Value) -> Result<Answer, CliError> {
    let token = answer["access_token"]
        .as_str()
        .ok_or_else(|| CliError::Login("the IdP answered without an access token".into()))?;
    Ok(Answer {
        access_token: token.to_owned(),
        expires_in: answer["expires_in"].as_u64().unwrap_or(300),
        refresh_token: answer["refresh_token"].as_str().map(str::to_owned),
    })
}

/// Why the token endpoint said no, in its own words (RFC 6749 5.2).
fn refusal_reason(answer: &serde_json::Value) -> &str {
    answer["error_description"]
        .as_str()
        .or(answer["error"].as_str())
        .unwrap_or("no reason given")
}

/// A new access token (and the refresh token that replaces this one) without asking the person again.
fn refresh_flow(
    agent: &ureq::Agent,
    config: &LoginConfig,
    refresh_token: &str,
) -> Result<Answer, CliError> {
    let (_, token_endpoint) = endpoints(agent, config)?;
    let (status, answer) = json(
        agent.post(&token_endpoint).send_form([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", config.client_id.as_str()),
        ]),
        "renewing the login",
    )?;
    if status != 200 {
        return Err(CliError::Login(format!(
            "HTTP {status}: {}",
            refusal_reason(&answer)
        )));
    }
    token_answer(&answer)
}

fn device_flow(
    agent: &ureq::Agent,
    config: &LoginConfig,
    out: &mut dyn Write,
) -> Result<Answer, CliError> {
    let (device_endpoint, token_endpoint) = endpoints(agent, config)?;
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
            refusal_reason(&authz)
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
            return token_answer(&answer);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_cached_token_is_renewed_before_it_runs_out() {
        let entry = |issued_at, expires_at| Cached {
            issuer: "i".into(),
            client_id: "c".into(),
            access_token: "t".into(),
            expires_at,
            issued_at,
            refresh_token: None,
        };
        // Twelve hours: a minute before the end is too late.
        assert!(entry(0, 43_200).fresh_at(43_000));
        assert!(!entry(0, 43_200).fresh_at(43_150));
        // Forty seconds: renewed in its last ten, not at once.
        assert!(entry(1000, 1040).fresh_at(1025));
        assert!(!entry(1000, 1040).fresh_at(1031));
        // A cache written before issued_at was kept: a minute.
        assert!(!entry(0, 1000).fresh_at(950));
    }

    #[test]
    fn the_cache_is_private_whatever_was_there() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cache/alice.json");
        write_private(&path, b"one").expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        // A file someone made readable: rewritten private (the old permissions are not kept).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(
            read_private(&path),
            None,
            "a cache others can read is not used"
        );
        write_private(&path, b"two").expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(read_private(&path).as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn a_symlink_at_the_cache_path_is_neither_followed_nor_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").expect("victim");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let path = dir.path().join("alice.json");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        assert_eq!(read_private(&path), None, "a planted symlink is not read");
        write_private(&path, b"token").expect("write");
        assert_eq!(
            std::fs::read(&victim).expect("victim"),
            b"keep",
            "the link was not followed"
        );
        assert!(
            std::fs::symlink_metadata(&path)
                .expect("meta")
                .file_type()
                .is_file()
        );
    }
}

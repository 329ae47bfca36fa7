//! A token issuer for the registry's token auth (the distribution "token authentication" protocol): clients that
//! the registry answers with `WWW-Authenticate: Bearer realm=…` fetch a token here with basic auth, and the registry
//! verifies the token's signature against the test CA (`x5c` chain), its issuer, audience and lifetime. Plain HTTP
//! on loopback; the registry itself does all the checking that matters.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pgrator_world::registry::TokenAuth;
use pgrator_world::tls::TestCa;
use serde_json::json;

pub const SERVICE: &str = "pgrator-test-registry";
pub const ISSUER: &str = "pgrator-test-token-issuer";

/// A running issuer; stops accepting when dropped.
pub struct TokenIssuer {
    port: u16,
    stop: Arc<AtomicBool>,
    issued: Arc<AtomicU64>,
    _ca: TestCa,
    root: std::path::PathBuf,
}

impl TokenIssuer {
    /// Issues tokens to `user` with `password` (any other credentials get 401).
    pub fn start(user: &str, password: &str) -> TokenIssuer {
        let ca = TestCa::new().expect("token CA");
        let cert = ca
            .server_cert("token-issuer", &[])
            .expect("signing certificate");
        let cert_pem = std::fs::read_to_string(&cert.cert).expect("read cert");
        let key =
            EncodingKey::from_ec_pem(&std::fs::read(&cert.key).expect("read key")).expect("EC key");
        // x5c: the certificate's DER in standard base64, which is the PEM body without its lines.
        let x5c: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicU64::new(0));
        let expected = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        let (stop_flag, count) = (stop.clone(), issued.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &expected, &key, &x5c, &count);
                }
            }
        });
        TokenIssuer {
            port,
            stop,
            issued,
            root: ca.ca_path(),
            _ca: ca,
        }
    }

    /// What the registry needs to send clients here and to trust the tokens.
    pub fn registry_auth(&self) -> TokenAuth {
        TokenAuth {
            realm: format!("http://127.0.0.1:{}/token", self.port),
            service: SERVICE.into(),
            issuer: ISSUER.into(),
            root_cert_bundle: self.root.clone(),
        }
    }

    /// How many tokens were handed out.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    mut stream: TcpStream,
    expected_auth: &str,
    key: &EncodingKey,
    x5c: &str,
    issued: &AtomicU64,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (status, body) = if path != "/token" {
        ("404 Not Found", json!({"error": "not found"}))
    } else if authorization.as_deref() != Some(expected_auth) {
        (
            "401 Unauthorized",
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}),
        )
    } else {
        let jti = issued.fetch_add(1, Ordering::SeqCst);
        (
            "200 OK",
            json!({"token": token(query, key, x5c, jti), "expires_in": 300}),
        )
    };
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A token granting what the `scope` parameters ask for (`repository:<name>:<actions>`).
fn token(query: &str, key: &EncodingKey, x5c: &str, jti: u64) -> String {
    let access: Vec<serde_json::Value> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .filter_map(|(_, v)| {
            let scope = percent_decode(v);
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({
        "iss": ISSUER, "sub": "ci", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": jti.to_string(),
        "access": access,
    });
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(vec![x5c.to_string()]);
    jsonwebtoken::encode(&header, &claims, key).expect("sign the token")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

//! HTTPS requests to the IdP from inside a backend: bounded and interruptible.
//!
//! The request runs on a short-lived helper thread (all signals blocked, no PostgreSQL calls), while the backend
//! waits on its latch and on an eventfd the thread signals when done. Between waits the backend processes
//! interrupts, so `pg_terminate_backend` and `authentication_timeout` end a login stuck on a slow IdP at once.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgrx::pg_sys;

/// Trusted when no CA file is configured (Debian's bundle, as in the PostgreSQL images CNPG runs).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the caller needs to know about an answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response header by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// PEM bundle to trust instead of the system store (the IdP's CA).
    pub ca_file: Option<String>,
    /// Total time a request may take, connect to last byte.
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_body: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refusing a non-HTTPS URL for the IdP: {0}")]
    NotHttps(String),
    #[error("timed out after {0} ms")]
    Timeout(u128),
    #[error("reading the CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("{0}")]
    Http(String),
    #[error("could not start the request thread: {0}")]
    Thread(String),
}

/// GET `url`, bounded by `settings.timeout`, interruptible.
pub fn get(url: &str, settings: &HttpSettings) -> Result<HttpResponse, FetchError> {
    request(
        Request::Get {
            url: url.to_string(),
        },
        settings,
    )
}

/// POST a form (introspection); `headers` carry the client authentication.
pub fn post_form(
    url: &str,
    headers: Vec<(String, String)>,
    body: String,
    settings: &HttpSettings,
) -> Result<HttpResponse, FetchError> {
    request(
        Request::PostForm {
            url: url.to_string(),
            headers,
            body,
        },
        settings,
    )
}

enum Request {
    Get {
        url: String,
    },
    PostForm {
        url: String,
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl Request {
    fn url(&self) -> &str {
        match self {
            Request::Get { url } | Request::PostForm { url, .. } => url,
        }
    }
}

fn request(req: Request, settings: &HttpSettings) -> Result<HttpResponse, FetchError> {
    if !req.url().starts_with("https://") {
        return Err(FetchError::NotHttps(req.url().to_string()));
    }
    let agent = agent(settings)?;
    let done = Arc::new(EventFd::new().map_err(|e| FetchError::Thread(e.to_string()))?);
    let slot: Arc<Mutex<Option<Result<HttpResponse, FetchError>>>> = Arc::new(Mutex::new(None));
    let max_body = settings.max_body;

    let thread_done = Arc::clone(&done);
    let thread_slot = Arc::clone(&slot);
    spawn_with_signals_blocked(move || {
        let answer = perform(&agent, req, max_body);
        *thread_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
        thread_done.signal();
    })
    .map_err(|e| FetchError::Thread(e.to_string()))?;

    let started = Instant::now();
    loop {
        if let Some(answer) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return answer;
        }
        let elapsed = started.elapsed();
        if elapsed >= settings.timeout {
            // The thread ends by itself: its agent has the same deadline.
            return Err(FetchError::Timeout(elapsed.as_millis()));
        }
        let remaining = settings.timeout - elapsed;
        wait_latch_or_fd(done.raw(), remaining);
        pgrx::check_for_interrupts!();
    }
}

fn perform(agent: &ureq::Agent, req: Request, max_body: u64) -> Result<HttpResponse, FetchError> {
    let answer = match req {
        Request::Get { url } => agent.get(&url).header("Accept", "application/json").call(),
        Request::PostForm { url, headers, body } => {
            let mut post = agent.post(&url);
            for (name, value) in &headers {
                post = post.header(name.as_str(), value.as_str());
            }
            post.send(body.as_bytes())
        }
    };
    let mut response = answer.map_err(|e| FetchError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    let headers = ["cache-control", "expires", "date"]
        .iter()
        .filter_map(|name| {
            let v = response.headers().get(*name)?.to_str().ok()?;
            Some((name.to_string(), v.to_string()))
        })
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(max_body)
        .read_to_vec()
        .map_err(|e| FetchError::Http(format!("reading the body: {e}")))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn agent(settings: &HttpSettings) -> Result<ureq::Agent, FetchError> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig};
    let path = match &settings.ca_file {
        Some(path) if !path.is_empty() => path.clone(),
        _ => SYSTEM_CA_BUNDLE.to_string(),
    };
    let roots = {
        {
            let pem = std::fs::read(&path).map_err(|e| FetchError::CaFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(FetchError::CaFile {
                    path: path.clone(),
                    reason: "no certificate in it".into(),
                });
            }
            RootCerts::new_with_certs(&certs)
        }
    };
    let tls = TlsConfig::builder().root_certs(roots).build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(settings.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent("pgrator-validator")
        .build()
        .new_agent())
}

/// Sleeps on the latch, handling interrupts (terminate, authentication_timeout) as they come.
pub fn sleep_interruptibly(duration: Duration) {
    let timeout_ms = duration.as_millis().clamp(1, 1000) as std::ffi::c_long;
    let events = (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32;
    // SAFETY: main thread of a backend or background worker, whose own latch MyLatch is.
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            events,
            timeout_ms,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    pgrx::check_for_interrupts!();
}

fn wait_latch_or_fd(fd: i32, remaining: Duration) {
    let timeout_ms = remaining.as_millis().clamp(1, 1000) as std::ffi::c_long;
    let events = (pg_sys::WL_LATCH_SET
        | pg_sys::WL_SOCKET_READABLE
        | pg_sys::WL_TIMEOUT
        | pg_sys::WL_EXIT_ON_PM_DEATH) as i32;
    // SAFETY: called on the backend's main thread; MyLatch is the backend's own latch, set up before
    // authentication; `fd` is an eventfd that stays open while `done` (an Arc) lives in our caller.
    unsafe {
        pg_sys::WaitLatchOrSocket(
            pg_sys::MyLatch,
            events,
            fd,
            timeout_ms,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
}

/// A Linux eventfd: the request thread writes to it, the backend waits on it.
struct EventFd(OwnedFd);

impl EventFd {
    fn new() -> std::io::Result<EventFd> {
        // SAFETY: eventfd has no memory preconditions; on success we own the returned descriptor.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn raw(&self) -> i32 {
        self.0.as_raw_fd()
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to a descriptor we own.
        unsafe {
            libc::write(self.raw(), (&one as *const u64).cast(), 8);
        }
    }
}

/// Backend threads must not receive the signals PostgreSQL relies on (SIGTERM, SIGINT, SIGUSR1...): block them all
/// while spawning, so the new thread inherits a full mask, then restore ours.
fn spawn_with_signals_blocked<F: FnOnce() + Send + 'static>(f: F) -> std::io::Result<()> {
    // SAFETY: sigset_t is plain data; sigfillset/pthread_sigmask only read and write the sets we pass.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let spawned = std::thread::Builder::new()
            .name("pgrator-http".into())
            .spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned.map(|_| ())
    }
}

//! `pgrator postgres proxy`: an authenticating local proxy, so any PostgreSQL client (psql before 18, pgjdbc,
//! psycopg, node-postgres, ...) gets personal OAuth access. The developer logs in once (the CLI's device flow, its
//! token cached and renewed); every client connection gets a server connection of its own over TLS, verified
//! against the cluster's CA, logged in with the token as the developer's personal role; then bytes are relayed.
//!
//! Pieces: `listen` (who may connect), `credentials` (token and role), `upstream` (the server connection),
//! `session` (one client).

pub mod credentials;
pub mod listen;
pub mod session;
pub mod upstream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::CliError;
use credentials::{Roles, Tokens};
use session::SessionError;
use upstream::Upstream;

/// What every session shares.
pub struct Proxy {
    pub upstream: Upstream,
    pub tokens: Tokens,
    pub roles: Roles,
    pub agent: ureq::Agent,
    pub cancel_keys: CancelKeys,
}

/// The cancel keys (process id and secret, as BackendKeyData gave them) of the sessions open through this proxy:
/// a cancel request is passed on only for one of them.
#[derive(Default)]
pub struct CancelKeys {
    held: Mutex<HashMap<Vec<u8>, usize>>,
}

/// A session's hold on its key; dropped when the session ends.
pub struct HeldKey<'a> {
    keys: &'a CancelKeys,
    key: Vec<u8>,
}

impl CancelKeys {
    pub fn hold(&self, key: Vec<u8>) -> HeldKey<'_> {
        *self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_insert(0) += 1;
        HeldKey { keys: self, key }
    }

    pub fn holds(&self, key: &[u8]) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }
}

impl Drop for HeldKey<'_> {
    fn drop(&mut self) {
        let mut held = self.keys.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// Where to listen.
pub enum Listen {
    /// A Unix socket `<dir>/.s.PGSQL.<port>` in a private directory.
    Socket { dir: PathBuf, port: u16 },
    /// 127.0.0.1:`port` (0: any free one), with a password made for this run.
    Tcp { port: u16 },
}

/// Where the proxy listens once it does, for the connection strings it prints.
#[derive(Clone)]
pub enum Listening {
    Socket { dir: PathBuf, port: u16 },
    Tcp { port: u16, password: String },
}

impl Listening {
    /// A libpq connection string for `role` (no password on the socket: the proxy logs in).
    pub fn conninfo(&self, role: &str) -> String {
        match self {
            Listening::Socket { dir, port } => {
                format!("host={} port={port} dbname=app user={role}", dir.display())
            }
            Listening::Tcp { port, password } => format!(
                "host=127.0.0.1 port={port} dbname=app user={role} password={password} sslmode=disable"
            ),
        }
    }
}

enum Listener {
    Socket {
        listener: tokio::net::UnixListener,
        path: PathBuf,
        uid: u32,
    },
    Tcp {
        listener: tokio::net::TcpListener,
        password: Arc<str>,
    },
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Socket { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Listens as asked, calls `ready` with where, then serves clients until `stop` completes (Ctrl-C), removing the
/// socket on the way out.
pub async fn serve(
    proxy: Arc<Proxy>,
    listen: Listen,
    ready: impl FnOnce(&Listening),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), CliError> {
    let (listener, listening) = match listen {
        Listen::Socket { dir, port } => {
            listen::private_dir(&dir)?;
            let path = listen::socket_path(&dir, port);
            let listener = listen::bind_socket(&path)?;
            (
                Listener::Socket {
                    listener,
                    path,
                    uid: listen::own_uid()?,
                },
                Listening::Socket { dir, port },
            )
        }
        Listen::Tcp { port } => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| CliError::Usage(format!("listening on 127.0.0.1:{port}: {e}")))?;
            let port = listener
                .local_addr()
                .map_err(|e| CliError::Usage(e.to_string()))?
                .port();
            let password = listen::run_password()?;
            (
                Listener::Tcp {
                    listener,
                    password: password.clone().into(),
                },
                Listening::Tcp { port, password },
            )
        }
    };
    ready(&listening);
    let accepting = accept_loop(proxy, &listener);
    tokio::select! {
        result = accepting => result,
        () = stop => Ok(()),
    }
}

async fn accept_loop(proxy: Arc<Proxy>, listener: &Listener) -> Result<(), CliError> {
    loop {
        match listener {
            Listener::Socket { listener, uid, .. } => {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(|e| CliError::Usage(format!("accepting a connection: {e}")))?;
                // The directory keeps other users out; the peer's uid is checked all the same.
                let peer = stream.peer_cred().map(|c| c.uid());
                if peer.as_ref().ok() != Some(uid) {
                    let who = match peer {
                        Ok(other) => format!("uid {other}"),
                        Err(e) => format!("an unknown uid ({e})"),
                    };
                    eprintln!(
                        "pgrator: refused a connection from {who}: the proxy is for uid {uid} only"
                    );
                    continue;
                }
                spawn_session(proxy.clone(), stream, None);
            }
            Listener::Tcp { listener, password } => {
                let (stream, _) = listener
                    .accept()
                    .await
                    .map_err(|e| CliError::Usage(format!("accepting a connection: {e}")))?;
                let _ = stream.set_nodelay(true);
                spawn_session(proxy.clone(), stream, Some(password.clone()));
            }
        }
    }
}

fn spawn_session<C>(proxy: Arc<Proxy>, stream: C, password: Option<Arc<str>>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        match session::serve(stream, &proxy, password.as_deref()).await {
            Ok(()) => {}
            Err(SessionError::Refused { role, error }) => eprintln!(
                "pgrator: the database refused the login as {role}: {error}. Has the grant ended? \
                 See `pgrator postgres accesses`."
            ),
            Err(e) => eprintln!("pgrator: a connection ended: {e}"),
        }
    });
}

/// Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::CancelKeys;

    #[test]
    fn a_cancel_key_is_good_while_a_session_holds_it() {
        let keys = CancelKeys::default();
        assert!(!keys.holds(b"12345678"));
        let first = keys.hold(b"12345678".to_vec());
        let second = keys.hold(b"12345678".to_vec());
        assert!(keys.holds(b"12345678"));
        assert!(!keys.holds(b"12345679"));
        drop(first);
        assert!(keys.holds(b"12345678"), "still held by the second");
        drop(second);
        assert!(!keys.holds(b"12345678"));
    }
}

//! One client connection: its negotiation with the proxy (no TLS locally, the per-run password on TCP), a server
//! connection of its own logged in with the developer's token (OAUTHBEARER in the first SASL message, so one
//! server connection, not libpq's two), the server's greeting read up to ReadyForQuery (its cancel key noted), then
//! bytes relayed both ways untouched. A cancel request goes to the primary on a connection of its own, and only
//! with a key one of this proxy's sessions holds. Whatever fails before the relay reaches the client as a
//! PostgreSQL error; every step before the relay has a deadline.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Proxy;
use crate::CliError;
use crate::forward::Forward;
use crate::pgwire::{
    self, AUTH_CLEARTEXT, AUTH_OK, AUTH_SASL, AUTH_SASL_CONTINUE, FirstPacket, MAX_AUTH_MESSAGE,
    ServerError, Startup,
};

/// Why a client's session ended early (reported on the terminal; the client got a PostgreSQL error).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the client: {0}")]
    Client(String),
    #[error("{0}")]
    Proxy(#[from] CliError),
    /// The server refused the login: its own error, already passed to the client.
    #[error("the server refused the login as {role}: {error}")]
    Refused {
        role: String,
        error: Box<ServerError>,
    },
}

/// The first byte of a TLS handshake: a client trying direct TLS (`sslnegotiation=direct`).
const TLS_HANDSHAKE: u8 = 0x16;

/// How long a client has to say who it is (and give the password); how long the server side has to log in (a
/// port-forward through the API server and the kubelet, TLS, the validator).
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);
const SERVER_DEADLINE: Duration = Duration::from_secs(60);
/// Messages a server may send before the login is done: a server that never finishes is cut off.
const MAX_LOGIN_MESSAGES: usize = 64;

/// Runs `step` with a deadline; past it, the session ends with `what` timed out.
async fn within<T>(
    deadline: Duration,
    what: &str,
    step: impl std::future::Future<Output = Result<T, SessionError>>,
) -> Result<T, SessionError> {
    tokio::time::timeout(deadline, step)
        .await
        .unwrap_or_else(|_| {
            Err(SessionError::Client(format!(
                "{what} took longer than {} s",
                deadline.as_secs()
            )))
        })
}

/// Serves one client until its session ends. `password`: what a TCP client must send first (none on the socket).
pub async fn serve<C: AsyncRead + AsyncWrite + Unpin>(
    mut client: C,
    proxy: &Proxy,
    password: Option<&str>,
) -> Result<(), SessionError> {
    let first = within(CLIENT_DEADLINE, "the client's startup", async {
        let first = first_packet(&mut client).await?;
        // The password comes first on TCP, for sessions; a cancel request cannot carry one, and is checked below
        // against the keys of this proxy's own sessions instead.
        if let (FirstPacket::Startup(_), Some(expected)) = (&first, password) {
            check_password(&mut client, expected).await?;
        }
        Ok(first)
    })
    .await?;
    let mut startup = match first {
        FirstPacket::Cancel(packet) => return cancel(proxy, &packet).await,
        FirstPacket::Startup(s) => s,
        FirstPacket::Ssl | FirstPacket::GssEnc => {
            return Err(SessionError::Client("asked for encryption twice".into()));
        }
    };
    let role = match proxy.roles.get(&proxy.tokens, &proxy.agent).await {
        Ok(role) if !role.contains('\0') => role,
        Ok(_) => return Err(refuse(&mut client, "28000", "the role name is invalid", None).await),
        Err(e) => return Err(refuse(&mut client, "28000", &e.to_string(), None).await),
    };
    startup.set("user", &role);
    if startup.get("database").is_none() {
        startup.set("database", "app");
    }
    let token = match proxy.tokens.get().await {
        Ok(t) => t.access_token,
        Err(e) => {
            let text = format!("pgrator could not log you in: {e}");
            return Err(refuse(&mut client, "28000", &text, None).await);
        }
    };
    let connected = tokio::time::timeout(SERVER_DEADLINE, proxy.upstream.connect()).await;
    let mut server = match connected {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let text = format!("pgrator could not reach {}: {e}", proxy.upstream.describe());
            return Err(refuse(&mut client, "08006", &text, None).await);
        }
        Err(_) => {
            let text = format!(
                "pgrator could not reach {} within {} s",
                proxy.upstream.describe(),
                SERVER_DEADLINE.as_secs()
            );
            return Err(refuse(&mut client, "08006", &text, None).await);
        }
    };
    let logged_in = within(
        SERVER_DEADLINE,
        "the server's login",
        log_in(&mut client, &mut server.tls, &startup, &role, &token),
    )
    .await;
    if let Err(SessionError::Refused { .. }) = &logged_in {
        proxy.roles.forget().await;
    }
    // Held for the session: its cancel key is good while it lasts.
    let _key = logged_in?.map(|k| proxy.cancel_keys.hold(k));
    let copied = tokio::io::copy_bidirectional(&mut client, &mut server.tls)
        .await
        .map(drop);
    drop(server.tls);
    match server.forward {
        Some((pod, forwarder)) => Forward::finish(&pod, forwarder, copied).await?,
        None => copied
            .or_else(|e| {
                if crate::forward::is_hang_up(&e) {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| CliError::Unavailable(format!("relaying: {e}")))?,
    }
    Ok(())
}

/// Reads the client's first packet, answering TLS and GSS encryption requests with "no" (a local proxy: the
/// client's traffic never leaves the machine; the proxy's own to the server is TLS).
async fn first_packet<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
) -> Result<FirstPacket, SessionError> {
    let io = |e: std::io::Error| SessionError::Client(format!("reading its first packet: {e}"));
    for _ in 0..3 {
        let mut word = [0u8; 4];
        client.read_exact(&mut word).await.map_err(io)?;
        if word[0] == TLS_HANDSHAKE {
            return Err(SessionError::Client(
                "it started TLS directly (sslnegotiation=direct); connect with sslmode=disable or prefer, \
                 the proxy is local"
                    .into(),
            ));
        }
        let len =
            pgwire::first_packet_len(word).map_err(|e| SessionError::Client(e.to_string()))?;
        let mut body = vec![0u8; len];
        client.read_exact(&mut body).await.map_err(io)?;
        match pgwire::parse_first(&body).map_err(|e| SessionError::Client(e.to_string()))? {
            FirstPacket::Ssl | FirstPacket::GssEnc => {
                client.write_all(b"N").await.map_err(io)?;
            }
            other => return Ok(other),
        }
    }
    Err(SessionError::Client("it kept asking for encryption".into()))
}

/// Asks a TCP client for the per-run password; a wrong one ends the connection with PostgreSQL's own error.
async fn check_password<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    expected: &str,
) -> Result<(), SessionError> {
    let io = |e: std::io::Error| SessionError::Client(format!("password exchange: {e}"));
    client
        .write_all(&pgwire::auth_message(AUTH_CLEARTEXT))
        .await
        .map_err(io)?;
    let (kind, body) = read_message(client).await.map_err(SessionError::Client)?;
    let given = (kind == b'p').then(|| pgwire::password(&body)).flatten();
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return Ok(());
    }
    Err(refuse(
        client,
        "28P01",
        "password authentication failed: use the password the proxy printed for this run",
        None,
    )
    .await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sends the startup and answers the server's authentication with the token (once); on success passes the server's
/// messages to the client up to its first ReadyForQuery and returns the cancel key it gave (the rest is relayed as
/// it comes).
async fn log_in<C, S>(
    client: &mut C,
    server: &mut S,
    startup: &Startup,
    role: &str,
    token: &str,
) -> Result<Option<Vec<u8>>, SessionError>
where
    C: AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let server_io = |e: std::io::Error| CliError::Unavailable(format!("the server: {e}"));
    server
        .write_all(&startup.encode())
        .await
        .map_err(server_io)?;
    let client_io = |e: std::io::Error| SessionError::Client(e.to_string());
    let (mut token_sent, mut authenticated, mut key) = (false, false, None);
    // What the client is owed, sent in one write when the server is ready (or has something to refuse): a dozen
    // small writes would each cost the client a wake-up.
    let mut owed: Vec<u8> = Vec::new();
    for _ in 0..MAX_LOGIN_MESSAGES {
        let (kind, body) = read_message(server)
            .await
            .map_err(|e| CliError::Unavailable(format!("the server: {e}")))?;
        match kind {
            b'R' => {
                let (code, data) = pgwire::auth_request(&body)
                    .map_err(|e| CliError::Unavailable(format!("the server: {e}")))?;
                match code {
                    AUTH_OK if !authenticated => {
                        authenticated = true;
                        owed.extend_from_slice(&pgwire::message(b'R', &body));
                    }
                    AUTH_SASL
                        if !token_sent
                            && pgwire::sasl_mechanisms(data)
                                .iter()
                                .any(|m| m == "OAUTHBEARER") =>
                    {
                        token_sent = true;
                        server
                            .write_all(&pgwire::oauthbearer_initial(token))
                            .await
                            .map_err(server_io)?;
                    }
                    // The server's error status (RFC 7628 3.2.2): answer so that it sends its error.
                    AUTH_SASL_CONTINUE if token_sent && !authenticated => {
                        server
                            .write_all(&pgwire::oauthbearer_abort())
                            .await
                            .map_err(server_io)?;
                    }
                    // No OAuth line for the role (CNPG's catch-all asks for a password): the grant has ended or
                    // is not in force yet. A refusal like the server's own.
                    other => {
                        let text = format!(
                            "the database asks {role} for {} instead of an OAuth token: the role has no personal \
                             access line in its pg_hba.conf (is the grant active?)",
                            method_name(other, data)
                        );
                        let _ = client.write_all(&owed).await;
                        let _ = refuse(client, "28000", &text, None).await;
                        return Err(SessionError::Refused {
                            role: role.to_owned(),
                            error: Box::new(ServerError {
                                severity: "FATAL".into(),
                                code: "28000".into(),
                                message: text,
                                ..ServerError::default()
                            }),
                        });
                    }
                }
            }
            // The greeting after the login: settings, the cancel key, then ReadyForQuery, from which on bytes are
            // relayed as they come.
            b'S' | b'K' | b'Z' if authenticated => {
                owed.extend_from_slice(&pgwire::message(kind, &body));
                match kind {
                    b'K' => key = Some(body),
                    b'Z' => {
                        client.write_all(&owed).await.map_err(client_io)?;
                        return Ok(key);
                    }
                    _ => {}
                }
            }
            // NegotiateProtocolVersion and notices are the client's to read.
            b'v' | b'N' => owed.extend_from_slice(&pgwire::message(kind, &body)),
            b'E' => {
                // The server's own refusal reaches the client as it is.
                owed.extend_from_slice(&pgwire::message(b'E', &body));
                let _ = client.write_all(&owed).await;
                return Err(SessionError::Refused {
                    role: role.to_owned(),
                    error: Box::new(ServerError::parse(&body)),
                });
            }
            other => {
                return Err(CliError::Unavailable(format!(
                    "the server sent message {:?} while logging in",
                    char::from(other)
                ))
                .into());
            }
        }
    }
    Err(CliError::Unavailable(format!(
        "the server sent more than {MAX_LOGIN_MESSAGES} messages without finishing the login"
    ))
    .into())
}

fn method_name(code: u32, data: &[u8]) -> String {
    match code {
        3 => "a password".into(),
        5 => "an MD5 password".into(),
        AUTH_SASL => format!("SASL {}", pgwire::sasl_mechanisms(data).join(", ")),
        other => format!("authentication method {other}"),
    }
}

/// Sends the client a FATAL error and returns what to report on the terminal.
async fn refuse<C: AsyncWrite + Unpin>(
    client: &mut C,
    code: &str,
    text: &str,
    hint: Option<&str>,
) -> SessionError {
    let _ = client
        .write_all(&pgwire::error_response("FATAL", code, text, hint))
        .await;
    let _ = client.flush().await;
    SessionError::Client(format!("refused: {text}"))
}

/// Passes a cancel request to the primary on a connection of its own (the server answers nothing), only when its
/// key is one a session of this proxy holds: nobody else gets a server connection out of the proxy.
async fn cancel(proxy: &Proxy, packet: &[u8]) -> Result<(), SessionError> {
    // Length word and request code, then the backend's process id and key.
    let key = packet.get(8..).unwrap_or_default();
    if !proxy.cancel_keys.holds(key) {
        return Err(SessionError::Client(
            "a cancel request for no session of this proxy".into(),
        ));
    }
    let mut server = within(SERVER_DEADLINE, "reaching the server to cancel", async {
        Ok(proxy.upstream.connect().await?)
    })
    .await?;
    server
        .tls
        .write_all(packet)
        .await
        .map_err(|e| CliError::Unavailable(format!("sending a cancel request: {e}")))?;
    let _ = server.tls.shutdown().await;
    drop(server.tls);
    if let Some((pod, forwarder)) = server.forward {
        Forward::finish(&pod, forwarder, Ok(())).await?;
    }
    Ok(())
}

/// One message (type, body), refusing bodies over [`MAX_AUTH_MESSAGE`].
async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(u8, Vec<u8>), String> {
    let mut head = [0u8; 5];
    reader
        .read_exact(&mut head)
        .await
        .map_err(|e| e.to_string())?;
    let len = pgwire::message_len([head[1], head[2], head[3], head[4]], MAX_AUTH_MESSAGE)
        .map_err(|e| e.to_string())?;
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    Ok((head[0], body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    /// A server that refuses the token: the client gets the server's own error, the proxy reports it.
    #[tokio::test]
    async fn a_refusal_reaches_the_client_as_the_servers_error() {
        let (mut proxy_side, mut server_side) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let mut len = [0u8; 4];
            server_side.read_exact(&mut len).await.expect("startup len");
            let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
            server_side.read_exact(&mut startup).await.expect("startup");
            let mut offer = AUTH_SASL.to_be_bytes().to_vec();
            offer.extend_from_slice(b"OAUTHBEARER\0\0");
            server_side
                .write_all(&pgwire::message(b'R', &offer))
                .await
                .expect("offer");
            let (kind, initial) = read_message(&mut server_side).await.expect("initial");
            assert_eq!(kind, b'p');
            assert!(String::from_utf8_lossy(&initial).contains("auth=Bearer tok\u{1}"));
            let mut status = AUTH_SASL_CONTINUE.to_be_bytes().to_vec();
            status.extend_from_slice(br#"{"status":"invalid_token"}"#);
            server_side
                .write_all(&pgwire::message(b'R', &status))
                .await
                .expect("status");
            let (kind, abort) = read_message(&mut server_side).await.expect("abort");
            assert_eq!((kind, abort.as_slice()), (b'p', &[0, 0, 0, 1, 1][..]));
            server_side
                .write_all(&pgwire::error_response(
                    "FATAL",
                    "28000",
                    "OAuth bearer authentication failed for user \"p_alice_read_1\"",
                    None,
                ))
                .await
                .expect("error");
            startup
        });
        let (mut client_side, mut client_end) = tokio::io::duplex(4096);
        let startup = Startup {
            version: 196_608,
            params: vec![("user".into(), "p_alice_read_1".into())],
        };
        let result = log_in(
            &mut client_end,
            &mut proxy_side,
            &startup,
            "p_alice_read_1",
            "tok",
        )
        .await;
        let Err(SessionError::Refused { role, error }) = result else {
            panic!("not refused: {result:?}");
        };
        assert_eq!(role, "p_alice_read_1");
        assert_eq!(error.code, "28000");
        drop(client_end);
        let (kind, body) = read_message(&mut client_side)
            .await
            .expect("the client's error");
        assert_eq!(kind, b'E');
        assert!(
            ServerError::parse(&body)
                .message
                .contains("OAuth bearer authentication failed")
        );
        let sent = server.await.expect("server");
        assert!(String::from_utf8_lossy(&sent).contains("p_alice_read_1"));
    }
}

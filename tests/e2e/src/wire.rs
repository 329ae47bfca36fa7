//! A minimal PostgreSQL wire-protocol client for the benchmark: one connection, startup, and either trust or an
//! OAUTHBEARER token in the first SASL message (RFC 7628), then `SELECT 1` and close. libpq 18 always spends a
//! first connection on discovery before it sends a token; a client that already holds a token (a pooler, an
//! application) does not need to, and this measures that case.

use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{Context, Result, bail};

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn read_message(stream: &mut TcpStream) -> Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).context("reading a message")?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    stream.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// Logs in as `user` to `database` at 127.0.0.1:`port` (trust, or the token if given), runs `SELECT 1`, closes.
pub fn login_select_close(
    port: u16,
    user: &str,
    database: &str,
    token: Option<&str>,
) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        startup.extend_from_slice(k.as_bytes());
        startup.push(0);
        startup.extend_from_slice(v.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut first = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    first.extend_from_slice(&startup);
    stream.write_all(&first)?;
    loop {
        let (kind, body) = read_message(&mut stream)?;
        match kind {
            b'R' => {
                let code = u32::from_be_bytes(body[..4].try_into().context("auth code")?);
                match (code, token) {
                    (0, _) => {}
                    (10, Some(token)) => {
                        let data = format!("n,,\x01auth=Bearer {token}\x01\x01");
                        let mut m = b"OAUTHBEARER\0".to_vec();
                        m.extend_from_slice(&(data.len() as u32).to_be_bytes());
                        m.extend_from_slice(data.as_bytes());
                        stream.write_all(&message(b'p', &m))?;
                    }
                    (12, _) => {}
                    (other, _) => bail!("authentication request {other} not handled"),
                }
            }
            b'E' => bail!("server error: {}", String::from_utf8_lossy(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    stream.write_all(&message(b'Q', b"SELECT 1\0"))?;
    loop {
        let (kind, body) = read_message(&mut stream)?;
        match kind {
            b'E' => bail!("server error: {}", String::from_utf8_lossy(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    stream.write_all(&message(b'X', b""))?;
    Ok(())
}

//! The parts of the PostgreSQL frontend/backend protocol the authenticating proxy speaks itself: the client's first
//! packet (startup, TLS and GSS requests, cancel), authentication requests, the OAUTHBEARER first message (RFC 7628)
//! and error messages. Pure: bytes in, values out. After authentication the proxy relays bytes untouched.

use std::fmt;

/// Request codes sent in place of a protocol version.
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// The largest first packet accepted (PostgreSQL's own limit is 10000 bytes).
pub const MAX_STARTUP: usize = 10_000;
/// The largest message accepted while authenticating (error texts, SASL data; not query results).
pub const MAX_AUTH_MESSAGE: usize = 64 * 1024;

/// Authentication request codes (`R` messages).
pub const AUTH_OK: u32 = 0;
pub const AUTH_CLEARTEXT: u32 = 3;
pub const AUTH_SASL: u32 = 10;
pub const AUTH_SASL_CONTINUE: u32 = 11;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("a packet of {0} bytes is too large")]
    TooLarge(usize),
    #[error("a packet of {0} bytes is too short")]
    TooShort(usize),
    #[error("protocol version {major}.{minor} is not supported (only 3.x)")]
    Version { major: u16, minor: u16 },
    #[error("the startup parameters are malformed: {0}")]
    Parameters(&'static str),
    #[error("the startup parameter {0} is given twice")]
    Duplicate(String),
    #[error("a cancel request of {0} bytes is malformed")]
    Cancel(usize),
    #[error("an authentication message is malformed")]
    Auth,
}

/// The client's first packet, without its length word.
#[derive(Debug, PartialEq, Eq)]
pub enum FirstPacket {
    Ssl,
    GssEnc,
    /// The whole packet, length included, to pass on as it is (the key's length varies with the protocol version).
    Cancel(Vec<u8>),
    Startup(Startup),
}

/// A startup message: the protocol version and the parameters in the order the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    pub version: u32,
    pub params: Vec<(String, String)>,
}

impl Startup {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (replacing the client's value, keeping its place) or appends it.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_owned(),
            None => self.params.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The packet, length word included.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = self.version.to_be_bytes().to_vec();
        for (k, v) in &self.params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        with_length(&body)
    }
}

fn with_length(body: &[u8]) -> Vec<u8> {
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(body);
    packet
}

/// Checks a first packet's length word (which counts itself) and returns the body's length.
pub fn first_packet_len(word: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(word) as usize;
    if len < 8 {
        return Err(WireError::TooShort(len));
    }
    if len > MAX_STARTUP {
        return Err(WireError::TooLarge(len));
    }
    Ok(len - 4)
}

/// Reads the client's first packet from its body (the bytes after the length word).
pub fn parse_first(body: &[u8]) -> Result<FirstPacket, WireError> {
    let code: [u8; 4] = body
        .get(..4)
        .and_then(|c| c.try_into().ok())
        .ok_or(WireError::TooShort(body.len() + 4))?;
    let code = u32::from_be_bytes(code);
    match code {
        SSL_REQUEST => Ok(FirstPacket::Ssl),
        GSSENC_REQUEST => Ok(FirstPacket::GssEnc),
        // Process id and a key of 4 (protocol 3.0) to 256 (3.2) bytes.
        CANCEL_REQUEST if (12..=264).contains(&body.len()) => {
            Ok(FirstPacket::Cancel(with_length(body)))
        }
        CANCEL_REQUEST => Err(WireError::Cancel(body.len() + 4)),
        version => {
            let (major, minor) = ((version >> 16) as u16, (version & 0xffff) as u16);
            if major != 3 {
                return Err(WireError::Version { major, minor });
            }
            let params = parse_params(&body[4..])?;
            Ok(FirstPacket::Startup(Startup { version, params }))
        }
    }
}

fn parse_params(mut rest: &[u8]) -> Result<Vec<(String, String)>, WireError> {
    let mut params = Vec::new();
    loop {
        let (key, after) = cstring(rest).ok_or(WireError::Parameters("unterminated name"))?;
        if key.is_empty() {
            if !after.is_empty() {
                return Err(WireError::Parameters("bytes after the end"));
            }
            return Ok(params);
        }
        let (value, after) = cstring(after).ok_or(WireError::Parameters("unterminated value"))?;
        // PostgreSQL takes the last of a repeated name: a second `user` would slip past the proxy's replacement.
        if params.iter().any(|(k, _)| *k == key) {
            return Err(WireError::Duplicate(key));
        }
        params.push((key, value));
        rest = after;
    }
}

/// A NUL-terminated UTF-8 string at the start of `bytes`, and what follows it.
fn cstring(bytes: &[u8]) -> Option<(String, &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    Some((text.to_owned(), &bytes[end + 1..]))
}

/// A backend or frontend message: type byte, length word, body.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Checks a message's length word and returns the body's length.
pub fn message_len(word: [u8; 4], limit: usize) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(word) as usize;
    if len < 4 {
        return Err(WireError::TooShort(len));
    }
    if len - 4 > limit {
        return Err(WireError::TooLarge(len));
    }
    Ok(len - 4)
}

/// An authentication request (`R`) with its code and the data after it.
pub fn auth_request(body: &[u8]) -> Result<(u32, &[u8]), WireError> {
    let code: [u8; 4] = body
        .get(..4)
        .and_then(|c| c.try_into().ok())
        .ok_or(WireError::Auth)?;
    Ok((u32::from_be_bytes(code), &body[4..]))
}

/// The SASL mechanisms a server offers (the data of an `AuthenticationSASL` request).
pub fn sasl_mechanisms(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

/// `SASLInitialResponse` for OAUTHBEARER with the token in it: `n,,^Aauth=Bearer <token>^A^A` (RFC 7628 3.1).
pub fn oauthbearer_initial(token: &str) -> Vec<u8> {
    let data = format!("n,,\x01auth=Bearer {token}\x01\x01");
    let mut body = b"OAUTHBEARER\0".to_vec();
    body.extend_from_slice(&(data.len() as u32).to_be_bytes());
    body.extend_from_slice(data.as_bytes());
    message(b'p', &body)
}

/// The client's answer to a failed OAUTHBEARER exchange (RFC 7628 3.2.3: a single kvsep), after which the server
/// sends its error.
pub fn oauthbearer_abort() -> Vec<u8> {
    let mut body = 1u32.to_be_bytes().to_vec();
    body.push(0x01);
    message(b'p', &body)
}

/// An authentication request to send to a client.
pub fn auth_message(code: u32) -> Vec<u8> {
    message(b'R', &code.to_be_bytes())
}

/// The password in a `PasswordMessage` body.
pub fn password(body: &[u8]) -> Option<String> {
    cstring(body)
        .filter(|(_, rest)| rest.is_empty())
        .map(|(p, _)| p)
}

/// An `ErrorResponse` to send to a client: severity, SQLSTATE, message and an optional hint.
pub fn error_response(severity: &str, code: &str, text: &str, hint: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |tag: u8, value: &str| {
        body.push(tag);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    };
    field(b'S', severity);
    field(b'V', severity);
    field(b'C', code);
    field(b'M', text);
    if let Some(hint) = hint {
        field(b'H', hint);
    }
    body.push(0);
    message(b'E', &body)
}

/// A server's `ErrorResponse` or `NoticeResponse`, read for a person.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerError {
    pub fn parse(body: &[u8]) -> ServerError {
        let mut e = ServerError::default();
        for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
            // Shown on a terminal: no control characters from the server.
            let value: String = String::from_utf8_lossy(&field[1..])
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            match field[0] {
                b'V' => e.severity = value,
                b'S' if e.severity.is_empty() => e.severity = value,
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                _ => {}
            }
        }
        e
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body_of(packet: &[u8]) -> &[u8] {
        let len = first_packet_len(packet[..4].try_into().expect("word")).expect("length");
        assert_eq!(len, packet.len() - 4);
        &packet[4..]
    }

    #[test]
    fn requests_are_told_apart_from_startups() {
        assert_eq!(
            parse_first(&SSL_REQUEST.to_be_bytes()),
            Ok(FirstPacket::Ssl)
        );
        assert_eq!(
            parse_first(&GSSENC_REQUEST.to_be_bytes()),
            Ok(FirstPacket::GssEnc)
        );
        let mut cancel = CANCEL_REQUEST.to_be_bytes().to_vec();
        cancel.extend_from_slice(&[0, 0, 0, 42, 1, 2, 3, 4]);
        assert_eq!(
            parse_first(&cancel),
            Ok(FirstPacket::Cancel(
                [&[0, 0, 0, 16][..], &cancel[..]].concat()
            ))
        );
        assert_eq!(
            parse_first(&(2u32 << 16).to_be_bytes()),
            Err(WireError::Version { major: 2, minor: 0 })
        );
        // A cancel request without its key, or with a key past 256 bytes.
        assert_eq!(
            parse_first(&CANCEL_REQUEST.to_be_bytes()),
            Err(WireError::Cancel(8))
        );
        let mut long = CANCEL_REQUEST.to_be_bytes().to_vec();
        long.resize(4 + 4 + 257, 7);
        assert!(parse_first(&long).is_err());
    }

    #[test]
    fn a_startup_keeps_its_parameters_and_the_user_is_replaced_in_place() {
        let mut s = Startup {
            version: 196_608,
            params: vec![
                ("user".into(), "root".into()),
                ("database".into(), "app".into()),
                ("application_name".into(), "psql".into()),
            ],
        };
        s.set("user", "p_alice_read_1");
        s.set("client_encoding", "UTF8");
        let packet = s.encode();
        let FirstPacket::Startup(back) = parse_first(body_of(&packet)).expect("parse") else {
            panic!("not a startup");
        };
        assert_eq!(back.get("user"), Some("p_alice_read_1"));
        assert_eq!(back.params[0].0, "user");
        assert_eq!(back.get("client_encoding"), Some("UTF8"));
        assert_eq!(back, s);
    }

    #[test]
    fn malformed_first_packets_are_refused() {
        assert_eq!(
            first_packet_len(4u32.to_be_bytes()),
            Err(WireError::TooShort(4))
        );
        assert_eq!(
            first_packet_len(20_000u32.to_be_bytes()),
            Err(WireError::TooLarge(20_000))
        );
        let mut unterminated = 196_608u32.to_be_bytes().to_vec();
        unterminated.extend_from_slice(b"user\0alice");
        assert!(matches!(
            parse_first(&unterminated),
            Err(WireError::Parameters(_))
        ));
        let mut twice = 196_608u32.to_be_bytes().to_vec();
        twice.extend_from_slice(b"user\0alice\0database\0app\0user\0postgres\0\0");
        assert_eq!(
            parse_first(&twice),
            Err(WireError::Duplicate("user".into()))
        );
        let mut trailing = 196_608u32.to_be_bytes().to_vec();
        trailing.extend_from_slice(b"user\0alice\0\0junk");
        assert!(matches!(
            parse_first(&trailing),
            Err(WireError::Parameters(_))
        ));
        assert!(message_len(3u32.to_be_bytes(), 100).is_err());
        assert!(message_len(200u32.to_be_bytes(), 100).is_err());
        assert_eq!(message_len(104u32.to_be_bytes(), 100), Ok(100));
    }

    #[test]
    fn the_oauthbearer_message_carries_the_token_as_rfc_7628_asks() {
        let m = oauthbearer_initial("abc.def");
        assert_eq!(m[0], b'p');
        let body = &m[5..];
        let data = b"n,,\x01auth=Bearer abc.def\x01\x01";
        assert_eq!(&body[..12], b"OAUTHBEARER\0");
        assert_eq!(&body[12..16], &(data.len() as u32).to_be_bytes());
        assert_eq!(&body[16..], data);
        assert_eq!(
            u32::from_be_bytes(m[1..5].try_into().expect("len")) as usize,
            m.len() - 1
        );
    }

    #[test]
    fn errors_read_well_both_ways() {
        let e = error_response(
            "FATAL",
            "28000",
            "no access",
            Some("run pgrator postgres access"),
        );
        let parsed = ServerError::parse(&e[5..]);
        assert_eq!(parsed.severity, "FATAL");
        assert_eq!(parsed.code, "28000");
        assert_eq!(parsed.hint.as_deref(), Some("run pgrator postgres access"));
        assert_eq!(parsed.to_string(), "FATAL 28000: no access");
        let escape = error_response("FATAL", "28000", "a\u{1b}[2Jb", None);
        assert_eq!(ServerError::parse(&escape[5..]).message, "a?[2Jb");
        assert_eq!(
            sasl_mechanisms(b"OAUTHBEARER\0SCRAM-SHA-256\0\0"),
            vec!["OAUTHBEARER", "SCRAM-SHA-256"]
        );
        assert_eq!(password(b"secret\0").as_deref(), Some("secret"));
        assert_eq!(password(b"secret"), None);
    }

    proptest! {
        #[test]
        fn any_startup_round_trips(
            params in proptest::collection::btree_map("[a-z_]{1,12}", "[^\u{0}]{0,20}", 0..8)
                .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
            minor in 0u32..3,
        ) {
            let s = Startup { version: (3 << 16) | minor, params };
            let packet = s.encode();
            prop_assert_eq!(parse_first(body_of(&packet)), Ok(FirstPacket::Startup(s)));
        }

        #[test]
        fn no_first_packet_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_first(&body);
        }
    }
}

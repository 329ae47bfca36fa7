//! Stage 1, envelope: size bound, three unpadded base64url segments, a strict-JSON header.
//!
//! The payload is only decoded after the signature has been verified (see `pipeline`), so unauthenticated
//! claim JSON is never parsed.

use serde_json::{Map, Value};

use crate::base64url;
use crate::json::{self, JsonError};
use crate::outcome::Outcome;

/// Default limit on the token's length in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The segments of a compact JWS. `Debug` shows sizes only: the segments are the token.
pub struct Envelope<'t> {
    /// `header.payload` exactly as received: the bytes the signature covers.
    pub signing_input: &'t str,
    /// The decoded protected header.
    pub header: Map<String, Value>,
    payload_b64: &'t str,
    /// The decoded signature (empty when the third segment is empty).
    pub signature: Vec<u8>,
}

/// Why a token's envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("token of {len} bytes exceeds the limit of {max}")]
    Oversized { len: usize, max: usize },
    #[error("token is empty")]
    Empty,
    #[error("token has {0} dot-separated segments, a JWS has 3")]
    SegmentCount(usize),
    #[error("{0} segment is not unpadded base64url")]
    BadEncoding(&'static str),
    #[error("JOSE header: {0}")]
    Header(JsonError),
    #[error("payload: {0}")]
    Payload(JsonError),
}

impl EnvelopeError {
    pub fn outcome(&self) -> Outcome {
        match self {
            EnvelopeError::Oversized { .. } => Outcome::Oversized,
            _ => Outcome::Malformed,
        }
    }
}

/// Splits and decodes a compact JWS; the header must be a strict JSON object.
pub fn open(token: &str, max_bytes: usize) -> Result<Envelope<'_>, EnvelopeError> {
    if token.len() > max_bytes {
        return Err(EnvelopeError::Oversized {
            len: token.len(),
            max: max_bytes,
        });
    }
    if token.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    let segments = token.bytes().filter(|b| *b == b'.').count() + 1;
    if segments != 3 {
        return Err(EnvelopeError::SegmentCount(segments));
    }
    let (signing_input, signature_b64) = token
        .rsplit_once('.')
        .ok_or(EnvelopeError::SegmentCount(1))?;
    let (header_b64, payload_b64) = signing_input
        .split_once('.')
        .ok_or(EnvelopeError::SegmentCount(2))?;
    if header_b64.is_empty() || !base64url::is_alphabet(header_b64) {
        return Err(EnvelopeError::BadEncoding("header"));
    }
    if payload_b64.is_empty() || !base64url::is_alphabet(payload_b64) {
        return Err(EnvelopeError::BadEncoding("payload"));
    }
    let signature =
        base64url::decode(signature_b64).ok_or(EnvelopeError::BadEncoding("signature"))?;
    let header_bytes = base64url::decode(header_b64).ok_or(EnvelopeError::BadEncoding("header"))?;
    let header = json::parse_object(&header_bytes).map_err(EnvelopeError::Header)?;
    Ok(Envelope {
        signing_input,
        header,
        payload_b64,
        signature,
    })
}

impl std::fmt::Debug for Envelope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("signing_input_len", &self.signing_input.len())
            .field("header_members", &self.header.keys().collect::<Vec<_>>())
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

impl Envelope<'_> {
    /// Decodes the payload as a strict JSON object. Call only after the signature verified.
    pub fn payload(&self) -> Result<Map<String, Value>, EnvelopeError> {
        let bytes =
            base64url::decode(self.payload_b64).ok_or(EnvelopeError::BadEncoding("payload"))?;
        json::parse_object(&bytes).map_err(EnvelopeError::Payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> String {
        base64url::encode(s.as_bytes())
    }

    fn token(h: &str, p: &str, sig: &[u8]) -> String {
        format!("{}.{}.{}", b(h), b(p), base64url::encode(sig))
    }

    #[test]
    fn opens_a_well_formed_token() {
        let t = token(r#"{"alg":"RS256"}"#, r#"{"sub":"x"}"#, &[1, 2, 3]);
        let e = open(&t, DEFAULT_MAX_TOKEN_BYTES).expect("opens");
        assert_eq!(e.header["alg"], "RS256");
        assert_eq!(e.signature, vec![1, 2, 3]);
        assert_eq!(e.payload().expect("payload")["sub"], "x");
        assert_eq!(
            format!("{}.", e.signing_input),
            t[..t.rfind('.').expect("dot") + 1]
        );
    }

    #[test]
    fn size_limit_is_inclusive() {
        let t = token(r#"{"alg":"RS256"}"#, r#"{"sub":"x"}"#, &[1]);
        assert!(open(&t, t.len()).is_ok());
        assert_eq!(
            open(&t, t.len() - 1).map(|_| ()),
            Err(EnvelopeError::Oversized {
                len: t.len(),
                max: t.len() - 1
            })
        );
        assert_eq!(
            EnvelopeError::Oversized { len: 2, max: 1 }.outcome(),
            Outcome::Oversized
        );
    }

    #[test]
    fn segment_rules() {
        assert_eq!(open("", 100).map(|_| ()), Err(EnvelopeError::Empty));
        assert_eq!(
            open("abc", 100).map(|_| ()),
            Err(EnvelopeError::SegmentCount(1))
        );
        assert_eq!(
            open("a.b", 100).map(|_| ()),
            Err(EnvelopeError::SegmentCount(2))
        );
        assert_eq!(
            open("a.b.c.d.e", 100).map(|_| ()),
            Err(EnvelopeError::SegmentCount(5)),
            "JWE shape"
        );
        let p = b(r#"{"sub":"x"}"#);
        assert_eq!(
            open(&format!(".{p}.AA"), 100).map(|_| ()),
            Err(EnvelopeError::BadEncoding("header"))
        );
        let h = b(r#"{"alg":"RS256"}"#);
        assert_eq!(
            open(&format!("{h}..AA"), 100).map(|_| ()),
            Err(EnvelopeError::BadEncoding("payload"))
        );
    }

    #[test]
    fn encoding_rules() {
        let h = b(r#"{"alg":"RS256"}"#);
        let p = b(r#"{"sub":"x"}"#);
        for bad_sig in ["AQ==", "A+B/", "AQ ", "Y"] {
            assert_eq!(
                open(&format!("{h}.{p}.{bad_sig}"), 100).map(|_| ()),
                Err(EnvelopeError::BadEncoding("signature")),
                "{bad_sig}"
            );
        }
        assert_eq!(
            open(&format!("{h}=.{p}.AQ"), 100).map(|_| ()),
            Err(EnvelopeError::BadEncoding("header"))
        );
        assert_eq!(
            open(&format!(" {h}.{p}.AQ"), 100).map(|_| ()),
            Err(EnvelopeError::BadEncoding("header"))
        );
        assert_eq!(
            open(&format!("{h}.{p}x=.AQ"), 100).map(|_| ()),
            Err(EnvelopeError::BadEncoding("payload"))
        );
        // An empty signature segment opens (so that alg=none is reported as such by the header stage).
        assert!(open(&format!("{h}.{p}."), 100).is_ok());
    }

    #[test]
    fn header_must_be_a_strict_object() {
        let p = b(r#"{"sub":"x"}"#);
        for h in [
            "[1]",
            "\"alg\"",
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"alg":"RS256"} x"#,
            "not json",
        ] {
            let t = format!("{}.{p}.AQ", b(h));
            assert!(
                matches!(open(&t, 1000).map(|_| ()), Err(EnvelopeError::Header(_))),
                "{h}"
            );
        }
    }

    #[test]
    fn payload_must_be_a_strict_object() {
        let h = r#"{"alg":"RS256"}"#;
        for p in [
            "[1]",
            "42",
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"sub":"a"}garbage"#,
        ] {
            let t = token(h, p, &[1]);
            let e = open(&t, 1000).expect("envelope opens; payload is decoded later");
            assert!(matches!(e.payload(), Err(EnvelopeError::Payload(_))), "{p}");
        }
        // Undecodable payload bytes (valid alphabet, impossible length).
        let t = format!("{}.Y.AQ", b(h));
        assert!(matches!(
            open(&t, 1000).expect("opens").payload(),
            Err(EnvelopeError::BadEncoding("payload"))
        ));
    }
}

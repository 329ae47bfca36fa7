//! Content digests (`sha256:<hex>`), the identity of every blob in an image.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::error::{OciError, Result};

/// A SHA-256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// Parses `sha256:<64 lowercase hex digits>`; other algorithms are refused.
    pub fn parse(text: &str) -> Result<Digest> {
        let bad =
            |why: &str| OciError::InvalidInput(format!("'{text}' is not a sha256 digest: {why}"));
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| bad("it must start with 'sha256:'"))?;
        if hex.len() != 64 {
            return Err(bad("it must have 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| bad("it must be lowercase hex"))?;
            let lo = hex_value(pair[1]).ok_or_else(|| bad("it must be lowercase hex"))?;
            out[i] = hi << 4 | lo;
        }
        Ok(Digest(out))
    }

    /// The hex part (the file name of the blob in an image layout).
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(DIGITS[usize::from(b >> 4)] as char);
            s.push(DIGITS[usize::from(b & 0x0f)] as char);
        }
        s
    }

    /// Fails with a digest-mismatch error naming `what` unless `bytes` hash to this digest.
    pub fn verify(&self, what: &str, bytes: &[u8]) -> Result<()> {
        let actual = Digest::of(bytes);
        if actual != *self {
            return Err(OciError::DigestMismatch {
                what: what.to_string(),
                expected: self.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_refuses_other_forms() {
        let d = Digest::of(b"abc");
        assert_eq!(Digest::parse(&d.to_string()).expect("parses"), d);
        assert!(Digest::parse("sha512:00").is_err());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&d.to_string().to_uppercase().replace("SHA256", "sha256")).is_err());
    }

    #[test]
    fn verify_names_what_mismatched() {
        let err = Digest::of(b"a")
            .verify("layer 0", b"b")
            .expect_err("mismatch")
            .to_string();
        assert!(err.contains("digest mismatch for layer 0"), "{err}");
    }
}

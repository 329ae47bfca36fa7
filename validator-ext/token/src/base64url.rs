//! Strict base64url without padding (RFC 7515 section 2): canonical encodings only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Decodes unpadded base64url, refusing padding, other alphabets and non-canonical trailing bits.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Encodes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether every byte of `s` is in the base64url alphabet (a cheap pre-check before decoding).
pub fn is_alphabet(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode(&encode(&bytes)), Some(bytes));
        }
    }

    #[test]
    fn refuses_padding_standard_alphabet_and_noncanonical() {
        assert_eq!(decode("YQ"), Some(b"a".to_vec()));
        assert_eq!(decode("YQ=="), None, "padding");
        assert_eq!(decode("+/8"), None, "standard alphabet");
        assert_eq!(decode("YR"), None, "non-zero trailing bits");
        assert_eq!(decode("Y"), None, "impossible length");
        assert_eq!(decode("Y Q"), None, "whitespace");
        assert!(is_alphabet("abc-_09"));
        assert!(!is_alphabet("ab="));
    }
}

//! `application/x-www-form-urlencoded` encoding (WHATWG URL standard), as RFC 6749 requires for form bodies and
//! for the client id and secret inside HTTP Basic credentials (RFC 6749 section 2.3.1).

/// Encodes one name or value: `*-._` and ASCII alphanumerics stay, space becomes `+`, the rest is `%XX`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xF)] as char);
            }
        }
    }
    out
}

/// Encodes name/value pairs as a form body.
pub fn body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_per_the_form_rules() {
        assert_eq!(encode("abcXYZ019*-._"), "abcXYZ019*-._");
        assert_eq!(encode("a b"), "a+b");
        assert_eq!(encode("a+b&c=d%e/f:g~"), "a%2Bb%26c%3Dd%25e%2Ff%3Ag%7E");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode(""), "");
        assert_eq!(
            body(&[("token", "x y"), ("token_type_hint", "access_token")]),
            "token=x+y&token_type_hint=access_token"
        );
    }
}

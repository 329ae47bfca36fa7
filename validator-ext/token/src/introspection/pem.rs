//! Minimal PEM reading for private keys (RFC 7468): one labelled block, base64 body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a PEM text was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("no PEM block found")]
    NoBlock,
    #[error("PEM block has no matching END line")]
    Unterminated,
    #[error("PEM body is not valid base64")]
    BadBase64,
}

/// A decoded PEM block.
#[derive(Clone, PartialEq, Eq)]
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

impl std::fmt::Debug for PemBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("der_len", &self.der.len())
            .finish()
    }
}

/// Decodes the first PEM block in `text`.
pub fn decode_first(text: &str) -> Result<PemBlock, PemError> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|r| r.strip_suffix("-----"))
        })
        .ok_or(PemError::NoBlock)?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut terminated = false;
    for line in lines {
        if line == end {
            terminated = true;
            break;
        }
        // Encapsulated headers (RFC 1421 "Proc-Type: ...") mean an encrypted legacy key: refuse as bad base64.
        body.push_str(line);
    }
    if !terminated {
        return Err(PemError::Unterminated);
    }
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| PemError::BadBase64)?;
    Ok(PemBlock { label, der })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_block_among_other_text() {
        let text =
            "junk\n-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\ntrailer";
        let b = decode_first(text).expect("decodes");
        assert_eq!(b.label, "PRIVATE KEY");
        assert_eq!(b.der, vec![0, 1, 2, 3]);
        assert!(!format!("{b:?}").contains("[0, 1"));
    }

    #[test]
    fn refuses_broken_blocks() {
        assert_eq!(decode_first("nothing"), Err(PemError::NoBlock));
        assert_eq!(
            decode_first("-----BEGIN X-----\nAAAA\n"),
            Err(PemError::Unterminated)
        );
        assert_eq!(
            decode_first("-----BEGIN X-----\nAAAA\n-----END Y-----\n"),
            Err(PemError::Unterminated)
        );
        assert_eq!(
            decode_first("-----BEGIN X-----\n!!\n-----END X-----"),
            Err(PemError::BadBase64)
        );
        assert_eq!(
            decode_first("-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END X-----"),
            Err(PemError::BadBase64)
        );
    }
}

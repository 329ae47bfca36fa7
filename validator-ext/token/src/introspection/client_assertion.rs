//! RFC 7523 client assertions (`private_key_jwt`): a short-lived JWT signed with the client's private key.

use ring::rand::SecureRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::{Value, json};

use crate::algorithm::Algorithm;
use crate::base64url;
use crate::introspection::pem::{self, PemError};
use crate::json;
use crate::time::UnixTime;

/// A private key for signing client assertions: RSA (RS256) or EC P-256 (ES256).
pub enum SigningKey {
    Rsa(RsaKeyPair),
    EcP256(EcdsaKeyPair),
}

/// Why a private key could not be loaded. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLoadError {
    #[error("private key PEM: {0}")]
    Pem(#[from] PemError),
    #[error(
        "PEM label {0:?} is not a supported private key (PRIVATE KEY or RSA PRIVATE KEY; convert SEC1 EC keys with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    UnsupportedLabel(String),
    #[error("private key rejected: {0}")]
    Rejected(String),
}

/// Why an assertion could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("no randomness available for the assertion id")]
    Random,
    #[error("signing the client assertion failed")]
    Signing,
}

impl SigningKey {
    /// Loads a PKCS#8 (`PRIVATE KEY`: RSA or EC P-256) or PKCS#1 (`RSA PRIVATE KEY`, as Zitadel issues) PEM.
    pub fn from_pem(text: &str, rng: &dyn SecureRandom) -> Result<SigningKey, KeyLoadError> {
        let block = pem::decode_first(text)?;
        match block.label.as_str() {
            "PRIVATE KEY" => {
                let rsa = RsaKeyPair::from_pkcs8(&block.der);
                match rsa {
                    Ok(k) => Ok(SigningKey::Rsa(k)),
                    Err(rsa_err) => EcdsaKeyPair::from_pkcs8(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        &block.der,
                        rng,
                    )
                    .map(SigningKey::EcP256)
                    .map_err(|ec_err| {
                        KeyLoadError::Rejected(format!(
                            "not RSA ({rsa_err}) nor EC P-256 ({ec_err})"
                        ))
                    }),
                }
            }
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&block.der)
                .map(SigningKey::Rsa)
                .map_err(|e| KeyLoadError::Rejected(e.to_string())),
            other => Err(KeyLoadError::UnsupportedLabel(other.to_string())),
        }
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Rsa(_) => Algorithm::RS256,
            SigningKey::EcP256(_) => Algorithm::ES256,
        }
    }

    fn sign(&self, input: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, AssertionError> {
        match self {
            SigningKey::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, rng, input, &mut sig)
                    .map_err(|_| AssertionError::Signing)?;
                Ok(sig)
            }
            SigningKey::EcP256(k) => k
                .sign(rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| AssertionError::Signing),
        }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({}, private material hidden)",
            self.algorithm()
        )
    }
}

/// What goes into a client assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionClaims<'a> {
    pub client_id: &'a str,
    /// `kid` header (Zitadel's key id), if any.
    pub key_id: Option<&'a str>,
    /// `aud`: the issuer (Zitadel) or the endpoint, as the IdP expects.
    pub audience: &'a str,
    pub lifetime_secs: u64,
}

/// Signs a client assertion: iss = sub = client id, aud, iat = now, exp = now + lifetime, random jti.
pub fn sign(
    claims: &AssertionClaims<'_>,
    key: &SigningKey,
    now: UnixTime,
    rng: &dyn SecureRandom,
) -> Result<String, AssertionError> {
    let mut jti = [0u8; 16];
    rng.fill(&mut jti).map_err(|_| AssertionError::Random)?;
    let mut header = json!({"alg": key.algorithm().name(), "typ": "JWT"});
    if let Some(kid) = claims.key_id {
        header["kid"] = json!(kid);
    }
    let payload = json!({
        "iss": claims.client_id,
        "sub": claims.client_id,
        "aud": claims.audience,
        "iat": now.seconds(),
        "exp": now.plus(claims.lifetime_secs).seconds(),
        "jti": base64url::encode(&jti),
    });
    let input = format!(
        "{}.{}",
        base64url::encode(header.to_string().as_bytes()),
        base64url::encode(payload.to_string().as_bytes())
    );
    let sig = key.sign(input.as_bytes(), rng)?;
    Ok(format!("{input}.{}", base64url::encode(&sig)))
}

/// A Zitadel application/service key file (`{"type":..,"keyId":..,"key":"-----BEGIN RSA PRIVATE KEY-----..",
/// "clientId":..}`), already read by the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct ZitadelKeyFile {
    pub key_id: String,
    pub client_id: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ZitadelKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZitadelKeyFile")
            .field("key_id", &self.key_id)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// Why a key file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file: {0}")]
    Json(#[from] json::JsonError),
    #[error("key file: member {0} is missing or not a string")]
    Missing(&'static str),
}

impl ZitadelKeyFile {
    pub fn parse(bytes: &[u8]) -> Result<ZitadelKeyFile, KeyFileError> {
        let obj = json::parse_object(bytes)?;
        let get = |m: &'static str| {
            obj.get(m)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(KeyFileError::Missing(m))
        };
        // API applications carry clientId; service-user keys carry userId (used as the client id there).
        let client_id = get("clientId")
            .or_else(|_| get("userId"))
            .map_err(|_| KeyFileError::Missing("clientId"))?;
        Ok(ZitadelKeyFile {
            key_id: get("keyId")?,
            client_id,
            key_pem: get("key")?,
        })
    }
}

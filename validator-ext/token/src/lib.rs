//! pgrator-token: what a valid access token is, for the PostgreSQL 18 OAuth validator and the operator's
//! access API.
//!
//! Pure: no PostgreSQL types, no network or file I/O, no async, no clock reads (time is always a parameter).
//! The callers fetch documents (discovery, JWKS, introspection) and hand the bytes in.
//!
//! Layout: `envelope` -> `header` -> `key_select` -> `signature` -> `claims` -> `scopes` -> `identity` ->
//! `roles`, chained by `pipeline`; `jwks`/`jwk` decode keys; `discovery` reads provider metadata;
//! `key_cache` decides when to fetch keys; `introspection` handles opaque tokens; `settings` builds a validated
//! configuration from strings; `outcome` names every result for counters.
//!
//! ```
//! use pgrator_token::{KeySet, RawSettings, Requirements, TokenKind, UnixTime, ValidatorConfig, classify, validate_jwt};
//!
//! let raw = RawSettings { audience: Some("db-client".into()), ..RawSettings::default() };
//! let config = ValidatorConfig::from_settings(&raw, "pgrator_validator").expect("valid settings");
//! let keys = KeySet::parse(br#"{"keys":[]}"#).expect("a JWKS document");
//! let req = Requirements::from_hba("https://idp.example.test", "openid");
//!
//! let token = "eyJhbGciOiJub25lIn0.e30.";
//! assert_eq!(classify(token), TokenKind::Jws);
//! let refusal = validate_jwt(token, &keys, &config.policy, &req, UnixTime(1_750_000_000)).unwrap_err();
//! assert_eq!(refusal.code(), "alg_none");
//! assert_eq!(refusal.to_string(), "alg 'none' means an unsigned token");
//! ```
#![forbid(unsafe_code)]

pub mod accepted;
pub mod algorithm;
pub mod base64url;
pub mod claims;
pub mod discovery;
pub mod envelope;
pub mod grants;
pub mod header;
pub mod http_freshness;
pub mod identity;
pub mod introspection;
pub mod json;
pub mod jwk;
pub mod jwks;
pub mod key_cache;
pub mod key_select;
pub mod outcome;
pub mod pipeline;
pub mod policy;
pub mod refusal;
pub mod roles;
pub mod scopes;
pub mod session_guard;
pub mod settings;
pub mod shown;
pub mod signature;
pub mod time;

pub use accepted::{Accepted, Verification};
pub use algorithm::{Algorithm, AlgorithmSet};
pub use discovery::{ProviderMetadata, discovery_url};
pub use grants::{
    Grant, GrantCheck, GrantList, Grants, GrantsError, PERSONAL_ROLE_PREFIX, SessionsToEnd,
    is_personal_role,
};
pub use jwks::KeySet;
pub use key_cache::{FetchedDocument, KeyCachePolicy, KeyCacheState, KeyDecision};
pub use outcome::Outcome;
pub use pipeline::{TokenKind, check_claims, check_opaque, classify, validate_jwt};
pub use policy::{Policy, Requirements, ScopeCheck};
pub use refusal::Refusal;
pub use settings::{MODULE_SETTINGS, RawSettings, ValidatorConfig};
pub use time::UnixTime;

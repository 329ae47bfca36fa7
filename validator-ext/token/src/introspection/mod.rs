//! Opaque access tokens: RFC 7662 introspection, pure parts only (the caller does the HTTP POST).
//!
//! `request` builds the POST (form body and client authentication), `client_assertion` signs RFC 7523
//! private_key_jwt assertions, `response` evaluates the IdP's answer with the same claim rules as for JWTs,
//! and `cache` remembers positive answers keyed by a hash of the token.

pub mod cache;
pub mod client_assertion;
pub mod form;
pub mod pem;
pub mod request;
pub mod response;

pub use cache::{AnswerSlot, AnswerTable, IntrospectionCache, SLOTS, cache_key};
pub use client_assertion::{SigningKey, ZitadelKeyFile};
pub use request::{ClientAuth, IntrospectionClient, PreparedRequest};
pub use response::{IntrospectionError, evaluate};

//! The test world's OpenID Provider: `tests/world/idp` (Zitadel's own OIDC library, configured like Zitadel) on
//! a free loopback port, over HTTPS with a throw-away CA.
//!
//! [`Idp::start`] writes the configuration, starts the binary recorded as `PGRATOR_IDP_BIN` and waits until it
//! answers. [`IdpApi`] (reachable from an [`Idp`] through `Deref`, and cloneable into `'static` closures such as
//! psql's device prompt callback) speaks to it: the test API (approve a device code, rotate keys, mint tokens,
//! inject faults, count requests) and the OAuth endpoints as a client would (device flow, introspection,
//! revocation, userinfo). See `tests/world/idp/README.md` for the IdP itself.
//!
//! `config` is what the IdP is told (users, clients, orgs), `process` starts and stops it, `api` speaks to it.

use crate::error::WorldError;

mod api;
mod config;
mod process;

pub use api::*;
pub use config::*;
pub use process::*;

/// The Zitadel scope that asks for the project roles claim.
pub const SCOPE_PROJECT_ROLES: &str = "urn:zitadel:iam:org:projects:roles";
/// The Zitadel claim with the user's project roles: `{"<role>": {"<org id>": "<org domain>"}}`.
pub const CLAIM_PROJECT_ROLES: &str = "urn:zitadel:iam:org:project:roles";
/// RFC 8628's grant type, as the token endpoint expects it.
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The scope that puts `project_id` into the audience of a token.
pub fn scope_project_audience(project_id: &str) -> String {
    format!("urn:zitadel:iam:org:project:id:{project_id}:aud")
}

fn idp_err(message: impl Into<String>) -> WorldError {
    WorldError::Service {
        service: "idp".into(),
        message: message.into(),
    }
}

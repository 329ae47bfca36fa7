//! Opaque tokens (Zitadel's default): RFC 7662 introspection at the issuer, with the validator's own client
//! credentials read from files (`client_secret_basic` with a secret file, or `private_key_jwt` with a Zitadel key
//! file). The rules applied to the answer are `pgrator-token`'s, the same as for JWTs.

use pgrator_token::introspection::{
    ClientAuth, IntrospectionClient, SigningKey, ZitadelKeyFile, evaluate,
};
use pgrator_token::pipeline::check_opaque;
use pgrator_token::{Accepted, Outcome, Requirements, ValidatorConfig};
use ring::rand::SystemRandom;

use crate::fetch::{self, HttpSettings};
use crate::{answers, guc, keys, shmem, store};

/// Why an opaque token was not accepted.
pub struct Refused {
    pub outcome: Outcome,
    pub reason: String,
}

fn refused(outcome: Outcome, reason: impl Into<String>) -> Refused {
    Refused {
        outcome,
        reason: reason.into(),
    }
}

pub fn validate(
    token: &str,
    issuer: &str,
    config: &ValidatorConfig,
    requirements: &Requirements,
    http: &HttpSettings,
) -> Result<Accepted, Refused> {
    let policy = &config.policy;
    check_opaque(token, policy).map_err(|r| refused(r.outcome(), r.to_string()))?;
    if let Some(cached) = answers::lookup(token, policy, requirements, keys::now()) {
        return cached
            .map_err(|r| refused(r.outcome(), format!("{r} (cached introspection answer)")));
    }
    let client_id = guc::introspection_client_id().ok_or_else(|| {
        refused(
            Outcome::Malformed,
            "not a JWT, and opaque tokens are not accepted: pgrator_validator.introspection_client_id is not set",
        )
    })?;
    let endpoint = endpoint(issuer, http)?;
    let auth = client_auth(issuer)?;
    let client = IntrospectionClient {
        endpoint,
        client_id,
        auth,
    };
    let request = client
        .request(token, keys::now(), &SystemRandom::new())
        .map_err(|e| {
            refused(
                Outcome::ConfigError,
                format!("building the introspection request: {e}"),
            )
        })?;
    let answer =
        fetch::post_form(&request.url, request.headers, request.body, http).map_err(|e| {
            refused(
                Outcome::IdpError,
                format!("introspection at {}: {e}", request.url),
            )
        })?;
    shmem::count_introspection();
    let now = keys::now();
    let accepted =
        evaluate(answer.status, &answer.body, policy, requirements, now).map_err(|e| {
            refused(
                e.outcome(),
                format!("introspection at {}: {e}", request.url),
            )
        })?;
    let limits = config.introspection_cache;
    answers::insert(
        token,
        issuer,
        &accepted,
        now,
        limits.max_entries,
        limits.max_ttl_secs,
    );
    Ok(accepted)
}

/// The issuer's introspection endpoint, remembered with its keys.
fn endpoint(issuer: &str, http: &HttpSettings) -> Result<String, Refused> {
    if let Some(uri) = store::read(issuer).and_then(|s| s.introspection_uri) {
        return Ok(uri);
    }
    let meta = keys::discover(issuer, http).map_err(|e| refused(Outcome::IdpError, e))?;
    let uri = meta.introspection_endpoint.ok_or_else(|| {
        refused(
            Outcome::IdpError,
            format!("{issuer} offers no introspection_endpoint"),
        )
    })?;
    store::update(issuer, |e| e.new_introspection_uri = Some(uri.clone()));
    Ok(uri)
}

/// The client authentication configured: a Zitadel key file (private_key_jwt) wins over a secret file.
fn client_auth(issuer: &str) -> Result<ClientAuth, Refused> {
    let config_error = |what: String| refused(Outcome::ConfigError, what);
    if let Some(path) = guc::introspection_key_file() {
        let bytes = std::fs::read(&path).map_err(|e| {
            config_error(format!(
                "pgrator_validator.introspection_key_file {path}: {e}"
            ))
        })?;
        let file = ZitadelKeyFile::parse(&bytes).map_err(|e| {
            config_error(format!(
                "pgrator_validator.introspection_key_file {path}: {e}"
            ))
        })?;
        let key = SigningKey::from_pem(&file.key_pem, &SystemRandom::new()).map_err(|e| {
            config_error(format!(
                "pgrator_validator.introspection_key_file {path}: {e}"
            ))
        })?;
        return Ok(ClientAuth::PrivateKeyJwt {
            key: Box::new(key),
            key_id: Some(file.key_id),
            audience: issuer.to_string(),
            lifetime_secs: 60,
        });
    }
    let path = guc::introspection_secret_file().ok_or_else(|| {
        config_error(
            "set pgrator_validator.introspection_secret_file or pgrator_validator.introspection_key_file".into(),
        )
    })?;
    let secret = std::fs::read_to_string(&path).map_err(|e| {
        config_error(format!(
            "pgrator_validator.introspection_secret_file {path}: {e}"
        ))
    })?;
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        return Err(config_error(format!(
            "pgrator_validator.introspection_secret_file {path} is empty"
        )));
    }
    Ok(ClientAuth::SecretBasic { secret })
}

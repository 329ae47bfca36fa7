//! The token library's key cache and validation fed with what the real IdP serves: its JWKS document with its own
//! Cache-Control header, tokens it signed in a device flow, its key rotation and retirement. The library's unit
//! tests (validator-ext/token/tests/key_rotation.rs) sign with keys of their own; this proves the same policy holds
//! for the IdP's documents and signatures, with nothing made up by the test.

use std::time::{SystemTime, UNIX_EPOCH};

use pgrator_token::key_cache::{FetchedDocument, KeyCachePolicy, KeyCacheState, KeyDecision};
use pgrator_token::{KeySet, Policy, Requirements, UnixTime, validate_jwt};
use pgrator_world::idp::defaults::{ALICE, PSQL};
use pgrator_world::idp::{Idp, IdpConfig};

fn now() -> UnixTime {
    UnixTime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64,
    )
}

/// One fetch of the IdP's JWKS, handed to the cache state exactly as the validator's fetcher does.
fn fetch(idp: &Idp, state: &mut KeyCacheState, at: UnixTime, policy: &KeyCachePolicy) -> KeySet {
    let reply = idp.get("/oauth/v2/keys").expect("the IdP serves its keys");
    let doc = FetchedDocument {
        status: reply.status,
        cache_control: reply.header("cache-control"),
        expires: reply.header("expires"),
        date: reply.header("date"),
        body: reply.body.as_bytes(),
    };
    state
        .on_fetch(at, &doc, policy)
        .expect("the IdP's JWKS is accepted")
}

fn token(idp: &Idp) -> String {
    idp.device_flow_token(PSQL, "openid", ALICE)
        .expect("a device-flow token")
        .access_token
}

#[test]
fn the_key_cache_follows_the_idps_rotation_and_retirement() {
    let idp =
        Idp::start(IdpConfig::default()).expect("the IdP starts (tests/world/install.sh idp)");
    // A default lifetime unlike the IdP's, so the figures below can only come from its Cache-Control header.
    let cache_policy = KeyCachePolicy {
        default_max_age_secs: 45,
        ..KeyCachePolicy::default()
    };
    let policy = Policy::new(vec![PSQL.to_string()]);
    let requirements = Requirements::from_hba(idp.issuer(), "openid");
    let validate = |token: &str, keys: &KeySet| {
        validate_jwt(token, keys, &policy, &requirements, now()).map(|a| a.authn_id)
    };

    let mut state = KeyCacheState::new();
    let t0 = now();
    assert_eq!(state.decide(t0), KeyDecision::FetchFirst);
    assert!(state.claim_fetch(t0, &cache_policy));
    let keys = fetch(&idp, &mut state, t0, &cache_policy);
    // The IdP says max-age=300: the state is fresh for exactly that and refreshes at 80 % of it.
    assert_eq!(
        (state.fresh_until, state.refresh_at),
        (t0.plus(300), t0.plus(240)),
        "{state:?}"
    );
    assert_eq!(state.decide(t0.plus(1)), KeyDecision::Use);

    let before = token(&idp);
    let alice = validate(&before, &keys).expect("a token the IdP signed validates with its JWKS");
    assert!(!alice.is_empty());

    // The IdP rotates: its next token carries a kid the cached set lacks, which asks for one early refresh.
    idp.rotate(false).expect("rotate");
    let after = token(&idp);
    let refusal = validate(&after, &keys).expect_err("the cached set lacks the new kid");
    assert!(refusal.may_need_key_refresh(), "{}", refusal.code());
    let t1 = now();
    assert!(state.claim_unknown_kid_refresh(t1, &cache_policy));
    let keys = fetch(&idp, &mut state, t1, &cache_policy);
    assert_eq!(validate(&after, &keys).as_deref(), Ok(alice.as_str()));
    assert_eq!(
        validate(&before, &keys).as_deref(),
        Ok(alice.as_str()),
        "the old key is still published, so its tokens still validate"
    );
    // A second unknown kid right after does not fetch again (cool-down against a flood of made-up kids).
    assert!(!state.claim_unknown_kid_refresh(now(), &cache_policy));

    // The IdP retires the old key: once refetched, tokens it signed are refused, new ones still validate.
    idp.rotate(true).expect("rotate and retire");
    let keys = fetch(&idp, &mut state, now(), &cache_policy);
    let refusal = validate(&before, &keys).expect_err("the retired key's token is refused");
    assert!(refusal.may_need_key_refresh(), "{}", refusal.code());
    let newest = token(&idp);
    assert_eq!(validate(&newest, &keys).as_deref(), Ok(alice.as_str()));
    assert_eq!(state.generation, 3);
}

//! The key cache driving real validations: first fetch, key rotation with an unknown kid, IdP outage.

mod support;

use pgrator_token::key_cache::{
    FetchedDocument, KeyCachePolicy, KeyCacheState, KeyDecision, KeyFetchError,
};
use pgrator_token::{KeySet, UnixTime, validate_jwt};
use support::*;

fn doc(body: &[u8]) -> FetchedDocument<'_> {
    FetchedDocument {
        status: 200,
        cache_control: Some("max-age=300"),
        expires: None,
        date: None,
        body,
    }
}

#[test]
fn rotation_is_picked_up_through_an_unknown_kid_refresh() {
    let p = KeyCachePolicy::default();
    let old = Signer::rs256("2024");
    let new = Signer::es256("2025");
    let mut state = KeyCacheState::new();
    let t0 = now();

    assert_eq!(state.decide(t0), KeyDecision::FetchFirst);
    assert!(state.claim_fetch(t0, &p));
    let old_jwks = jwks(&[&old]);
    let mut keys: KeySet = state
        .on_fetch(t0, &doc(&old_jwks), &p)
        .expect("first fetch");
    assert!(validate_jwt(&old.mint(&claims()), &keys, &policy(), &requirements(), t0).is_ok());

    // The IdP rotates; a token with the new kid arrives 10 s later.
    let t1 = t0.plus(10);
    let token = new.mint(&claims());
    let refusal =
        validate_jwt(&token, &keys, &policy(), &requirements(), t1).expect_err("unknown kid");
    assert!(refusal.may_need_key_refresh());
    assert!(state.claim_unknown_kid_refresh(t1, &p));
    let new_jwks = jwks(&[&old, &new]);
    keys = state.on_fetch(t1, &doc(&new_jwks), &p).expect("refetch");
    assert!(validate_jwt(&token, &keys, &policy(), &requirements(), t1).is_ok());
    assert_eq!(state.generation, 2);

    // A flood of garbage kids right after must not cause more fetches.
    let garbage = Signer::eddsa("garbage").mint(&claims());
    let r =
        validate_jwt(&garbage, &keys, &policy(), &requirements(), t1.plus(1)).expect_err("unknown");
    assert!(r.may_need_key_refresh());
    assert!(!state.claim_unknown_kid_refresh(t1.plus(1), &p));
}

#[test]
fn outage_serves_stale_keys_for_a_bounded_time() {
    let p = KeyCachePolicy {
        max_stale_secs: 600,
        ..KeyCachePolicy::default()
    };
    let s = Signer::eddsa("k");
    let mut state = KeyCacheState::new();
    let t0 = now();
    let body = jwks(&[&s]);
    let keys = state.on_fetch(t0, &doc(&body), &p).expect("fetch");

    // Refresh due at 240 s; the IdP is down from then on.
    let mut t = t0.plus(240);
    let mut fetches = 0;
    while t < t0.plus(300 + 600) {
        match state.decide(t) {
            KeyDecision::UseAndRefresh => {
                assert!(state.claim_fetch(t, &p));
                fetches += 1;
                let down = FetchedDocument {
                    status: 502,
                    cache_control: None,
                    expires: None,
                    date: None,
                    body: b"",
                };
                assert_eq!(
                    state.on_fetch(t, &down, &p),
                    Err(KeyFetchError::Status(502))
                );
            }
            KeyDecision::Use => {}
            other => panic!(
                "keys must stay usable until the stale window ends, got {other:?} at +{}",
                t.since(t0)
            ),
        }
        // Tokens still validate with the stale keys (the token itself is fresh).
        let c = with(
            with(claims(), "exp", Some((t.seconds() + 60).into())),
            "iat",
            Some(t.seconds().into()),
        );
        let c = with(c, "nbf", None);
        assert!(validate_jwt(&s.mint(&c), &keys, &policy(), &requirements(), t).is_ok());
        t = t.plus(5);
    }
    assert!(
        fetches > 5 && fetches < 40,
        "backoff bounds the retries: {fetches}"
    );
    let end = t0.plus(300 + 600);
    assert!(matches!(
        state.decide(end),
        KeyDecision::FetchFirst | KeyDecision::Unavailable { .. }
    ));
    assert_eq!(
        state.usability(end),
        pgrator_token::key_cache::Usability::Missing
    );
    let _ = UnixTime(0);
}

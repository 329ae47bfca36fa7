//! Claims through the whole pipeline: for each rule, accepted, missing, wrong type, boundary, adversarial.

mod support;

use pgrator_token::{Policy, Requirements, ScopeCheck, UnixTime, validate_jwt};
use serde_json::{Value, json};
use support::*;

fn run_with(c: &Value, p: &Policy, req: &Requirements, at: i64) -> Result<String, &'static str> {
    let s = Signer::es256("e");
    let keys = key_set(&[&s]);
    validate_jwt(&s.mint(c), &keys, p, req, UnixTime(at))
        .map(|a| a.authn_id)
        .map_err(|r| r.code())
}

fn run(c: &Value) -> Result<String, &'static str> {
    run_with(c, &policy(), &requirements(), NOW)
}

fn run_at(c: &Value, at: i64) -> Result<String, &'static str> {
    run_with(c, &policy(), &requirements(), at)
}

const OK: &str = "308349723487234";

#[test]
fn issuer() {
    assert_eq!(run(&claims()), Ok(OK.into()));
    assert_eq!(run(&with(claims(), "iss", None)), Err("missing_claim"));
    assert_eq!(
        run(&with(claims(), "iss", Some(json!(5)))),
        Err("invalid_claim")
    );
    for bad in [
        format!("{ISSUER}/"),
        ISSUER.to_uppercase(),
        "https://evil.test".into(),
        String::new(),
    ] {
        assert_eq!(
            run(&with(claims(), "iss", Some(json!(bad)))),
            Err("wrong_issuer"),
            "{bad}"
        );
    }
    // The issuer comes from the HBA line: the same token is wrong for another line.
    let other = Requirements::from_hba("https://other-idp.test", "openid db:connect");
    assert_eq!(
        run_with(&claims(), &policy(), &other, NOW),
        Err("wrong_issuer")
    );
}

#[test]
fn audience() {
    assert_eq!(
        run(&with(claims(), "aud", Some(json!(AUDIENCE)))),
        Ok(OK.into())
    );
    assert_eq!(run(&with(claims(), "aud", None)), Err("missing_claim"));
    assert_eq!(
        run(&with(claims(), "aud", Some(json!(42)))),
        Err("invalid_claim")
    );
    assert_eq!(
        run(&with(claims(), "aud", Some(json!([AUDIENCE, 42])))),
        Err("invalid_claim")
    );
    assert_eq!(
        run(&with(claims(), "aud", Some(json!(null)))),
        Err("invalid_claim")
    );
    assert_eq!(
        run(&with(claims(), "aud", Some(json!([])))),
        Err("wrong_audience")
    );
    assert_eq!(
        run(&with(claims(), "aud", Some(json!(["project-123"])))),
        Err("wrong_audience")
    );
    assert_eq!(
        run(&with(claims(), "aud", Some(json!(format!("{AUDIENCE} x"))))),
        Err("wrong_audience")
    );
    assert_eq!(
        run(&with(claims(), "aud", Some(json!(AUDIENCE.to_uppercase())))),
        Err("wrong_audience")
    );
}

#[test]
fn expiry_boundaries() {
    let exp = NOW + 300;
    assert_eq!(run(&with(claims(), "exp", None)), Err("missing_claim"));
    assert_eq!(
        run(&with(claims(), "exp", Some(json!("1750000300")))),
        Err("invalid_claim")
    );
    assert_eq!(
        run(&with(claims(), "exp", Some(json!(true)))),
        Err("invalid_claim")
    );
    // Default skew 30 s: valid while now < exp + 30.
    assert_eq!(run_at(&claims(), exp - 1), Ok(OK.into()));
    assert_eq!(
        run_at(&claims(), exp),
        Ok(OK.into()),
        "exp == now is inside the skew"
    );
    assert_eq!(run_at(&claims(), exp + 29), Ok(OK.into()));
    assert_eq!(run_at(&claims(), exp + 30), Err("expired"));
    // Without skew, exp == now is expired.
    let mut p = policy();
    p.clock_skew_secs = 0;
    assert_eq!(
        run_with(&claims(), &p, &requirements(), exp - 1),
        Ok(OK.into())
    );
    assert_eq!(
        run_with(&claims(), &p, &requirements(), exp),
        Err("expired")
    );
    // Fractional NumericDate.
    assert_eq!(
        run_with(
            &with(claims(), "exp", Some(json!(exp as f64 + 0.5))),
            &p,
            &requirements(),
            exp
        ),
        Err("expired")
    );
}

#[test]
fn not_before_boundaries() {
    let nbf = NOW + 100;
    let c = with(claims(), "nbf", Some(json!(nbf)));
    let c = with(c, "iat", None);
    assert_eq!(run_at(&c, nbf), Ok(OK.into()));
    assert_eq!(run_at(&c, nbf - 30), Ok(OK.into()), "inside the skew");
    assert_eq!(run_at(&c, nbf - 31), Err("not_yet_valid"));
    assert_eq!(
        run(&with(claims(), "nbf", None)),
        Ok(OK.into()),
        "nbf is optional"
    );
    assert_eq!(
        run(&with(claims(), "nbf", Some(json!("soon")))),
        Err("invalid_claim")
    );
}

#[test]
fn issued_at_boundaries() {
    let iat = NOW + 100;
    let c = with(with(claims(), "iat", Some(json!(iat))), "nbf", None);
    assert_eq!(run_at(&c, iat - 30), Ok(OK.into()));
    assert_eq!(run_at(&c, iat - 31), Err("issued_in_future"));
    assert_eq!(
        run(&with(claims(), "iat", None)),
        Ok(OK.into()),
        "iat is optional"
    );
    assert_eq!(
        run(&with(claims(), "iat", Some(json!([1])))),
        Err("invalid_claim")
    );
}

#[test]
fn scopes() {
    let req = |s: &str| Requirements::from_hba(ISSUER, s);
    let p = policy();
    assert_eq!(
        run_with(&claims(), &p, &req("db:connect"), NOW),
        Ok(OK.into())
    );
    assert_eq!(
        run_with(&claims(), &p, &req("db:connect db:admin"), NOW),
        Err("missing_scope")
    );
    assert_eq!(
        run_with(&with(claims(), "scope", None), &p, &req("openid"), NOW),
        Err("missing_scope")
    );
    assert_eq!(
        run_with(
            &with(claims(), "scope", Some(json!(["openid"]))),
            &p,
            &req("openid"),
            NOW
        ),
        Err("invalid_claim")
    );
    assert_eq!(
        run_with(&with(claims(), "scope", Some(json!(1))), &p, &req(""), NOW),
        Err("invalid_claim")
    );
    let scp = with(
        with(claims(), "scope", None),
        "scp",
        Some(json!(["openid", "db:connect"])),
    );
    assert_eq!(
        run_with(&scp, &p, &req("openid db:connect"), NOW),
        Ok(OK.into())
    );
    let scp_str = with(
        with(claims(), "scope", None),
        "scp",
        Some(json!("openid db:connect")),
    );
    assert_eq!(
        run_with(&scp_str, &p, &req("db:connect"), NOW),
        Ok(OK.into())
    );
    // Adversarial: a scope that merely contains the required one as a substring.
    let sub = with(claims(), "scope", Some(json!("openid db:connect-readonly")));
    assert_eq!(
        run_with(&sub, &p, &req("db:connect"), NOW),
        Err("missing_scope")
    );
    // Off: for IdPs whose JWT access tokens lack a scope claim.
    let mut off = policy();
    off.scope_check = ScopeCheck::Off;
    assert_eq!(
        run_with(
            &with(claims(), "scope", None),
            &off,
            &req("openid db:connect"),
            NOW
        ),
        Ok(OK.into())
    );
}

#[test]
fn identity() {
    assert_eq!(
        run(&with(claims(), "sub", None)),
        Err("identity_claim_missing")
    );
    assert_eq!(
        run(&with(claims(), "sub", Some(json!("")))),
        Err("identity_invalid")
    );
    assert_eq!(
        run(&with(claims(), "sub", Some(json!(12345)))),
        Err("identity_invalid")
    );
    assert_eq!(
        run(&with(
            claims(),
            "sub",
            Some(json!("a\r\nlocal all all trust"))
        )),
        Err("identity_invalid")
    );
    assert_eq!(
        run(&with(claims(), "sub", Some(json!("x".repeat(513))))),
        Err("identity_invalid")
    );
    assert_eq!(
        run(&with(claims(), "sub", Some(json!("x".repeat(512))))).map(|s| s.len()),
        Ok(512)
    );
    let mut p = policy();
    p.identity_claim = "email".into();
    assert_eq!(
        run_with(&claims(), &p, &requirements(), NOW),
        Err("identity_claim_missing")
    );
}

#[test]
fn required_role() {
    let mut p = policy();
    p.required_role = Some("db-user".into());
    assert_eq!(run_with(&claims(), &p, &requirements(), NOW), Ok(OK.into()));
    p.required_role = Some("db-admin".into());
    assert_eq!(
        run_with(&claims(), &p, &requirements(), NOW),
        Err("missing_role")
    );
    p.required_role = Some("db-user".into());
    let roles = "urn:zitadel:iam:org:project:roles";
    assert_eq!(
        run_with(&with(claims(), roles, None), &p, &requirements(), NOW),
        Err("missing_role")
    );
    assert_eq!(
        run_with(
            &with(claims(), roles, Some(json!(["db-user"]))),
            &p,
            &requirements(),
            NOW
        ),
        Err("invalid_claim")
    );
    // Per-project claim name.
    p.role_claim = "urn:zitadel:iam:org:project:123:roles".into();
    assert_eq!(
        run_with(&claims(), &p, &requirements(), NOW),
        Err("missing_role")
    );
    let c = with(
        claims(),
        "urn:zitadel:iam:org:project:123:roles",
        Some(json!({"db-user": {"1": "org"}})),
    );
    assert_eq!(run_with(&c, &p, &requirements(), NOW), Ok(OK.into()));
}

#[test]
fn stages_run_in_order() {
    // Expired and wrong issuer: the issuer is checked first.
    let c = with(
        with(claims(), "iss", Some(json!("https://evil.test"))),
        "exp",
        Some(json!(NOW - 1000)),
    );
    assert_eq!(run(&c), Err("wrong_issuer"));
    // Missing scope and missing identity: scopes first.
    let c = with(with(claims(), "scope", None), "sub", None);
    assert_eq!(run(&c), Err("missing_scope"));
}

//! Property tests: garbage never panics and never validates; any single-byte change to a valid token is
//! refused; encoders and parsers round-trip; the key cache keeps its invariants under any event sequence.

mod support;

use pgrator_token::introspection::evaluate;
use pgrator_token::key_cache::{FetchedDocument, KeyCachePolicy, KeyCacheState, KeyDecision};
use pgrator_token::{KeySet, UnixTime, base64url, classify, json, validate_jwt};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::OnceLock;
use support::*;

struct Fixture {
    keys: KeySet,
    tokens: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let signers = [Signer::rs256("r"), Signer::es256("e"), Signer::eddsa("d")];
        let keys = key_set(&signers.iter().collect::<Vec<_>>());
        let tokens = signers.iter().map(|s| s.mint(&claims())).collect();
        Fixture { keys, tokens }
    })
}

fn refused(token: &str) -> bool {
    validate_jwt(token, &fixture().keys, &policy(), &requirements(), now()).is_err()
}

fn refusal_code(token: &str) -> Option<&'static str> {
    validate_jwt(token, &fixture().keys, &policy(), &requirements(), now())
        .err()
        .map(|r| r.code())
}

/// A token whose header was rebuilt from the real one, with its original payload and signature.
#[derive(Debug, Clone)]
struct NearValid {
    token: String,
    header: String,
    /// Header parsing and key selection pick the signing key: only the signature can tell the change.
    reaches_signature: bool,
}

fn near_valid_header_token() -> impl Strategy<Value = NearValid> {
    let alg = prop_oneof![
        6 => Just(None),
        1 => prop::sample::select(vec!["RS256", "ES256", "EdDSA", "PS256", "RS384"]).prop_map(Some),
    ];
    let kid = prop_oneof![
        6 => Just(None),
        1 => prop::option::of(prop::sample::select(vec!["r", "e", "d", "unknown"])).prop_map(Some),
    ];
    let typ = prop::sample::select(vec![
        None,
        Some(None),
        Some(Some("JWT")),
        Some(Some("at+jwt")),
    ]);
    let extra = prop::option::of(("x-[a-z]{1,6}", json_value()));
    (
        0usize..3,
        alg,
        kid,
        typ,
        extra,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_filter_map(
            "the header must differ from the signed one",
            |(which, alg, kid, typ, extra, sorted, spaced)| {
                let real = &fixture().tokens[which];
                let (head, rest) = real.split_once('.')?;
                let original: serde_json::Map<String, Value> =
                    serde_json::from_slice(&base64url::decode(head)?).ok()?;
                let mut h = original.clone();
                if let Some(a) = alg {
                    h.insert("alg".into(), json!(a));
                }
                match kid {
                    Some(Some(k)) => {
                        h.insert("kid".into(), json!(k));
                    }
                    Some(None) => {
                        h.remove("kid");
                    }
                    None => {}
                }
                match typ {
                    Some(Some(t)) => {
                        h.insert("typ".into(), json!(t));
                    }
                    Some(None) => {
                        h.remove("typ");
                    }
                    None => {}
                }
                if let Some((name, value)) = extra {
                    h.insert(name, value);
                }
                // Other bytes for the same members: another member order, or whitespace.
                let mut text = if sorted {
                    Value::Object(
                        h.iter()
                            .rev()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    )
                    .to_string()
                } else {
                    Value::Object(h.clone()).to_string()
                };
                if spaced {
                    text = text.replacen('{', "{ ", 1);
                }
                let encoded = base64url::encode(text.as_bytes());
                if encoded == head {
                    return None;
                }
                let reaches_signature =
                    h.get("alg") == original.get("alg") && h.get("kid") == original.get("kid");
                Some(NearValid {
                    token: format!("{encoded}.{rest}"),
                    header: text,
                    reaches_signature,
                })
            },
        )
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_validate(s in any::<String>()) {
        prop_assert!(refused(&s));
        let _ = classify(&s);
    }

    #[test]
    fn arbitrary_bytes_never_validate(b in prop::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(refused(&String::from_utf8_lossy(&b)));
    }

    #[test]
    fn random_three_segment_tokens_never_validate(
        h in prop::collection::vec(any::<u8>(), 0..200),
        p in prop::collection::vec(any::<u8>(), 0..400),
        s in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let t = format!("{}.{}.{}", base64url::encode(&h), base64url::encode(&p), base64url::encode(&s));
        prop_assert!(refused(&t));
    }

    #[test]
    fn random_headers_with_the_real_signature_never_validate(header in json_value(), which in 0usize..3) {
        let real = &fixture().tokens[which];
        let rest = real.split_once('.').map(|(_, r)| r).unwrap_or_default();
        let t = format!("{}.{rest}", base64url::encode(header.to_string().as_bytes()));
        prop_assert!(refused(&t));
    }

    /// Headers close to the real one (the same alg and kid most of the time, other members, other bytes for the
    /// same members) pass header parsing and key selection, so the signature check is what must refuse them.
    #[test]
    fn near_valid_headers_with_the_real_signature_are_refused_by_the_signature(t in near_valid_header_token()) {
        let code = refusal_code(&t.token);
        prop_assert!(code.is_some(), "a changed header validated: {}", t.header);
        if t.reaches_signature {
            prop_assert_eq!(code, Some("bad_signature"), "header {}", t.header);
        }
    }

    #[test]
    fn any_flipped_bit_of_a_valid_token_is_refused(which in 0usize..3, segment in 0usize..3, index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let token = &fixture().tokens[which];
        prop_assert!(!refused(token), "the unmodified token validates");
        let mut parts: Vec<Vec<u8>> = token.split('.').map(|p| base64url::decode(p).unwrap_or_default()).collect();
        let seg = &mut parts[segment];
        let i = index.index(seg.len());
        seg[i] ^= 1 << bit;
        let t = parts.iter().map(|p| base64url::encode(p)).collect::<Vec<_>>().join(".");
        prop_assert!(refused(&t));
    }

    #[test]
    fn any_changed_character_of_a_valid_token_is_refused(which in 0usize..3, index in any::<prop::sample::Index>(), c in prop::char::range('!', '~')) {
        let token = &fixture().tokens[which];
        let i = index.index(token.len());
        prop_assume!(token.as_bytes()[i] != c as u8);
        let mut t = token.clone().into_bytes();
        t[i] = c as u8;
        prop_assert!(refused(&String::from_utf8(t).unwrap_or_default()));
    }

    #[test]
    fn truncated_or_extended_tokens_are_refused(which in 0usize..3, cut in any::<prop::sample::Index>(), extra in "[A-Za-z0-9_.-]{1,8}") {
        let token = &fixture().tokens[which];
        let n = cut.index(token.len());
        prop_assert!(refused(&token[..n]));
        let extended = format!("{token}{extra}");
        prop_assert!(refused(&extended));
    }

    #[test]
    fn strict_json_agrees_with_serde_json_on_duplicate_free_documents(v in json_value()) {
        // Float text is not bit-exact through serde_json without float_roundtrip; agreement is what matters.
        let text = v.to_string();
        prop_assert_eq!(json::parse_value(text.as_bytes()).ok(), serde_json::from_str::<Value>(&text).ok());
    }

    #[test]
    fn strict_json_never_panics(b in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = json::parse_object(&b);
    }

    #[test]
    fn base64url_round_trips(b in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert_eq!(base64url::decode(&base64url::encode(&b)), Some(b));
    }

    #[test]
    fn jwks_parsing_never_panics(keys in prop::collection::vec(json_value(), 0..8), raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = KeySet::parse(json!({ "keys": keys }).to_string().as_bytes());
        let _ = KeySet::parse(&raw);
    }

    #[test]
    fn introspection_garbage_never_accepts(v in json_value(), raw in prop::collection::vec(any::<u8>(), 0..256)) {
        // Without active=true nothing is accepted.
        prop_assume!(v.get("active") != Some(&Value::Bool(true)));
        prop_assert!(evaluate(200, v.to_string().as_bytes(), &policy(), &requirements(), now()).is_err());
        prop_assert!(evaluate(200, &raw, &policy(), &requirements(), now()).is_err());
    }

    #[test]
    fn form_encoding_round_trips(s in any::<String>()) {
        let enc = pgrator_token::introspection::form::encode(&s);
        prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"*-._+%".contains(&b)));
        prop_assert_eq!(form_decode(&enc), s);
    }

    #[test]
    fn http_dates_round_trip(t in 0i64..253_402_300_799) {
        let text = imf_fixdate(t);
        prop_assert_eq!(pgrator_token::http_freshness::parse_http_date(&text), Some(UnixTime(t)));
    }

    #[test]
    fn key_cache_invariants(events in prop::collection::vec((0u8..5, 0u64..400, prop::option::of(0u64..100_000)), 1..60)) {
        let p = KeyCachePolicy::default();
        let body = String::from_utf8(jwks(&[&Signer { key: ed_key(), kid: Some("k".into()) }])).unwrap_or_default();
        let mut s = KeyCacheState::new();
        let mut now = UnixTime(1_700_000_000);
        for (kind, step, max_age) in events {
            now = now.plus(step);
            let claimed_before = s.claimed_until > now;
            match kind {
                0 => {
                    let won = s.claim_fetch(now, &p);
                    prop_assert!(!(won && claimed_before), "two claims in one window");
                }
                1 => { let _ = s.claim_unknown_kid_refresh(now, &p); }
                2 => {
                    let cc = max_age.map(|m| format!("max-age={m}"));
                    let doc = FetchedDocument { status: 200, cache_control: cc.as_deref(), expires: None, date: None, body: body.as_bytes() };
                    prop_assert!(s.on_fetch(now, &doc, &p).is_ok());
                    prop_assert!(s.refresh_at <= s.fresh_until && s.fresh_until <= s.stale_until);
                    prop_assert!(s.refresh_at.since(now) >= p.min_refresh_secs && s.refresh_at.since(now) <= p.max_refresh_secs);
                    prop_assert!(s.stale_until.since(s.fresh_until) == p.max_stale_secs);
                }
                3 => {
                    s.record_failure(now, &p);
                    prop_assert!(s.retry_at > now && s.retry_at.since(now) <= p.retry_max_secs);
                }
                _ => {}
            }
            match s.decide(now) {
                KeyDecision::FetchFirst => prop_assert!(s.may_fetch(now) && s.generation == 0 || now >= s.stale_until),
                KeyDecision::Unavailable { retry_at } => prop_assert!(retry_at > now),
                KeyDecision::Use | KeyDecision::UseAndRefresh => prop_assert!(s.generation > 0 && now < s.stale_until),
            }
        }
    }
}

fn ed_key() -> Key {
    let rng = ring::rand::SystemRandom::new();
    let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("gen");
    Key::Ed(ring::signature::Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("load"))
}

fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_default()
}

fn imf_fixdate(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil_from_days (Hinnant), written independently of the library's inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The near-valid generator earns its name: most of its headers get past parsing and key selection to the
/// signature check (a generator of random JSON almost never does).
#[test]
fn most_near_valid_headers_reach_the_signature_check() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = near_valid_header_token();
    let (mut reached, total) = (0, 400);
    for _ in 0..total {
        let t = strategy.new_tree(&mut runner).expect("a value").current();
        if refusal_code(&t.token) == Some("bad_signature") {
            reached += 1;
        }
    }
    assert!(
        reached * 2 > total,
        "only {reached} of {total} reached the signature check"
    );
}

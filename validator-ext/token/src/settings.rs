//! Building a validated configuration from strings, as PostgreSQL GUCs (or an operator config file) give them.
//!
//! Every error names the full setting and the bad value, e.g.
//! `pgrator_validator.algorithms: unknown algorithm 'HS256' (allowed: RS256, ..., EdDSA)`.

use std::fmt;

use crate::algorithm::{AlgName, AlgorithmSet, classify_alg};
use crate::envelope::DEFAULT_MAX_TOKEN_BYTES;
use crate::key_cache::KeyCachePolicy;
use crate::policy::{DEFAULT_IDENTITY_CLAIM, DEFAULT_ROLE_CLAIM, Policy, ScopeCheck};
use crate::shown::Shown;

/// The prefix of the validator module's settings.
pub const DEFAULT_PREFIX: &str = "pgrator_validator";

/// Settings as strings; `None` (or an empty/blank string) means "use the default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSettings {
    /// Comma-separated audiences; required.
    pub audience: Option<String>,
    /// Comma-separated client ids whose tokens are accepted (`azp`, else `client_id`); empty: any client.
    pub allowed_clients: Option<String>,
    /// Comma-separated algorithm allowlist (default `RS256,ES256,EdDSA`).
    pub algorithms: Option<String>,
    /// Seconds (`30`, `30s`, `1min`), 0..=600, default 30.
    pub clock_skew: Option<String>,
    pub identity_claim: Option<String>,
    pub role_claim: Option<String>,
    pub required_role: Option<String>,
    /// Required JOSE typ, e.g. `at+jwt`.
    pub typ: Option<String>,
    /// Bytes, 1024..=1048576, default 16384.
    pub max_token_bytes: Option<String>,
    /// `require` (default) or `off`.
    pub scope_check: Option<String>,
    pub jwks_min_refresh: Option<String>,
    pub jwks_max_refresh: Option<String>,
    pub jwks_max_stale: Option<String>,
    pub jwks_unknown_kid_cooldown: Option<String>,
    pub introspection_cache_entries: Option<String>,
    pub introspection_cache_ttl: Option<String>,
}

/// Settings of the validator module that are not token rules (files, the IdP client, timeouts, the grants list):
/// the module registers them itself; the operator may pass the first five through its configuration.
pub const MODULE_SETTINGS: [&str; 6] = [
    "ca_file",
    "http_timeout_ms",
    "introspection_client_id",
    "introspection_secret_file",
    "introspection_key_file",
    "grants",
];

impl RawSettings {
    /// Sets the token-rule setting `name` (as named after the prefix, e.g. `identity_claim`); false when `name`
    /// is not one of them.
    pub fn set(&mut self, name: &str, value: &str) -> bool {
        let field = match name {
            "audience" => &mut self.audience,
            "allowed_clients" => &mut self.allowed_clients,
            "algorithms" => &mut self.algorithms,
            "clock_skew" => &mut self.clock_skew,
            "identity_claim" => &mut self.identity_claim,
            "role_claim" => &mut self.role_claim,
            "required_role" => &mut self.required_role,
            "typ" => &mut self.typ,
            "max_token_bytes" => &mut self.max_token_bytes,
            "scope_check" => &mut self.scope_check,
            "jwks_min_refresh" => &mut self.jwks_min_refresh,
            "jwks_max_refresh" => &mut self.jwks_max_refresh,
            "jwks_max_stale" => &mut self.jwks_max_stale,
            "jwks_unknown_kid_cooldown" => &mut self.jwks_unknown_kid_cooldown,
            "introspection_cache_entries" => &mut self.introspection_cache_entries,
            "introspection_cache_ttl" => &mut self.introspection_cache_ttl,
            _ => return false,
        };
        *field = Some(value.to_owned());
        true
    }
}

/// Limits of the introspection cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntrospectionCacheLimits {
    pub max_entries: usize,
    pub max_ttl_secs: u64,
}

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorConfig {
    pub policy: Policy,
    pub key_cache: KeyCachePolicy,
    pub introspection_cache: IntrospectionCacheLimits,
}

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Full setting name, e.g. `pgrator_validator.algorithms`.
    pub setting: String,
    pub value: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

/// Every bad setting found (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

struct Checker<'a> {
    prefix: &'a str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn fail(&mut self, name: &str, value: &str, problem: String) {
        self.errors.push(ConfigError {
            setting: format!("{}.{name}", self.prefix),
            value: value.to_string(),
            problem,
        });
    }

    fn seconds(
        &mut self,
        name: &str,
        raw: &Option<String>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let Some(v) = given(raw) else { return default };
        match parse_seconds(v) {
            Some(s) if range.contains(&s) => s,
            Some(s) => {
                self.fail(
                    name,
                    v,
                    format!("{s} s is outside {}..={} s", range.start(), range.end()),
                );
                default
            }
            None => {
                self.fail(
                    name,
                    v,
                    format!(
                        "{} is not a duration (seconds, or with unit s, min, h)",
                        Shown(v)
                    ),
                );
                default
            }
        }
    }

    fn number(
        &mut self,
        name: &str,
        raw: &Option<String>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let Some(v) = given(raw) else { return default };
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                self.fail(
                    name,
                    v,
                    format!(
                        "{} is not a whole number in {}..={}",
                        Shown(v),
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    fn claim_name(&mut self, name: &str, raw: &Option<String>, default: &str) -> String {
        let Some(v) = given(raw) else {
            return default.to_string();
        };
        if v.len() > 256 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.fail(
                name,
                v,
                format!(
                    "{} is not a claim name (no spaces, at most 256 bytes)",
                    Shown(v)
                ),
            );
            return default.to_string();
        }
        v.to_string()
    }
}

/// A comma-separated setting as its non-empty, trimmed items.
fn comma_list(raw: &Option<String>) -> Vec<String> {
    given(raw)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn given(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parses `30`, `30s`, `5min`, `1h` into seconds.
pub fn parse_seconds(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "min" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Parses a comma-separated algorithm list.
fn algorithms(c: &mut Checker<'_>, raw: &Option<String>) -> AlgorithmSet {
    let Some(v) = given(raw) else {
        return AlgorithmSet::DEFAULT;
    };
    let mut set = AlgorithmSet::EMPTY;
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match classify_alg(name) {
            AlgName::Known(a) => set.insert(a),
            AlgName::None | AlgName::Hmac => c.fail(
                "algorithms",
                v,
                format!(
                    "unknown algorithm {} (allowed: {}; none and HMAC are never accepted)",
                    Shown(name),
                    AlgorithmSet::all()
                ),
            ),
            AlgName::Unknown => c.fail(
                "algorithms",
                v,
                format!(
                    "unknown algorithm {} (allowed: {})",
                    Shown(name),
                    AlgorithmSet::all()
                ),
            ),
        }
    }
    if set.is_empty() && c.errors.iter().all(|e| !e.setting.ends_with(".algorithms")) {
        c.fail("algorithms", v, "lists no algorithm".to_string());
    }
    set
}

impl ValidatorConfig {
    /// Validates `raw` (setting names are reported as `<prefix>.<name>`).
    pub fn from_settings(raw: &RawSettings, prefix: &str) -> Result<ValidatorConfig, ConfigErrors> {
        let mut c = Checker {
            prefix,
            errors: Vec::new(),
        };
        let audiences = comma_list(&raw.audience);
        if audiences.is_empty() {
            c.fail(
                "audience",
                raw.audience.as_deref().unwrap_or(""),
                "must name at least one audience (client id or project id)".into(),
            );
        }
        let allowed_clients = comma_list(&raw.allowed_clients);
        if let Some(bad) = allowed_clients
            .iter()
            .find(|c| c.len() > 255 || c.chars().any(|ch| ch.is_whitespace() || ch.is_control()))
        {
            c.fail(
                "allowed_clients",
                bad,
                "a client id has no spaces or control characters and is at most 255 characters"
                    .into(),
            );
        }
        let algorithms = algorithms(&mut c, &raw.algorithms);
        let clock_skew_secs = c.seconds(
            "clock_skew",
            &raw.clock_skew,
            crate::policy::DEFAULT_CLOCK_SKEW_SECS,
            0..=600,
        );
        let identity_claim = c.claim_name(
            "identity_claim",
            &raw.identity_claim,
            DEFAULT_IDENTITY_CLAIM,
        );
        let role_claim = c.claim_name("role_claim", &raw.role_claim, DEFAULT_ROLE_CLAIM);
        let required_role = given(&raw.required_role).map(str::to_string);
        let expected_typ = given(&raw.typ).map(str::to_string);
        if let Some(t) = &expected_typ
            && t.chars().any(|ch| ch.is_whitespace() || ch.is_control())
        {
            c.fail("typ", t, format!("{} is not a media type", Shown(t)));
        }
        let max_token_bytes = c.number(
            "max_token_bytes",
            &raw.max_token_bytes,
            DEFAULT_MAX_TOKEN_BYTES as u64,
            1024..=1024 * 1024,
        ) as usize;
        let scope_check = match given(&raw.scope_check) {
            None => ScopeCheck::Require,
            Some(v) if v.eq_ignore_ascii_case("require") => ScopeCheck::Require,
            Some(v) if v.eq_ignore_ascii_case("off") => ScopeCheck::Off,
            Some(v) => {
                c.fail(
                    "scope_check",
                    v,
                    format!("{} is not one of: require, off", Shown(v)),
                );
                ScopeCheck::Require
            }
        };
        let d = KeyCachePolicy::default();
        let min_refresh_secs = c.seconds(
            "jwks_min_refresh",
            &raw.jwks_min_refresh,
            d.min_refresh_secs,
            1..=86_400,
        );
        let max_refresh_secs = c.seconds(
            "jwks_max_refresh",
            &raw.jwks_max_refresh,
            d.max_refresh_secs,
            1..=86_400,
        );
        if max_refresh_secs < min_refresh_secs {
            c.fail(
                "jwks_max_refresh",
                raw.jwks_max_refresh.as_deref().unwrap_or(""),
                format!("{max_refresh_secs} s is below jwks_min_refresh ({min_refresh_secs} s)"),
            );
        }
        let max_stale_secs = c.seconds(
            "jwks_max_stale",
            &raw.jwks_max_stale,
            d.max_stale_secs,
            0..=7 * 86_400,
        );
        let unknown_kid_cooldown_secs = c.seconds(
            "jwks_unknown_kid_cooldown",
            &raw.jwks_unknown_kid_cooldown,
            d.unknown_kid_cooldown_secs,
            1..=3600,
        );
        let max_entries = c.number(
            "introspection_cache_entries",
            &raw.introspection_cache_entries,
            10_000,
            0..=1_000_000,
        ) as usize;
        let max_ttl_secs = c.seconds(
            "introspection_cache_ttl",
            &raw.introspection_cache_ttl,
            60,
            0..=3600,
        );
        if !c.errors.is_empty() {
            return Err(ConfigErrors(c.errors));
        }
        Ok(ValidatorConfig {
            policy: Policy {
                audiences,
                allowed_clients,
                algorithms,
                clock_skew_secs,
                identity_claim,
                role_claim,
                required_role,
                role_organization: None,
                expected_typ,
                max_token_bytes,
                scope_check,
            },
            key_cache: KeyCachePolicy {
                min_refresh_secs,
                max_refresh_secs,
                max_stale_secs,
                unknown_kid_cooldown_secs,
                ..d
            },
            introspection_cache: IntrospectionCacheLimits {
                max_entries,
                max_ttl_secs,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::Algorithm;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    fn base() -> RawSettings {
        RawSettings {
            audience: s("db-client"),
            ..RawSettings::default()
        }
    }

    fn errors(raw: &RawSettings) -> Vec<String> {
        match ValidatorConfig::from_settings(raw, DEFAULT_PREFIX) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_with_only_an_audience() {
        let c = ValidatorConfig::from_settings(&base(), DEFAULT_PREFIX).expect("valid");
        assert_eq!(c.policy, Policy::new(vec!["db-client".into()]));
        assert_eq!(c.key_cache, KeyCachePolicy::default());
        assert_eq!(
            c.introspection_cache,
            IntrospectionCacheLimits {
                max_entries: 10_000,
                max_ttl_secs: 60
            }
        );
    }

    #[test]
    fn settings_are_set_by_name() {
        let mut raw = RawSettings::default();
        assert!(raw.set("identity_claim", "email"));
        assert!(raw.set("allowed_clients", "psql"));
        assert!(
            !raw.set("ca_file", "/x"),
            "a module setting, not a token rule"
        );
        assert!(!raw.set("nonsense", "1"));
        assert_eq!(raw.identity_claim.as_deref(), Some("email"));
        assert_eq!(raw.allowed_clients.as_deref(), Some("psql"));
    }

    #[test]
    fn every_setting_parses() {
        let raw = RawSettings {
            audience: s(" a , b ,"),
            allowed_clients: s("psql, pgrator-cli"),
            algorithms: s("RS256, PS256,ES384"),
            clock_skew: s("1min"),
            identity_claim: s("email"),
            role_claim: s("urn:zitadel:iam:org:project:42:roles"),
            required_role: s("db"),
            typ: s("at+jwt"),
            max_token_bytes: s("8192"),
            scope_check: s("OFF"),
            jwks_min_refresh: s("10s"),
            jwks_max_refresh: s("2h"),
            jwks_max_stale: s("0"),
            jwks_unknown_kid_cooldown: s("5"),
            introspection_cache_entries: s("0"),
            introspection_cache_ttl: s("120"),
        };
        let c = ValidatorConfig::from_settings(&raw, DEFAULT_PREFIX).expect("valid");
        assert_eq!(c.policy.audiences, vec!["a", "b"]);
        assert_eq!(c.policy.allowed_clients, vec!["psql", "pgrator-cli"]);
        let bad = RawSettings {
            audience: s("a"),
            allowed_clients: s("psql, two words"),
            ..RawSettings::default()
        };
        let errors = ValidatorConfig::from_settings(&bad, DEFAULT_PREFIX)
            .expect_err("a client id with a space");
        assert!(
            errors
                .to_string()
                .contains("pgrator_validator.allowed_clients"),
            "{errors}"
        );
        assert_eq!(
            c.policy.algorithms,
            [Algorithm::RS256, Algorithm::PS256, Algorithm::ES384]
                .into_iter()
                .collect()
        );
        assert_eq!(c.policy.clock_skew_secs, 60);
        assert_eq!(c.policy.identity_claim, "email");
        assert_eq!(c.policy.required_role.as_deref(), Some("db"));
        assert_eq!(c.policy.expected_typ.as_deref(), Some("at+jwt"));
        assert_eq!(c.policy.max_token_bytes, 8192);
        assert_eq!(c.policy.scope_check, ScopeCheck::Off);
        assert_eq!(
            (c.key_cache.min_refresh_secs, c.key_cache.max_refresh_secs),
            (10, 7200)
        );
        assert_eq!(
            (
                c.key_cache.max_stale_secs,
                c.key_cache.unknown_kid_cooldown_secs
            ),
            (0, 5)
        );
        assert_eq!(
            c.introspection_cache,
            IntrospectionCacheLimits {
                max_entries: 0,
                max_ttl_secs: 120
            }
        );
    }

    #[test]
    fn errors_name_the_setting_and_the_value() {
        let raw = RawSettings {
            algorithms: s("RS256,HS256"),
            ..base()
        };
        assert_eq!(
            errors(&raw),
            vec![
                "pgrator_validator.algorithms: unknown algorithm 'HS256' (allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA; none and HMAC are never accepted)"
            ]
        );
        let raw = RawSettings {
            algorithms: s("RS257"),
            ..base()
        };
        assert_eq!(
            errors(&raw),
            vec![
                "pgrator_validator.algorithms: unknown algorithm 'RS257' (allowed: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
            ]
        );
        assert_eq!(
            errors(&RawSettings {
                algorithms: s(" , "),
                ..base()
            }),
            vec!["pgrator_validator.algorithms: lists no algorithm"]
        );
        assert_eq!(
            errors(&RawSettings {
                algorithms: s("none"),
                ..base()
            })
            .len(),
            1
        );
    }

    #[test]
    fn audience_is_required() {
        for a in [None, s(""), s(" , ")] {
            let e = errors(&RawSettings {
                audience: a,
                ..RawSettings::default()
            });
            assert_eq!(
                e,
                vec![
                    "pgrator_validator.audience: must name at least one audience (client id or project id)"
                ]
            );
        }
    }

    #[test]
    fn numbers_and_durations_are_bounded() {
        assert_eq!(
            errors(&RawSettings {
                clock_skew: s("601"),
                ..base()
            }),
            vec!["pgrator_validator.clock_skew: 601 s is outside 0..=600 s"]
        );
        assert_eq!(
            errors(&RawSettings {
                clock_skew: s("30 sec"),
                ..base()
            }),
            vec![
                "pgrator_validator.clock_skew: '30 sec' is not a duration (seconds, or with unit s, min, h)"
            ]
        );
        assert_eq!(
            errors(&RawSettings {
                clock_skew: s("-1"),
                ..base()
            })
            .len(),
            1
        );
        assert_eq!(
            errors(&RawSettings {
                max_token_bytes: s("100"),
                ..base()
            }),
            vec![
                "pgrator_validator.max_token_bytes: '100' is not a whole number in 1024..=1048576"
            ]
        );
        assert_eq!(
            errors(&RawSettings {
                max_token_bytes: s("16k"),
                ..base()
            })
            .len(),
            1
        );
        assert_eq!(
            errors(&RawSettings {
                jwks_min_refresh: s("600"),
                jwks_max_refresh: s("60"),
                ..base()
            }),
            vec!["pgrator_validator.jwks_max_refresh: 60 s is below jwks_min_refresh (600 s)"]
        );
        assert_eq!(
            errors(&RawSettings {
                introspection_cache_entries: s("1000001"),
                ..base()
            })
            .len(),
            1
        );
        assert_eq!(parse_seconds("99999999999999999999h"), None);
    }

    #[test]
    fn names_and_enums_are_checked() {
        assert_eq!(
            errors(&RawSettings {
                identity_claim: s("a b"),
                ..base()
            }),
            vec![
                "pgrator_validator.identity_claim: 'a b' is not a claim name (no spaces, at most 256 bytes)"
            ]
        );
        assert_eq!(
            errors(&RawSettings {
                scope_check: s("maybe"),
                ..base()
            }),
            vec!["pgrator_validator.scope_check: 'maybe' is not one of: require, off"]
        );
        assert_eq!(
            errors(&RawSettings {
                typ: s("at jwt"),
                ..base()
            }),
            vec!["pgrator_validator.typ: 'at jwt' is not a media type"]
        );
    }

    #[test]
    fn all_errors_are_reported_and_the_prefix_is_configurable() {
        let raw = RawSettings {
            audience: None,
            clock_skew: s("x"),
            scope_check: s("y"),
            ..RawSettings::default()
        };
        let e = ValidatorConfig::from_settings(&raw, "pgrator_access").expect_err("invalid");
        assert_eq!(e.0.len(), 3);
        assert!(
            e.to_string().starts_with("pgrator_access.audience: "),
            "{e}"
        );
        assert_eq!(e.0[1].value, "x");
    }
}

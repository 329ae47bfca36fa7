//! Warm validation cost per algorithm (keys parsed once, as in the module's steady state), plus the cold cost
//! of parsing a JWKS (paid once per backend per key rotation). Prints p50/p99 from a plain timing loop, then
//! runs criterion.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use pgrator_token::{KeySet, validate_jwt};
use support::*;

fn cases() -> (KeySet, Vec<u8>, Vec<(&'static str, String)>) {
    let signers = [Signer::rs256("r"), Signer::es256("e"), Signer::eddsa("d")];
    let refs: Vec<&Signer> = signers.iter().collect();
    let document = jwks(&refs);
    let keys = KeySet::parse(&document).expect("jwks");
    let tokens = signers
        .iter()
        .map(|s| (s.alg(), s.mint(&claims())))
        .collect();
    (keys, document, tokens)
}

fn percentiles(name: &str, mut f: impl FnMut()) {
    const WARMUP: usize = 2_000;
    const SAMPLES: usize = 20_000;
    for _ in 0..WARMUP {
        f();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        f();
        times.push(t.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((SAMPLES as f64 * q) as usize).min(SAMPLES - 1)];
    println!(
        "{name:<22} p50 {:>8.1} us   p99 {:>8.1} us   max {:>8.1} us   ({SAMPLES} samples)",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        times[SAMPLES - 1].as_secs_f64() * 1e6,
    );
}

fn main() {
    let (keys, document, tokens) = cases();
    let (p, r, n) = (policy(), requirements(), now());
    for (alg, token) in &tokens {
        assert!(
            validate_jwt(token, &keys, &p, &r, n).is_ok(),
            "{alg} token validates"
        );
    }

    println!("-- plain timing loop --");
    for (alg, token) in &tokens {
        percentiles(&format!("validate {alg}"), || {
            black_box(validate_jwt(black_box(token), &keys, &p, &r, n).is_ok());
        });
    }
    percentiles("jwks parse (3 keys)", || {
        black_box(KeySet::parse(black_box(&document)).is_ok());
    });

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut group = c.benchmark_group("validate_warm");
    for (alg, token) in &tokens {
        group.bench_function(*alg, |b| {
            b.iter(|| validate_jwt(black_box(token), &keys, &p, &r, n).is_ok())
        });
    }
    group.finish();
    c.bench_function("jwks_parse", |b| {
        b.iter(|| KeySet::parse(black_box(&document)).is_ok())
    });
    c.final_summary();
}

//! Just enough of Kubernetes quantities to size things from a memory request: parse to bytes, print as MiB.

/// Bytes in a quantity such as `2Gi`, `512Mi`, `1.5G`, `1e9` or `2048`; `None` when it is not one.
pub fn bytes(quantity: &str) -> Option<u128> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        s if s.starts_with(['e', 'E']) => 10u128.checked_pow(s[1..].parse().ok()?)?,
        _ => return None,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole.checked_mul(multiplier)?;
    if !frac.is_empty() {
        let digits = u32::try_from(frac.len()).ok()?;
        let scale = 10u128.checked_pow(digits)?;
        total = total.checked_add(frac.parse::<u128>().ok()?.checked_mul(multiplier)? / scale)?;
    }
    Some(total)
}

/// `bytes` rounded up to whole MiB, written the Kubernetes way (`2560Mi`).
pub fn mebibytes(bytes: u128) -> String {
    format!("{}Mi", bytes.div_ceil(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_forms_kubernetes_writes() {
        assert_eq!(bytes("2Gi"), Some(2 << 30));
        assert_eq!(bytes("512Mi"), Some(512 << 20));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e9"), Some(1_000_000_000));
        assert_eq!(bytes("2048"), Some(2048));
        assert_eq!(bytes("500m"), None, "milli-bytes are not a memory size");
        assert_eq!(bytes("Gi"), None);
        assert_eq!(bytes(""), None);
        assert_eq!(mebibytes(5 << 29), "2560Mi");
        assert_eq!(mebibytes(1), "1Mi");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = bytes(&s);
        }

        #[test]
        fn mebibytes_round_trip(n in 1u64..(1 << 40)) {
            let text = mebibytes(u128::from(n) << 20);
            prop_assert_eq!(bytes(&text), Some(u128::from(n) << 20));
        }
    }
}

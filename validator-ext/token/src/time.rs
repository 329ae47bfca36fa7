//! Time as the library sees it: whole seconds since the Unix epoch, always handed in by the caller.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time in whole seconds since 1970-01-01T00:00:00Z. The library never reads the clock itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// Seconds since the epoch.
    pub const fn seconds(self) -> i64 {
        self.0
    }

    /// This time plus `secs` seconds (saturating).
    pub const fn plus(self, secs: u64) -> UnixTime {
        let secs = if secs > i64::MAX as u64 {
            i64::MAX
        } else {
            secs as i64
        };
        UnixTime(self.0.saturating_add(secs))
    }

    /// This time minus `secs` seconds (saturating).
    pub const fn minus(self, secs: u64) -> UnixTime {
        let secs = if secs > i64::MAX as u64 {
            i64::MAX
        } else {
            secs as i64
        };
        UnixTime(self.0.saturating_sub(secs))
    }

    /// Seconds from `earlier` to `self`, zero when `earlier` is later.
    pub fn since(self, earlier: UnixTime) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }
}

impl From<SystemTime> for UnixTime {
    fn from(t: SystemTime) -> UnixTime {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixTime(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => {
                // Before the epoch: round towards the past so "now" is never later than the truth.
                let d = e.duration();
                let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                UnixTime(-whole - i64::from(d.subsec_nanos() > 0))
            }
        }
    }
}

impl From<UnixTime> for SystemTime {
    fn from(t: UnixTime) -> SystemTime {
        if t.0 >= 0 {
            UNIX_EPOCH + Duration::from_secs(t.0.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(t.0.unsigned_abs())
        }
    }
}

impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_time_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(UnixTime::from(t), UnixTime(1_700_000_000));
        assert_eq!(SystemTime::from(UnixTime(1_700_000_000)), t);
        let before = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(UnixTime::from(before), UnixTime(-2));
        assert_eq!(
            SystemTime::from(UnixTime(-2)),
            UNIX_EPOCH - Duration::from_secs(2)
        );
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixTime(i64::MAX).plus(10), UnixTime(i64::MAX));
        assert_eq!(UnixTime(i64::MIN).minus(10), UnixTime(i64::MIN));
        assert_eq!(UnixTime(5).plus(u64::MAX), UnixTime(i64::MAX));
        assert_eq!(UnixTime(10).since(UnixTime(4)), 6);
        assert_eq!(UnixTime(4).since(UnixTime(10)), 0);
    }
}

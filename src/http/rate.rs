//! Per-key rate limits on asking: a token bucket per principal (`[server] asks_per_minute`,
//! refilled evenly, holding at most a minute's worth), so one client cannot fill the model's
//! line for everyone. Checked before an ask does any work; the answer past the limit is 429
//! with `Retry-After`. Principals come from issued API keys, so the map stays as small as the
//! key list.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets of every principal that asked.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` asks per principal; 0 is no limit.
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one ask from `principal`'s bucket, or says how long until one is there.
    pub fn take(&self, principal: &str, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(principal.to_string()).or_insert(Bucket { tokens: capacity, at: now });
        let refilled = bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = refilled.min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second).max(Duration::from_secs(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_gets_its_minutes_worth_then_waits_for_the_refill() {
        let limiter = RateLimiter::new(3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("ana", start), Ok(()));
        }
        let wait = limiter.take("ana", start).expect_err("the fourth in the same instant waits");
        assert!(wait >= Duration::from_secs(19) && wait <= Duration::from_secs(20), "{wait:?}");
        // Another principal has a bucket of its own.
        assert_eq!(limiter.take("bo", start), Ok(()));
        // 21 s later one ask's worth has come back, and only one.
        let later = start + Duration::from_secs(21);
        assert_eq!(limiter.take("ana", later), Ok(()));
        assert!(limiter.take("ana", later).is_err());
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.take("ana", now).is_ok()));
    }
}

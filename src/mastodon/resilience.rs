//! What keeps a slow, failing or rate-limited Mastodon from hurting the sidecar's callers: backoff
//! with jitter, a circuit breaker per instance, and the rate-limit state read from Mastodon's headers.
//!
//! The policies are plain data and small state machines, tested here without a network; the client
//! (`client.rs`) applies them around each request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::clock::unix_now;
use crate::metrics::Metrics;

/// The first retry waits up to this long; each further one doubles the cap.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// "Full jitter" exponential backoff: a random wait in `[0, min(max, base * 2^attempt)]`, so that
/// replicas retrying after one outage do not come back in step.
pub fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(BACKOFF_MAX);
    cap.mul_f64(rand::rng().random_range(0.0..=1.0))
}

/// Consecutive failed attempts that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long it stays open before one probe is let through.
pub const BREAKER_COOLDOWN: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, until_unix: i64 },
    HalfOpen { probing: bool },
}

/// Why the breaker refused a call: it is open until `until_unix`, or a probe is under way.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub until_unix: Option<i64>,
}

/// A circuit breaker for one instance, shared by every connection to it.
#[derive(Debug)]
pub struct Breaker {
    instance: String,
    state: Mutex<State>,
    metrics: Metrics,
    cooldown: Duration,
}

impl Breaker {
    pub fn new(instance: &str, metrics: Metrics, cooldown: Duration) -> Breaker {
        metrics.circuit_open(instance, false);
        Breaker {
            instance: instance.to_owned(),
            state: Mutex::new(State::Closed { failures: 0 }),
            metrics,
            cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May a request go out now? When open and the cooldown has passed, exactly one caller is let
    /// through as the probe.
    pub fn admit(&self) -> Result<(), Refused> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until, until_unix } => {
                if Instant::now() >= until {
                    *state = State::HalfOpen { probing: true };
                    Ok(())
                } else {
                    Err(Refused {
                        until_unix: Some(until_unix),
                    })
                }
            }
            State::HalfOpen { probing: true } => Err(Refused { until_unix: None }),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(())
            }
        }
    }

    /// Records an attempt's outcome. `healthy` is any answer but a gateway's 502, 503 or 504: a prompt
    /// 500 shows the server answering (often about one caller's input) and must not open the breaker
    /// for every connection to it. A transport failure, a timeout or a 502/503/504 is not healthy.
    pub fn record(&self, healthy: bool) {
        let mut state = self.lock();
        let next = match (&*state, healthy) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < BREAKER_THRESHOLD => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Open { until, until_unix }, false) => State::Open {
                until: *until,
                until_unix: *until_unix,
            },
            (_, false) => State::Open {
                until: Instant::now() + self.cooldown,
                until_unix: unix_now() + self.cooldown.as_secs() as i64,
            },
        };
        let was_open = !matches!(*state, State::Closed { .. });
        let is_open = !matches!(next, State::Closed { .. });
        if is_open && !was_open {
            tracing::warn!(instance = %self.instance, cooldown_s = self.cooldown.as_secs(), "circuit breaker opened: calls fail fast");
        } else if was_open && !is_open {
            tracing::info!(instance = %self.instance, "circuit breaker closed again");
        }
        *state = next;
        self.metrics.circuit_open(&self.instance, is_open);
    }
}

impl Breaker {
    /// An admitted attempt ended without an outcome that says anything about the server (the call was
    /// cancelled, or a reused connection had been closed by the server): a half-open breaker lets the
    /// next probe through rather than waiting for a record that never comes; otherwise nothing changes.
    pub fn release(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { probing: true } = *state {
            *state = State::HalfOpen { probing: false };
        }
    }
}

/// One breaker per instance (scheme, host and port), shared across connections.
#[derive(Default)]
pub struct Breakers {
    by_instance: Mutex<HashMap<String, Arc<Breaker>>>,
}

impl Breakers {
    pub fn for_instance(&self, instance: &str, metrics: &Metrics) -> Arc<Breaker> {
        let mut map = self.by_instance.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(instance.to_owned()).or_insert_with(|| {
                Arc::new(Breaker::new(instance, metrics.clone(), BREAKER_COOLDOWN))
            }),
        )
    }
}

/// Below this share of the window's limit, requests are spaced out until the reset.
const PACE_BELOW: f64 = 0.05;
/// The longest a single request is held back for pacing.
const PACE_MAX: Duration = Duration::from_secs(1);

/// What to do about the rate limit before sending.
#[derive(Debug, PartialEq, Eq)]
pub enum Before {
    Send,
    /// Hold back this long, then send (pacing near the limit).
    Pace(Duration),
    /// Known to be exhausted until `reset_unix`.
    Exhausted {
        reset_unix: i64,
    },
}

/// The last `X-RateLimit-*` values seen for one route, and when the window resets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    pub reset_unix: Option<i64>,
}

impl Window {
    pub fn before_sending(&self, now: i64) -> Before {
        let (Some(remaining), Some(reset)) = (self.remaining, self.reset_unix) else {
            return Before::Send;
        };
        if reset <= now {
            return Before::Send;
        }
        if remaining <= 0 {
            return Before::Exhausted { reset_unix: reset };
        }
        match self.limit {
            Some(limit) if (remaining as f64) < limit as f64 * PACE_BELOW => {
                // Spread what is left evenly over the rest of the window.
                let per_request =
                    Duration::from_secs((reset - now) as u64) / (remaining as u32 + 1);
                Before::Pace(per_request.min(PACE_MAX))
            }
            _ => Before::Send,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cooldown: Duration) -> Breaker {
        Breaker::new("https://m.example", Metrics::new().unwrap(), cooldown)
    }

    #[test]
    fn backoff_stays_within_its_doubling_cap() {
        for attempt in 0..10 {
            let cap = BACKOFF_BASE
                .saturating_mul(2u32.pow(attempt))
                .min(BACKOFF_MAX);
            assert!(backoff(attempt) <= cap);
        }
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_fails_fast() {
        let b = breaker(Duration::from_secs(60));
        for _ in 0..BREAKER_THRESHOLD - 1 {
            b.record(false);
            assert!(b.admit().is_ok());
        }
        b.record(true);
        for _ in 0..BREAKER_THRESHOLD {
            assert!(b.admit().is_ok());
            b.record(false);
        }
        let refused = b.admit().unwrap_err();
        assert!(refused.until_unix.is_some());
    }

    #[test]
    fn a_half_open_breaker_lets_one_probe_through() {
        let b = breaker(Duration::ZERO);
        for _ in 0..BREAKER_THRESHOLD {
            b.record(false);
        }
        assert!(b.admit().is_ok(), "the probe");
        assert_eq!(
            b.admit(),
            Err(Refused { until_unix: None }),
            "only one probe"
        );
        b.record(false);
        assert!(b.admit().is_ok(), "cooldown zero: the next probe");
        b.record(true);
        assert!(b.admit().is_ok());
        assert!(b.admit().is_ok(), "closed again");
    }

    #[test]
    fn a_released_probe_lets_the_next_one_through_and_changes_nothing_else() {
        let b = breaker(Duration::ZERO);
        b.release();
        assert!(b.admit().is_ok(), "closed: unchanged");
        for _ in 0..BREAKER_THRESHOLD {
            b.record(false);
        }
        assert!(b.admit().is_ok(), "the probe");
        assert!(b.admit().is_err(), "only one probe");
        b.release();
        assert!(
            b.admit().is_ok(),
            "the probe ended without an outcome: another may go"
        );
        b.record(true);
        assert!(b.admit().is_ok());

        let open = breaker(Duration::from_secs(60));
        for _ in 0..BREAKER_THRESHOLD {
            open.record(false);
        }
        open.release();
        assert!(open.admit().is_err(), "an open breaker stays open");
    }

    #[test]
    fn the_window_paces_near_the_limit_and_stops_at_zero() {
        let now = 1_000;
        let w = |remaining| Window {
            limit: Some(300),
            remaining: Some(remaining),
            reset_unix: Some(now + 100),
        };
        assert_eq!(w(200).before_sending(now), Before::Send);
        assert!(
            matches!(w(5).before_sending(now), Before::Pace(d) if d > Duration::ZERO && d <= PACE_MAX)
        );
        assert_eq!(
            w(0).before_sending(now),
            Before::Exhausted {
                reset_unix: now + 100
            }
        );
        assert_eq!(
            w(0).before_sending(now + 100),
            Before::Send,
            "the window has reset"
        );
        assert_eq!(Window::default().before_sending(now), Before::Send);
    }
}

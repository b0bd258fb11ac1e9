//! Latency histograms (HDR, microseconds) and what one load run measured.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest latency recorded exactly: one minute, in microseconds.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A histogram of microseconds from 1 µs to a minute, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Records `d` in microseconds (at least 1, at most a minute).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

/// The `pct` percentile (0–100) in microseconds: the smallest value that at least `pct` % of the
/// samples do not exceed. `None` when nothing was recorded.
pub fn percentile_us(h: &Histogram<u64>, pct: f64) -> Option<u64> {
    if h.is_empty() {
        return None;
    }
    // 0.999 * 1000 is 999.0000000000001 in floating point, which would round the rank up to the
    // next sample: take off far less than one sample's share first.
    let q = (pct / 100.0 - 1e-12).clamp(0.0, 1.0);
    Some(h.value_at_quantile(q))
}

/// What one load run measured.
#[derive(Clone, Debug)]
pub struct RunStats {
    /// Answers with a 2xx status.
    pub ok: u64,
    /// Transport failures and non-2xx answers.
    pub errors: u64,
    /// From the first request (or scheduled start) to the last answer.
    pub elapsed: Duration,
    /// Latency of the successful requests, µs. In the open loop, from the scheduled send time.
    pub latency: Histogram<u64>,
    /// Open loop only: how late the generator actually sent each request, µs.
    pub send_lag: Option<Histogram<u64>>,
    /// The first failure seen, for the report.
    pub first_error: Option<String>,
}

impl RunStats {
    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.ok as f64 / s
        } else {
            0.0
        }
    }

    pub fn p(&self, pct: f64) -> Option<u64> {
        percentile_us(&self.latency, pct)
    }

    /// Adds `other` (another slice of the same row and mode) to this.
    pub fn merge(&mut self, other: &RunStats) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
        match (&mut self.send_lag, &other.send_lag) {
            (Some(mine), Some(theirs)) => mine.add(theirs).expect("same bounds"),
            (None, Some(theirs)) => self.send_lag = Some(theirs.clone()),
            _ => {}
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// The median of `samples` (the mean of the two middle ones for an even count).
pub fn median(samples: &[Duration]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut h = histogram();
        for us in 1..=1000 {
            record(&mut h, Duration::from_micros(us));
        }
        assert_eq!(percentile_us(&h, 50.0), Some(500));
        assert_eq!(percentile_us(&h, 99.0), Some(990));
        assert_eq!(percentile_us(&h, 99.9), Some(999));
        assert_eq!(percentile_us(&h, 100.0), Some(1000));
    }

    #[test]
    fn percentiles_keep_three_significant_digits_of_large_values() {
        let mut h = histogram();
        for _ in 0..999 {
            record(&mut h, Duration::from_micros(250));
        }
        record(&mut h, Duration::from_millis(1234));
        assert_eq!(percentile_us(&h, 99.0), Some(250));
        let top = percentile_us(&h, 99.95).unwrap();
        assert!(
            (1_233_000..=1_235_000).contains(&top),
            "{top} is 1.234 s to 3 digits"
        );
    }

    #[test]
    fn out_of_range_values_are_clamped_and_empty_histograms_have_no_percentile() {
        let mut h = histogram();
        assert_eq!(percentile_us(&h, 50.0), None);
        record(&mut h, Duration::from_nanos(10));
        record(&mut h, Duration::from_secs(3600));
        assert_eq!(h.len(), 2);
        assert_eq!(percentile_us(&h, 0.0), Some(1));
        assert!(percentile_us(&h, 100.0).unwrap() >= MAX_LATENCY_US);
    }

    #[test]
    fn rps_counts_successes_over_the_elapsed_time() {
        let stats = RunStats {
            ok: 5000,
            errors: 7,
            elapsed: Duration::from_millis(2500),
            latency: histogram(),
            send_lag: None,
            first_error: None,
        };
        assert!((stats.rps() - 2000.0).abs() < 1e-9);
    }

    #[test]
    fn slices_merge_into_one_run() {
        let slice = |ok: u64, us: u64| {
            let mut latency = histogram();
            for _ in 0..ok {
                record(&mut latency, Duration::from_micros(us));
            }
            RunStats {
                ok,
                errors: 1,
                elapsed: Duration::from_secs(1),
                latency,
                send_lag: Some(histogram()),
                first_error: (us > 100).then(|| format!("slow {us}")),
            }
        };
        let mut total = slice(100, 50);
        total.merge(&slice(300, 500));
        assert_eq!(total.ok, 400);
        assert_eq!(total.errors, 2);
        assert_eq!(total.elapsed, Duration::from_secs(2));
        assert!((total.rps() - 200.0).abs() < 1e-9);
        assert_eq!(total.p(25.0), Some(50));
        assert_eq!(total.p(50.0), Some(500));
        assert_eq!(total.first_error.as_deref(), Some("slow 500"));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[ms(30), ms(10), ms(20)]), Some(ms(20)));
        assert_eq!(median(&[ms(40), ms(10), ms(20), ms(30)]), Some(ms(25)));
    }
}

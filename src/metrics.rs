//! Prometheus metrics (contract, section 5), in a registry the application owns.
//!
//! No globals: `Application::build` makes one `Metrics` and hands clones to whoever records, so tests can
//! run several sidecars in one process and read each one's numbers. Label values are bounded by
//! construction: operation names come from the closed `Operation` enum, transports and outcomes from
//! fixed lists, endpoints from route templates, connections from configured names. Never a status id,
//! a token or free text.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets from 1 ms to 30 s: local refusals take microseconds, Mastodon calls tens of milliseconds
/// to seconds, and the longest timeout is in the tens of seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    operations_total: IntCounterVec,
    operation_duration: HistogramVec,
    upstream_requests_total: IntCounterVec,
    upstream_duration: HistogramVec,
    ratelimit_remaining: IntGaugeVec,
    ratelimit_limit: IntGaugeVec,
    token_valid: IntGaugeVec,
    upstream_retries_total: IntCounterVec,
    circuit_open: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let operations_total = IntCounterVec::new(
            Opts::new(
                "mastodon_sidecar_operations_total",
                "Connector operations by outcome (ok or the error code).",
            ),
            &["operation", "transport", "outcome"],
        )?;
        let operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "mastodon_sidecar_operation_duration_seconds",
                "Time from a decoded request to its encoded answer.",
            )
            .buckets(BUCKETS.to_vec()),
            &["operation", "transport"],
        )?;
        let upstream_requests_total = IntCounterVec::new(
            Opts::new(
                "mastodon_sidecar_upstream_requests_total",
                "Requests sent to Mastodon, by route template and HTTP status (or error).",
            ),
            &["endpoint", "status"],
        )?;
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "mastodon_sidecar_upstream_duration_seconds",
                "Time Mastodon took to answer, by route template.",
            )
            .buckets(BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let ratelimit_remaining = IntGaugeVec::new(
            Opts::new(
                "mastodon_sidecar_ratelimit_remaining",
                "X-RateLimit-Remaining from Mastodon's last answer, per connection.",
            ),
            &["connection"],
        )?;
        let ratelimit_limit = IntGaugeVec::new(
            Opts::new(
                "mastodon_sidecar_ratelimit_limit",
                "X-RateLimit-Limit from Mastodon's last answer, per connection: the size of the window that ratelimit_remaining counts down.",
            ),
            &["connection"],
        )?;
        let token_valid = IntGaugeVec::new(
            Opts::new(
                "mastodon_sidecar_token_valid",
                "1 while the connection's user token works, 0 once Mastodon refused it (revoked) or it was revoked here.",
            ),
            &["connection"],
        )?;
        let upstream_retries_total = IntCounterVec::new(
            Opts::new(
                "mastodon_sidecar_upstream_retries_total",
                "Requests to Mastodon sent again, by route template and reason (connect, timeout, status_5xx, rate_limited).",
            ),
            &["endpoint", "reason"],
        )?;
        let circuit_open = IntGaugeVec::new(
            Opts::new(
                "mastodon_sidecar_circuit_open",
                "1 while the circuit breaker of an upstream server is open or probing, else 0.",
            ),
            // Not `instance`: Prometheus sets that label on every scraped series (the target), so a
            // metric's own `instance` would arrive renamed to `exported_instance`.
            &["upstream"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "mastodon_sidecar_build_info",
                "Always 1; the version as a label.",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        registry.register(Box::new(operations_total.clone()))?;
        registry.register(Box::new(operation_duration.clone()))?;
        registry.register(Box::new(upstream_requests_total.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(ratelimit_remaining.clone()))?;
        registry.register(Box::new(ratelimit_limit.clone()))?;
        registry.register(Box::new(token_valid.clone()))?;
        registry.register(Box::new(upstream_retries_total.clone()))?;
        registry.register(Box::new(circuit_open.clone()))?;
        registry.register(Box::new(build_info))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Metrics {
            registry,
            operations_total,
            operation_duration,
            upstream_requests_total,
            upstream_duration,
            ratelimit_remaining,
            ratelimit_limit,
            token_valid,
            upstream_retries_total,
            circuit_open,
        })
    }

    pub fn observe_operation(&self, operation: &str, transport: &str, outcome: &str, seconds: f64) {
        self.operations_total
            .with_label_values(&[operation, transport, outcome])
            .inc();
        self.operation_duration
            .with_label_values(&[operation, transport])
            .observe(seconds);
    }

    /// `status` is the HTTP status, or `None` when no answer came (connection failure, timeout).
    pub fn observe_upstream(&self, endpoint: &str, status: Option<u16>, seconds: f64) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.upstream_requests_total
            .with_label_values(&[endpoint, &status])
            .inc();
        self.upstream_duration
            .with_label_values(&[endpoint])
            .observe(seconds);
    }

    pub fn ratelimit_remaining(&self, connection: &str) -> IntGauge {
        self.ratelimit_remaining.with_label_values(&[connection])
    }

    pub fn ratelimit_limit(&self, connection: &str) -> IntGauge {
        self.ratelimit_limit.with_label_values(&[connection])
    }

    pub fn token_valid(&self, connection: &str, valid: bool) {
        self.token_valid
            .with_label_values(&[connection])
            .set(i64::from(valid));
    }

    pub fn upstream_retry(&self, endpoint: &str, reason: &str) {
        self.upstream_retries_total
            .with_label_values(&[endpoint, reason])
            .inc();
    }

    /// `upstream` is the server's base URL (the configured instance), one series per breaker.
    pub fn circuit_open(&self, upstream: &str, open: bool) {
        self.circuit_open
            .with_label_values(&[upstream])
            .set(i64::from(open));
    }

    /// The text exposition format, for `GET /metrics`.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family with one sample, so that the exposition shows all of them (a vector with no
    /// child is not rendered at all).
    fn populated() -> Metrics {
        let m = Metrics::new().unwrap();
        m.observe_operation("postStatus", "json", "ok", 0.02);
        m.observe_upstream("POST /api/v1/statuses", Some(200), 0.01);
        m.ratelimit_remaining("main").set(299);
        m.ratelimit_limit("main").set(300);
        m.token_valid("main", true);
        m.upstream_retry("POST /api/v1/statuses", "timeout");
        m.circuit_open("https://mastodon.example", false);
        m
    }

    /// The series names Prometheus stores (a histogram is its `_bucket`, `_sum` and `_count`).
    fn series_names(m: &Metrics) -> Vec<String> {
        let mut names = Vec::new();
        for family in m.registry.gather() {
            let name = family.name().to_owned();
            if family.get_field_type() == prometheus::proto::MetricType::HISTOGRAM {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.push(format!("{name}{suffix}"));
                }
            } else {
                names.push(name);
            }
        }
        names.sort();
        names
    }

    #[test]
    fn no_metric_has_a_label_prometheus_sets_on_the_target() {
        // `instance` and `job` come from the scrape; a metric's own would arrive as exported_*.
        let m = populated();
        for family in m.registry.gather() {
            for metric in family.get_metric() {
                for label in metric.get_label() {
                    assert!(
                        !matches!(label.name(), "instance" | "job"),
                        "{} has the label {}",
                        family.name(),
                        label.name()
                    );
                }
            }
        }
        let text = m.render().unwrap();
        assert!(
            text.contains(
                r#"mastodon_sidecar_circuit_open{upstream="https://mastodon.example"} 0"#
            ),
            "{text}"
        );
    }

    #[test]
    fn the_rate_limit_window_is_exported_beside_what_remains_of_it() {
        let text = populated().render().unwrap();
        assert!(text.contains(r#"mastodon_sidecar_ratelimit_limit{connection="main"} 300"#));
        assert!(text.contains(r#"mastodon_sidecar_ratelimit_remaining{connection="main"} 299"#));
    }

    /// deploy/metric-names.txt is what the dashboard and alert checks (deploy/check-observability)
    /// hold every PromQL expression against: it must be exactly what the sidecar exports.
    #[test]
    fn the_deploy_list_of_metric_names_is_what_the_sidecar_exports() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/metric-names.txt");
        let listed: Vec<String> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            // The process collector exists on Linux only.
            .filter(|l| cfg!(target_os = "linux") || !l.starts_with("process_"))
            .map(str::to_owned)
            .collect();
        let exported = series_names(&populated());
        println!("{} series names exported", exported.len());
        assert_eq!(
            listed,
            exported,
            "update {path} to (sorted, one a line):\n{}",
            exported.join("\n")
        );
    }
}

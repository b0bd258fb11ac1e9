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
                "1 while the circuit breaker of an instance is open or probing, else 0.",
            ),
            &["instance"],
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

    pub fn circuit_open(&self, instance: &str, open: bool) {
        self.circuit_open
            .with_label_values(&[instance])
            .set(i64::from(open));
    }

    /// The text exposition format, for `GET /metrics`.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

//! What `/metrics` shows, kept in memory: counters and histograms moved as things happen
//! (by the hub on committed changes, by the workers on attempts, by the HTTP layer on
//! requests), and gauges kept by whoever knows them. A scrape reads no table. Names follow
//! Prometheus' conventions (`_total`, `_seconds`); each server counts what it did.

use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::domain::status::seconds_between;
use crate::work::outcome::SendOutcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub channel: String,
    /// responded, timed_out or cancelled.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub channel: String,
    /// delivered, logged, retry or refused.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's pattern (`/v1/pause/{id}`), never a path with ids or tokens in it.
    pub route: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// deliveries or webhook_events.
    pub queue: String,
}

/// Every metric of the server.
pub struct Metrics {
    registry: Registry,
    pub pauses_created: Family<ChannelLabel, Counter>,
    pub pauses_decided: Family<DecisionLabels, Counter>,
    pub decision_seconds: Family<OutcomeLabel, Histogram>,
    pub delivery_attempts: Family<AttemptLabels, Counter>,
    pub webhook_attempts: Family<OutcomeLabel, Counter>,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_seconds: Family<RouteLabel, Histogram>,
    /// Pending pauses in the database (all servers').
    pub pending: Gauge,
    /// Long-polls waiting on this server.
    pub long_polls: Gauge,
    /// Rows of work due now and not yet taken, per queue.
    pub backlog: Family<QueueLabel, Gauge>,
    /// How long the oldest of them has been due, in seconds.
    pub backlog_age: Family<QueueLabel, Gauge<f64, AtomicU64>>,
    /// Writes per group the writer committed (its count: the groups).
    pub writer_group_writes: Histogram,
    /// Time the writer spent on groups, from taking one to answering its writes: as a
    /// rate, the share of the time it was busy. Near 1, writes queue for it.
    pub writer_busy_seconds: Counter<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pausepoint");
        let pauses_created = Family::<ChannelLabel, Counter>::default();
        registry.register(
            "pauses_created",
            "Pauses created through this server, by channel",
            pauses_created.clone(),
        );
        let pauses_decided = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "pauses_decided",
            "Pauses decided through this server, by channel and outcome",
            pauses_decided.clone(),
        );
        let decision_seconds = Family::<OutcomeLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1.0, 4.0, 10))) as fn() -> Histogram,
        );
        registry.register(
            "decision_seconds",
            "Time from a pause's creation to its decision",
            decision_seconds.clone(),
        );
        let delivery_attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Attempts to reach a human, by channel and outcome",
            delivery_attempts.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Attempts to send a webhook event, by outcome",
            webhook_attempts.clone(),
        );
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            http_requests.clone(),
        );
        let http_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 17))) as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route (long-polls include their wait)",
            http_seconds.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "pauses_pending",
            "Pauses waiting for a decision",
            pending.clone(),
        );
        let long_polls = Gauge::default();
        registry.register(
            "long_polls_waiting",
            "Long-polls waiting on this server",
            long_polls.clone(),
        );
        let backlog = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "backlog",
            "Rows of work due now and not yet taken, by queue",
            backlog.clone(),
        );
        let backlog_age = Family::<QueueLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "backlog_oldest_seconds",
            "How long the oldest due row has waited, by queue",
            backlog_age.clone(),
        );
        let writer_group_writes = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "writer_group_writes",
            "Writes committed together by this server's writer, per group",
            writer_group_writes.clone(),
        );
        let writer_busy_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "writer_busy_seconds",
            "Time this server's writer spent on groups of writes",
            writer_busy_seconds.clone(),
        );
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build
            .get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
            .set(1);
        registry.register("build_info", "The running version", build);
        Metrics {
            registry,
            pauses_created,
            pauses_decided,
            decision_seconds,
            delivery_attempts,
            webhook_attempts,
            http_requests,
            http_seconds,
            pending,
            long_polls,
            backlog,
            backlog_age,
            writer_group_writes,
            writer_busy_seconds,
        }
    }

    /// Counts a group of `writes` that took the writer `busy`.
    pub fn writer_group(&self, writes: usize, busy: std::time::Duration) {
        self.writer_group_writes.observe(writes as f64);
        self.writer_busy_seconds.inc_by(busy.as_secs_f64());
    }

    /// Sets a queue's backlog: `rows` waiting, the oldest of them since `oldest`.
    pub fn set_backlog(&self, queue: &str, rows: i64, oldest: Option<Timestamp>, now: Timestamp) {
        let queue = QueueLabel {
            queue: queue.to_owned(),
        };
        self.backlog.get_or_create(&queue).set(rows);
        let age = oldest.map_or(0.0, |oldest| seconds_between(oldest, now));
        self.backlog_age.get_or_create(&queue).set(age);
    }

    /// Counts one attempt to reach a human.
    pub fn delivery_attempt(&self, channel: &str, outcome: &SendOutcome) {
        self.delivery_attempts
            .get_or_create(&AttemptLabels {
                channel: channel.to_owned(),
                outcome: outcome_name(outcome).to_owned(),
            })
            .inc();
    }

    /// Counts one attempt to send a webhook event.
    pub fn webhook_attempt(&self, outcome: &SendOutcome) {
        self.webhook_attempts
            .get_or_create(&OutcomeLabel {
                outcome: outcome_name(outcome).to_owned(),
            })
            .inc();
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn outcome_name(outcome: &SendOutcome) -> &'static str {
    match outcome {
        SendOutcome::Delivered { .. } => "delivered",
        SendOutcome::Logged => "logged",
        SendOutcome::RetryLater { .. } => "retry",
        SendOutcome::Refused { .. } => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new();
        metrics
            .pauses_created
            .get_or_create(&ChannelLabel {
                channel: "sms".into(),
            })
            .inc();
        metrics
            .decision_seconds
            .get_or_create(&OutcomeLabel {
                outcome: "responded".into(),
            })
            .observe(42.0);
        let text = metrics.render();
        assert!(
            text.contains("pausepoint_pauses_created_total{channel=\"sms\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "pausepoint_decision_seconds_bucket{le=\"64.0\",outcome=\"responded\"} 1"
            ) || text.contains(
                "pausepoint_decision_seconds_bucket{outcome=\"responded\",le=\"64.0\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("pausepoint_build_info{version="), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}

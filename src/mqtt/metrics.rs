//! The MQTT client's metrics beyond its counters: publish-to-completion latency per QoS,
//! connection uptime and disconnects by reason, recorded as they happen; and the rendering of
//! all of them (counters and queue depths included) as OpenMetrics text.

use crate::core::metrics::{Histogram, TextExposition};
use crate::core::status::Status;
use crate::core::tokens::Completed;
use crate::mqtt::shared::{ConnectionEvent, ConnectionState, Shared, State};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

/// The reason label of a disconnect the application asked for.
const REQUESTED: &str = "requested";

#[derive(Default)]
pub struct Metrics {
    /// Publish accepted → acknowledged (QoS 1/2) or written (QoS 0), successful ones only.
    latency: [Histogram; 3],
    connection: Mutex<ConnectionHistory>,
}

#[derive(Default)]
struct ConnectionHistory {
    connected_since: Option<Instant>,
    /// Status name (or `REQUESTED`) → how many connections ended that way.
    disconnects: BTreeMap<&'static str, u64>,
}

impl Metrics {
    pub fn completed(&self, completed: Completed) {
        if let Some(h) = self.latency.get(usize::from(completed.qos)) {
            h.observe(completed.elapsed);
        }
    }

    /// Follows the connection events as the driver emits them.
    pub fn connection_event(&self, event: &ConnectionEvent) {
        let mut history = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        match event.state {
            ConnectionState::Connected => history.connected_since = Some(Instant::now()),
            ConnectionState::ConnectionLost | ConnectionState::Disconnected => {
                // A Disconnected after a loss (no reconnect) ends no further connection.
                if history.connected_since.take().is_some() {
                    let reason = match &event.reason {
                        Some(error) => Status::from(error).info().name.to_str().unwrap_or("?"),
                        None => REQUESTED,
                    };
                    *history.disconnects.entry(reason).or_default() += 1;
                }
            }
        }
    }
}

/// Everything the client measures, in the OpenMetrics text format (Prometheus reads it).
pub fn render(shared: &Shared) -> String {
    let stats = shared.stats();
    let metrics = &shared.metrics;
    let mut out = TextExposition::default();
    let counters: [(&str, &str, u64); 8] = [
        ("eq1_mqtt_published", "Publishes accepted.", stats.published),
        (
            "eq1_mqtt_delivered",
            "Publishes completed successfully.",
            stats.delivered,
        ),
        ("eq1_mqtt_failed", "Publishes that failed.", stats.failed),
        (
            "eq1_mqtt_dropped",
            "Publishes dropped by a full outbox.",
            stats.dropped,
        ),
        ("eq1_mqtt_received", "Messages received.", stats.received),
        (
            "eq1_mqtt_reconnects",
            "Reconnections after a lost connection.",
            stats.reconnects,
        ),
        (
            "eq1_mqtt_received_bytes",
            "Bytes read from the network.",
            stats.bytes_in,
        ),
        (
            "eq1_mqtt_sent_bytes",
            "Bytes written to the network.",
            stats.bytes_out,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, "counter", help);
        out.sample(&format!("{name}_total"), &[], value as f64);
    }

    let (connected_since, disconnects) = {
        let history = metrics.connection.lock().unwrap_or_else(|p| p.into_inner());
        (history.connected_since, history.disconnects.clone())
    };
    out.family(
        "eq1_mqtt_disconnects",
        "counter",
        "Connections ended, by reason (a status name, or requested).",
    );
    for (reason, count) in &disconnects {
        out.sample(
            "eq1_mqtt_disconnects_total",
            &[("reason", reason)],
            *count as f64,
        );
    }

    let connected = shared.state() == State::Connected;
    let uptime = connected_since
        .filter(|_| connected)
        .map_or(0.0, |since| since.elapsed().as_secs_f64());
    let counters = &shared.counters;
    let gauges: [(&str, &str, f64); 7] = [
        (
            "eq1_mqtt_connected",
            "1 while connected to a broker.",
            f64::from(u8::from(connected)),
        ),
        (
            "eq1_mqtt_connection_uptime_seconds",
            "Age of the current connection (0 when none).",
            uptime,
        ),
        (
            "eq1_mqtt_outbox_messages",
            "Publishes queued and not yet written.",
            counters.queued.load(Ordering::Relaxed) as f64,
        ),
        (
            "eq1_mqtt_outbox_bytes",
            "Topic and payload bytes of the outbox.",
            counters.queued_bytes.load(Ordering::Relaxed) as f64,
        ),
        (
            "eq1_mqtt_inbound_messages",
            "Received messages waiting for their callback.",
            shared.backlog.items() as f64,
        ),
        (
            "eq1_mqtt_inbound_bytes",
            "Bytes of the received messages waiting for their callback.",
            shared.backlog.bytes() as f64,
        ),
        (
            "eq1_mqtt_pending_deliveries",
            "Publishes accepted and not yet completed.",
            shared.tokens.pending() as f64,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, &[], value);
    }

    let name = "eq1_mqtt_publish_latency_seconds";
    out.family(
        name,
        "histogram",
        "Publish accepted to acknowledged (QoS 1/2) or written (QoS 0), successful ones.",
    );
    let snapshots: Vec<_> = metrics.latency.iter().map(Histogram::snapshot).collect();
    for (qos, snapshot) in ["0", "1", "2"].iter().zip(&snapshots) {
        out.histogram(name, &[("qos", qos)], snapshot);
    }
    out.family(
        "eq1_mqtt_publish_latency_estimate_seconds",
        "gauge",
        "From the latency histogram: p50 and p99 (upper bound of their bucket), max (exact).",
    );
    for (qos, snapshot) in ["0", "1", "2"].iter().zip(&snapshots) {
        for (stat, q) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
            if let Some(value) = snapshot.quantile_upper_bound(q) {
                out.sample(
                    "eq1_mqtt_publish_latency_estimate_seconds",
                    &[("qos", qos), ("stat", stat)],
                    value,
                );
            }
        }
    }
    out.finish()
}

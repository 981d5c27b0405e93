//! Prometheus metrics: every metric's name, labels, help text and buckets
//! in one place, the exporter (metrics-exporter-prometheus, serving the text
//! format over HTTP on the configured loopback address), and the small
//! recording functions the rest of the code calls. Labels take only fixed
//! strings, never an address, a user or a folder (bounded cardinality).
//! Must not block or fail a delivery: without an exporter every call is a
//! no-op.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use mailstow_sieve::{OutKind, Plan};

const DELIVERIES: &str = "mailstow_deliveries_total";
const DELIVERY_SECONDS: &str = "mailstow_delivery_duration_seconds";
const DELIVERED_BYTES: &str = "mailstow_delivered_bytes_total";
const SIEVE_ACTIONS: &str = "mailstow_sieve_actions_total";
const SIEVE_ERRORS: &str = "mailstow_sieve_errors_total";
const CONNECTIONS: &str = "mailstow_connections_total";
const CONNECTIONS_OPEN: &str = "mailstow_connections_open";
const FSYNC_SECONDS: &str = "mailstow_fsync_duration_seconds";
const QUEUE_DEPTH: &str = "mailstow_delivery_queue_depth";
const RELOADS: &str = "mailstow_config_reloads_total";
const BUILD_INFO: &str = "mailstow_build_info";
const SIEVE_LOGINS: &str = "mailstow_managesieve_logins_total";
const PROXY_UP: &str = "mailstow_proxy_backend_up";
const PROXY_SECONDS: &str = "mailstow_proxy_duration_seconds";
const PROXY_RECIPIENTS: &str = "mailstow_proxy_recipients_total";

/// Start the exporter on `addr` (inside the runtime) and describe every
/// metric. Call once, before connections are served.
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full(DELIVERY_SECONDS.into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(FSYNC_SECONDS.into()),
            &[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(PROXY_SECONDS.into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ],
        )?
        .install()
        .map_err(|e| anyhow::anyhow!("[metrics] listen = {addr}: {e}"))?;
    mailstow_maildir::observe_fsyncs(|what, took| fsync(what.as_str(), took));
    describe_counter!(
        DELIVERIES,
        "Recipients by outcome (delivered, discarded, rejected at RCPT, bounced, deferred) and reason"
    );
    describe_histogram!(
        DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "From the end of the message data to each recipient's outcome"
    );
    describe_counter!(
        DELIVERED_BYTES,
        metrics::Unit::Bytes,
        "Message bytes stored, once per delivered recipient"
    );
    describe_counter!(SIEVE_ACTIONS, "Actions of Sieve scripts that ran, by kind");
    describe_counter!(
        SIEVE_ERRORS,
        "Sieve scripts that did not compile or failed at run time (the message was kept)"
    );
    describe_counter!(CONNECTIONS, "Connections accepted, by protocol");
    describe_gauge!(CONNECTIONS_OPEN, "Connections open now, by protocol");
    describe_histogram!(
        FSYNC_SECONDS,
        metrics::Unit::Seconds,
        "Time in fsync, for message files and for directories"
    );
    describe_gauge!(QUEUE_DEPTH, "Transactions waiting for a delivery thread");
    describe_counter!(RELOADS, "SIGHUP reloads, by result");
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label");
    describe_counter!(
        SIEVE_LOGINS,
        "ManageSieve logins by result (ok, failed, unavailable)"
    );
    describe_gauge!(
        PROXY_UP,
        "1 when the last connection to a backend node worked, 0 when it failed"
    );
    describe_histogram!(
        PROXY_SECONDS,
        metrics::Unit::Seconds,
        "From the end of the client's data to a backend node's last reply"
    );
    describe_counter!(
        PROXY_RECIPIENTS,
        "Recipients forwarded to a backend node, by stage (rcpt, data) and outcome (ok, temporary, permanent)"
    );
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(())
}

/// One recipient's outcome after its data: `status` delivered, discarded,
/// bounced or deferred, `reason` a failure's label ("" otherwise), with the
/// bytes stored.
pub fn delivery(status: &'static str, reason: &'static str, stored: u64, elapsed: Duration) {
    counter!(DELIVERIES, "outcome" => status, "reason" => reason).increment(1);
    histogram!(DELIVERY_SECONDS).record(elapsed.as_secs_f64());
    if status == "delivered" {
        counter!(DELIVERED_BYTES).increment(stored);
    }
}

/// A recipient refused at RCPT (`reason` a failure's label, or
/// "unknown_user", "relay_denied").
pub fn rcpt_rejected(reason: &'static str) {
    counter!(DELIVERIES, "outcome" => "rejected", "reason" => reason).increment(1);
}

/// The actions of a plan that scripts made, and its scripts' errors
/// (compile or runtime). Nothing for a plan no script ran for.
pub fn sieve_plan(plan: &Plan) {
    if !plan.ran {
        return;
    }
    for e in &plan.errors {
        sieve_error(e.kind.as_str());
    }
    for s in &plan.stores {
        let action = match (s.implicit, s.folder.eq_ignore_ascii_case("INBOX")) {
            (true, _) => "implicit_keep",
            (false, true) => "keep",
            (false, false) => "fileinto",
        };
        counter!(SIEVE_ACTIONS, "action" => action).increment(1);
    }
    if plan.discarded {
        counter!(SIEVE_ACTIONS, "action" => "discard").increment(1);
    }
    if plan.reject.is_some() {
        counter!(SIEVE_ACTIONS, "action" => "reject").increment(1);
    }
    for o in &plan.outgoing {
        let action = match o.kind {
            OutKind::Redirect => "redirect",
            OutKind::Vacation => "vacation",
            OutKind::Notify => "notify",
        };
        counter!(SIEVE_ACTIONS, "action" => action).increment(1);
    }
}

/// A script that failed: "compile" or "runtime".
fn sieve_error(kind: &'static str) {
    counter!(SIEVE_ERRORS, "kind" => kind).increment(1);
}

/// A connection accepted; the open gauge goes down when the guard drops.
pub fn connection(protocol: &'static str) -> ConnectionGuard {
    counter!(CONNECTIONS, "protocol" => protocol).increment(1);
    gauge!(CONNECTIONS_OPEN, "protocol" => protocol).increment(1.0);
    ConnectionGuard(protocol)
}

pub struct ConnectionGuard(&'static str);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        gauge!(CONNECTIONS_OPEN, "protocol" => self.0).decrement(1.0);
    }
}

/// Time spent in one fsync: `what` is "file" or "directory".
pub fn fsync(what: &'static str, elapsed: Duration) {
    histogram!(FSYNC_SECONDS, "what" => what).record(elapsed.as_secs_f64());
}

/// A transaction entered (+1) or left (-1) the delivery queue.
pub fn queue(delta: f64) {
    gauge!(QUEUE_DEPTH).increment(delta);
}

/// A SIGHUP reload: "ok" or "refused".
pub fn reload(result: &'static str) {
    counter!(RELOADS, "result" => result).increment(1);
}

/// A ManageSieve login: "ok", "failed" or "unavailable".
pub fn managesieve_login(result: &'static str) {
    counter!(SIEVE_LOGINS, "result" => result).increment(1);
}

// The proxy's metrics carry a `backend` label (`host:port`): bounded by
// the nodes the user source names, never an address or a user.

/// A backend connection was opened (`up`) or failed.
pub fn proxy_up(backend: &str, up: bool) {
    gauge!(PROXY_UP, "backend" => backend.to_owned()).set(if up { 1.0 } else { 0.0 });
}

/// From the end of the client's data to the backend's last reply.
pub fn proxy_latency(backend: &str, elapsed: Duration) {
    histogram!(PROXY_SECONDS, "backend" => backend.to_owned()).record(elapsed.as_secs_f64());
}

/// One recipient's answer from a backend at `stage` ("rcpt" or "data"):
/// `refused` is the reply when it was not positive.
pub fn proxy_recipient(
    backend: &str,
    stage: &'static str,
    refused: Option<&mailstow_proto::Reply>,
) {
    let outcome = match refused {
        None => "ok",
        Some(r) if r.is_permanent() => "permanent",
        Some(_) => "temporary",
    };
    counter!(PROXY_RECIPIENTS, "backend" => backend.to_owned(), "stage" => stage, "outcome" => outcome)
        .increment(1);
}

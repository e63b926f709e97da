//! What a dict reports: `tracing` events and spans under the target `durabledict::dict`, and,
//! with the `metrics` feature, counters, histograms and a gauge through the `metrics` facade.
//! docs/observability.md has the table of names, fields and labels.
//!
//! The read path reports nothing through `tracing` while the cache answers; without the
//! `metrics` feature every method here that a read calls is empty and inlined away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
#[cfg(feature = "metrics")]
use std::time::SystemTime;

use crate::error::{Error, Op, Report, StoreErrorKind};
use crate::store::StampValue;

/// The `tracing` target of the dict's events.
pub(crate) const TARGET: &str = "durabledict::dict";

/// A reload slower than this is reported at `warn`, unless the builder sets another bound.
pub(crate) const DEFAULT_SLOW_RELOAD: Duration = Duration::from_secs(1);

/// Reports one dict's events, labelled with its keyspace.
pub(crate) struct Observer {
    pub(crate) keyspace: Arc<str>,
    pub(crate) slow_reload: Duration,
    /// Whether the store is failing: errors are reported at `warn` on the way in and the
    /// recovery at `info` on the way out, each once, and at `debug` in between.
    failing: AtomicBool,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

impl Observer {
    pub(crate) fn new(keyspace: Arc<str>, slow_reload: Duration) -> Self {
        Observer {
            #[cfg(feature = "metrics")]
            metrics: Metrics::new(&keyspace),
            keyspace,
            slow_reload,
            failing: AtomicBool::new(false),
        }
    }

    /// Whether the store is failing (the last check or load failed and nothing was
    /// confirmed since): one relaxed load.
    #[inline(always)]
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// A read (any method reading the cache).
    #[inline(always)]
    pub(crate) fn read(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.reads.increment(1);
    }

    /// A stamp check that took `took` (measured only with the `metrics` feature).
    #[inline(always)]
    pub(crate) fn checked(&self, took: Option<Duration>) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.checks.increment(1);
            if let Some(took) = took {
                self.metrics.check_seconds.record(took.as_secs_f64());
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = took;
    }

    /// Whether stamp checks should be timed.
    #[inline(always)]
    pub(crate) fn times_checks(&self) -> bool {
        cfg!(feature = "metrics")
    }

    /// The cache was confirmed current.
    #[inline(always)]
    pub(crate) fn synced(&self) {
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(target: TARGET, keyspace = %self.keyspace, "the store answers again");
        }
        #[cfg(feature = "metrics")]
        self.metrics.last_sync.set(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
    }

    /// A full load finished.
    pub(crate) fn reloaded(&self, took: Duration) {
        #[cfg(feature = "metrics")]
        {
            self.metrics.reloads.increment(1);
            self.metrics.reload_seconds.record(took.as_secs_f64());
        }
        if took > self.slow_reload {
            tracing::warn!(
                target: TARGET,
                keyspace = %self.keyspace,
                took_ms = took.as_millis() as u64,
                slow_reload_ms = self.slow_reload.as_millis() as u64,
                "slow reload"
            );
        }
    }

    /// An own write was applied: in O(1) (`fast`), or by a reload (another writer came
    /// between, or the epoch changed).
    pub(crate) fn own_write(&self, op: Op, key: Option<&str>, fast: bool) {
        let path = if fast { "fast" } else { "reload" };
        tracing::debug!(target: TARGET, keyspace = %self.keyspace, %op, key, path, "own write");
        #[cfg(feature = "metrics")]
        self.metrics.own_write(fast);
    }

    /// An operation failed.
    pub(crate) fn failed(&self, error: &Error, op: Op, kind: Option<StoreErrorKind>) {
        #[cfg(feature = "metrics")]
        metrics::counter!(
            "durabledict_errors_total",
            "keyspace" => self.keyspace.to_string(),
            "op" => op.to_string(),
            "kind" => kind_label(kind),
        )
        .increment(1);
        let kind = kind.map(|k| format!("{k:?}"));
        let error = Report(error);
        if kind.is_some() && !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: TARGET, keyspace = %self.keyspace, %op, kind, %error, "store error");
        } else {
            tracing::debug!(target: TARGET, keyspace = %self.keyspace, %op, kind, %error, "error");
        }
    }

    /// A read was served from a cache confirmed `age` ago, because the store failed.
    pub(crate) fn served_stale(&self, age: Duration) {
        tracing::debug!(
            target: TARGET,
            keyspace = %self.keyspace,
            age_ms = age.as_millis() as u64,
            "served stale"
        );
        #[cfg(feature = "metrics")]
        self.metrics.stale.increment(1);
    }

    /// A stored value did not decode (it poisons only its key).
    pub(crate) fn undecodable(&self, key: &str, error: &dyn std::fmt::Display) {
        tracing::warn!(target: TARGET, keyspace = %self.keyspace, key, %error, "undecodable value");
        #[cfg(feature = "metrics")]
        self.metrics.undecodable.increment(1);
    }

    /// The store's epoch changed: it may have restarted or lost its connection.
    pub(crate) fn continuity_lost(&self, stamp: Option<StampValue>) {
        tracing::info!(
            target: TARGET,
            keyspace = %self.keyspace,
            stamp,
            "the store may have restarted or reconnected: reloading"
        );
    }

    /// A notice arrived on the feed (counted when the dict acts on it).
    #[inline(always)]
    pub(crate) fn notice(&self) {
        #[cfg(feature = "metrics")]
        self.metrics.notices.increment(1);
    }
}

#[cfg(feature = "metrics")]
fn kind_label(kind: Option<StoreErrorKind>) -> &'static str {
    match kind {
        Some(StoreErrorKind::Unavailable) => "unavailable",
        Some(StoreErrorKind::Rejected) => "rejected",
        Some(StoreErrorKind::Corrupt) => "corrupt",
        Some(_) => "other",
        None => "dict",
    }
}

/// The metric handles of one dict, registered once.
#[cfg(feature = "metrics")]
struct Metrics {
    reads: metrics::Counter,
    checks: metrics::Counter,
    check_seconds: metrics::Histogram,
    reloads: metrics::Counter,
    reload_seconds: metrics::Histogram,
    fast_writes: metrics::Counter,
    reload_writes: metrics::Counter,
    stale: metrics::Counter,
    undecodable: metrics::Counter,
    notices: metrics::Counter,
    last_sync: metrics::Gauge,
}

#[cfg(feature = "metrics")]
impl Metrics {
    fn new(keyspace: &str) -> Self {
        let ks = keyspace.to_owned();
        Metrics {
            reads: metrics::counter!("durabledict_reads_total", "keyspace" => ks.clone()),
            checks: metrics::counter!("durabledict_stamp_checks_total", "keyspace" => ks.clone()),
            check_seconds: metrics::histogram!("durabledict_stamp_check_seconds", "keyspace" => ks.clone()),
            reloads: metrics::counter!("durabledict_reloads_total", "keyspace" => ks.clone()),
            reload_seconds: metrics::histogram!("durabledict_reload_seconds", "keyspace" => ks.clone()),
            fast_writes: metrics::counter!("durabledict_own_writes_total", "keyspace" => ks.clone(), "path" => "fast"),
            reload_writes: metrics::counter!("durabledict_own_writes_total", "keyspace" => ks.clone(), "path" => "reload"),
            stale: metrics::counter!("durabledict_stale_reads_total", "keyspace" => ks.clone()),
            undecodable: metrics::counter!("durabledict_undecodable_values_total", "keyspace" => ks.clone()),
            notices: metrics::counter!("durabledict_notices_total", "keyspace" => ks.clone()),
            last_sync: metrics::gauge!("durabledict_last_sync_timestamp_seconds", "keyspace" => ks),
        }
    }

    fn own_write(&self, fast: bool) {
        if fast {
            self.fast_writes.increment(1);
        } else {
            self.reload_writes.increment(1);
        }
    }
}

//! What tests of the stores' side effects observe: the `tracing` events a store emits
//! ([`Capture`]) and the CPU time the test process used ([`process_cpu_time`]).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

/// A `tracing` subscriber that keeps every event as one line: `LEVEL target field=value …`.
/// Installed as the process's global subscriber, since the events of interest come from the
/// stores' own threads; tests of one binary share it, so each counts only its own lines.
#[derive(Clone, Default, Debug)]
pub struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    /// The process's capture, installed as its global subscriber on the first call.
    ///
    /// # Panics
    /// If another global subscriber was installed first.
    pub fn install() -> Capture {
        static CAPTURE: OnceLock<Capture> = OnceLock::new();
        CAPTURE
            .get_or_init(|| {
                let capture = Capture::default();
                if tracing::subscriber::set_global_default(capture.clone()).is_err() {
                    panic!("another tracing subscriber is installed");
                }
                capture
            })
            .clone()
    }

    /// Every event so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The events of `level` (`"WARN"`, …) under `target` whose line contains `text`.
    pub fn count(&self, level: &str, target: &str, text: &str) -> usize {
        self.count_all(level, target, &[text])
    }

    /// The events of `level` under `target` whose line contains each of `texts`.
    pub fn count_all(&self, level: &str, target: &str, texts: &[&str]) -> usize {
        let prefix = format!("{level} {target} ");
        self.lines()
            .iter()
            .filter(|line| line.starts_with(&prefix) && texts.iter().all(|t| line.contains(t)))
            .count()
    }

    /// The events at `info` or above, of any target, whose line contains `text`.
    pub fn loud(&self, text: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| {
                (line.starts_with("INFO ")
                    || line.starts_with("WARN ")
                    || line.starts_with("ERROR "))
                    && line.contains(text)
            })
            .collect()
    }

    /// Every event, a line each (for assertion messages).
    pub fn dump(&self) -> String {
        self.lines().join("\n")
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("{} {} ", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// User + system CPU time this process used so far (`/proc/self/stat`), in 10 ms steps.
///
/// # Panics
/// If `/proc/self/stat` cannot be read (not Linux).
pub fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .unwrap_or_else(|e| panic!("cannot read /proc/self/stat: {e}"));
    // The fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> u64 {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("/proc/self/stat: no CPU time field {i}: {stat}"))
    };
    // utime and stime, in USER_HZ: 100 per second on every architecture Linux runs on.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

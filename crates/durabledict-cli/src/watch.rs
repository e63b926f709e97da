//! `watch`: changes printed as JSON lines. On a store with a change feed (Redis client
//! tracking) through a dict under [`SyncPolicy::Watch`] and its subscription, so a change
//! prints as soon as the store tells of it, whatever the interval; elsewhere the store's stamp
//! is checked every interval and, when it moved, every entry read again.
//!
//! Neither prepares the store (creating a missing table, keyspace or stamp): the polling path
//! reads the store directly, the dict is built on a store that prepares nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durabledict::{DurableDict, Event, FeedHealth, StampValue, Store, SyncPolicy, Value};

use crate::commands::decode;
use crate::failure::{Failure, store_error};
use crate::json_out;
use crate::left_out::LeftOut;
use crate::looking;
use crate::output::print_line;
use crate::values::Values;

/// The key read each interval from a store whose stamp check does not reach the server (see
/// [`Answering`]). Any valid key does; this one says why it is asked for.
const PROBE_KEY: &str = "durabledict-watch-probe";

/// How `watch` knows that the store answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answering {
    /// The stamp check is a request: its success says so (Redis, SQL, memcached).
    StampCheck,
    /// The stamp is kept in process and checking it asks nobody: ZooKeeper's follows a watch,
    /// and it is vouched for through an outage as long as the session may live (the cache a
    /// dict serves meanwhile). One key is read each interval to know whether a server answers.
    Probe,
}

impl Answering {
    /// For the store `url` names.
    pub(crate) fn of(url: &str) -> Answering {
        if durabledict::StoreKind::of_url(url) == Some(durabledict::StoreKind::ZooKeeper) {
            Answering::Probe
        } else {
            Answering::StampCheck
        }
    }
}

/// Every entry's JSON text (comparing texts tells changes apart even for NaN), and the stamp
/// and epoch it was read at, with what was left out.
struct Seen {
    stamp: Option<StampValue>,
    epoch: u64,
    entries: BTreeMap<String, String>,
    undecodable: Vec<(String, String)>,
    unreadable: Vec<(Vec<u8>, String)>,
}

/// Prints a line per change until `count` changes (or for ever): through the store's feed
/// when it has one ([`fed`]), else by checking the stamp every interval ([`polled`]).
pub(crate) fn watch(
    store: Box<dyn Store>,
    values: Values,
    interval: Duration,
    count: Option<u64>,
    answering: Answering,
) -> Result<(), Failure> {
    let store: Arc<dyn Store> = Arc::from(store);
    if store.feed().is_some() {
        let dict = looking::dict(Box::new(Arc::clone(&store)), values, SyncPolicy::Watch)?;
        return fed(&Arc::new(dict), &*store, interval, count, answering);
    }
    polled(&*store, &values, interval, count, answering)
}

/// The feed's path. The dict's own thread keeps it current and announces every change: at
/// once while the feed is up, by polling while it is down (see [`SyncPolicy::Watch`]). Every
/// interval this also checks the feed and, while it is down or the store failing, the stamp,
/// so that an outage and the recovery are told on stderr as on the polling path.
fn fed(
    dict: &Arc<DurableDict<Value>>,
    store: &dyn Store,
    interval: Duration,
    count: Option<u64>,
    answering: Answering,
) -> Result<(), Failure> {
    // Subscribed before the snapshot: nothing applied after it is missed (and what the
    // snapshot already has is not printed twice, see `apply`).
    let events = dict.subscribe();
    let mut seen = texts(dict)?;
    eprintln!(
        "durabledict: watching {} keys, told of changes by the store's feed (checked every \
         {interval:?}, and the stamp too while the feed is down)",
        seen.len()
    );
    let mut left_out = LeftOut::default();
    let status = dict.status();
    left_out.tell("watch", &status.undecodable, &status.unreadable);
    let mut feed = Health::new(status.feed);
    let mut failing: Option<String> = None;
    let mut printed = 0u64;
    let mut behind = false;
    let mut next_check = Instant::now() + interval;
    while count.is_none_or(|n| printed < n) {
        match events.next_timeout(next_check.saturating_duration_since(Instant::now())) {
            Some(Event::Changed(change)) => {
                let new = change.new.as_deref().map(json_out::to_json);
                if let Some(line) = apply(&mut seen, &change.key, new) {
                    print_line(&line)?;
                    printed += 1;
                }
            }
            // Changes were dropped: what the dict holds now tells what they were.
            Some(_lagged) => behind = true,
            None => {}
        }
        if behind {
            match texts(dict) {
                Ok(now) => {
                    for line in changes(&seen, &now) {
                        if count.is_some_and(|n| printed >= n) {
                            break;
                        }
                        print_line(&line)?;
                        printed += 1;
                    }
                    seen = now;
                    behind = false;
                }
                // Told, and tried again after the next event or interval.
                Err(failure) => tell_failure(&mut failing, &failure, interval),
            }
        }
        if Instant::now() < next_check {
            continue;
        }
        next_check = Instant::now() + interval;
        let status = dict.status();
        feed.tell(status.feed, interval);
        let probed = answering == Answering::Probe;
        if status.feed != FeedHealth::Healthy || failing.is_some() || probed {
            // A reload announces its changes to `events`, printed by the next rounds.
            let checked = probe(store, answering).and_then(|()| Ok(dict.sync().map(drop)?));
            match checked {
                Ok(()) => {
                    if failing.take().is_some() {
                        eprintln!("durabledict: watch: the store answers again");
                    }
                }
                Err(failure) => tell_failure(&mut failing, &failure, interval),
            }
        }
        let status = dict.status();
        left_out.tell("watch", &status.undecodable, &status.unreadable);
    }
    Ok(())
}

/// The feed's health as last told.
struct Health {
    last: FeedHealth,
    /// Whether it was ever up: it starts down until the store's subscription is confirmed,
    /// which is no news.
    was_up: bool,
}

impl Health {
    fn new(now: FeedHealth) -> Health {
        Health {
            last: now,
            was_up: now == FeedHealth::Healthy,
        }
    }

    /// Tells on stderr when the feed went down after it was up, and when it is back.
    fn tell(&mut self, now: FeedHealth, interval: Duration) {
        if now == self.last {
            return;
        }
        match now {
            FeedHealth::Healthy if self.was_up => {
                eprintln!("durabledict: watch: the store's change feed is back");
            }
            FeedHealth::Polling if self.was_up => eprintln!(
                "durabledict: watch: the store's change feed is down; checking the stamp \
                 every {interval:?} until it is back"
            ),
            _ => {}
        }
        self.was_up |= now == FeedHealth::Healthy;
        self.last = now;
    }
}

/// The dict's entries as JSON texts.
fn texts(dict: &DurableDict<Value>) -> Result<BTreeMap<String, String>, Failure> {
    let snapshot = dict.snapshot()?;
    Ok(snapshot
        .iter()
        .map(|(key, value)| (key.to_owned(), json_out::to_json(value)))
        .collect())
}

/// Records that `key` now holds `new` (absent: `None`); the line to print when that differs
/// from what was seen.
fn apply(seen: &mut BTreeMap<String, String>, key: &str, new: Option<String>) -> Option<String> {
    let old = match &new {
        Some(text) => seen.insert(key.to_owned(), text.clone()),
        None => seen.remove(key),
    };
    (old != new).then(|| line(key, old.as_deref(), new.as_deref()))
}

/// Tells a failure on stderr, once until it changes.
fn tell_failure(failing: &mut Option<String>, failure: &Failure, interval: Duration) {
    let message = failure.to_string();
    if failing.as_ref() != Some(&message) {
        eprintln!("durabledict: watch: {message}; retrying every {interval:?}");
        *failing = Some(message);
    }
}

/// The polling path: prints `{"key":…,"old":…,"new":…}` (a side where the key is absent left
/// out) for every change seen, until `count` changes (or for ever). A store that does not answer is reported
/// on stderr once (and again only when the error changes) and retried every interval; once it
/// answers again that is reported too and every entry is read again, whatever the stamp says
/// (it may have been restarted, or re-counted to the same number). Any change of the stamp
/// or of the store's epoch causes a reload, a lost stamp (`None`) included, so changes are
/// seen after a memcached or Redis restart and after a reconnection.
fn polled(
    store: &dyn Store,
    values: &Values,
    interval: Duration,
    count: Option<u64>,
    answering: Answering,
) -> Result<(), Failure> {
    let mut seen = load(store, values)?;
    eprintln!(
        "durabledict: watching {} keys, checking every {interval:?}",
        seen.entries.len()
    );
    let mut left_out = LeftOut::default();
    left_out.tell("watch", &seen.undecodable, &seen.unreadable);
    let mut printed = 0u64;
    let mut failing: Option<String> = None;
    while count.is_none_or(|n| printed < n) {
        std::thread::sleep(interval);
        let now = match check(store, values, &seen, answering, failing.is_some()) {
            Ok(now) => now,
            Err(failure) => {
                tell_failure(&mut failing, &failure, interval);
                continue;
            }
        };
        if failing.take().is_some() {
            eprintln!("durabledict: watch: the store answers again");
        }
        let Some(now) = now else { continue };
        left_out.tell("watch", &now.undecodable, &now.unreadable);
        for line in changes(&seen.entries, &now.entries) {
            if count.is_some_and(|n| printed >= n) {
                break;
            }
            print_line(&line)?;
            printed += 1;
        }
        seen = now;
    }
    Ok(())
}

/// The entries again when the stamp or the epoch is no longer what `seen` was read at, or
/// when `reload` says so; `None` when nothing changed.
fn check(
    store: &dyn Store,
    values: &Values,
    seen: &Seen,
    answering: Answering,
    reload: bool,
) -> Result<Option<Seen>, Failure> {
    let stamp = store
        .last_updated()
        .map_err(|e| store_error("stamp check", None, e))?;
    probe(store, answering)?;
    if !reload && stamp == seen.stamp && store.epoch() == seen.epoch {
        return Ok(None);
    }
    load(store, values).map(Some)
}

/// Under [`Answering::Probe`], reads [`PROBE_KEY`] to learn whether the store answers.
fn probe(store: &dyn Store, answering: Answering) -> Result<(), Failure> {
    if answering == Answering::Probe {
        store
            .get(PROBE_KEY)
            .map_err(|e| store_error("check that the store answers", None, e))?;
    }
    Ok(())
}

/// Every entry, a value that does not decode left out as a dict leaves it out (a change to
/// it reads as a removal, as a dict's subscription announces it).
fn load(store: &dyn Store, values: &Values) -> Result<Seen, Failure> {
    // Read before the entries, as a dict does: a continuity lost while they are read shows
    // at the next check.
    let epoch = store.epoch();
    let durables = store.durables().map_err(|e| store_error("load", None, e))?;
    let mut entries = BTreeMap::new();
    let mut undecodable = Vec::new();
    for (key, bytes) in durables.entries {
        match decode(values, &key, &bytes) {
            Ok(value) => {
                entries.insert(key, json_out::to_json(&value));
            }
            Err(error) => {
                let reason = std::error::Error::source(&error)
                    .map_or_else(|| error.to_string(), |e| durabledict::Report(e).to_string());
                undecodable.push((key, reason));
            }
        }
    }
    undecodable.sort_unstable();
    Ok(Seen {
        stamp: durables.stamp,
        epoch,
        entries,
        undecodable,
        unreadable: durables.unreadable,
    })
}

/// One line per key whose value differs, in key order. A side where the key is absent is left
/// out (`{"key":…,"new":…}` for an insert, `{"key":…,"old":…}` for a deletion), so that an
/// absent key is never confused with a stored None (`null`).
fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (old, new) = (before.get(key), after.get(key));
            (old != new).then(|| line(key, old.map(String::as_str), new.map(String::as_str)))
        })
        .collect()
}

/// `{"key":…,"old":…,"new":…}`, a side where the key is absent left out.
fn line(key: &str, old: Option<&str>, new: Option<&str>) -> String {
    let mut line = format!("{{\"key\":{}", json_out::string(key));
    for (field, side) in [("old", old), ("new", new)] {
        if let Some(value) = side {
            line.push_str(&format!(",\"{field}\":{value}"));
        }
    }
    line.push('}');
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_zookeeper_is_probed() {
        for url in ["zk://a:1/x", "ZK://a:1", "zookeeper://a:1,b:2/p"] {
            assert_eq!(Answering::of(url), Answering::Probe, "{url}");
        }
        for url in ["redis://a/", "sqlite:zk.db", "postgres://u@h/zk", "zkx://a"] {
            assert_eq!(Answering::of(url), Answering::StampCheck, "{url}");
        }
    }

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn changes_are_added_changed_and_removed_keys() {
        let before = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let after = map(&[("a", "1"), ("b", "20"), ("d", "\"x\"")]);
        assert_eq!(
            changes(&before, &after),
            [
                r#"{"key":"b","old":2,"new":20}"#,
                r#"{"key":"c","old":3}"#,
                r#"{"key":"d","new":"x"}"#,
            ]
        );
        assert!(changes(&after, &after).is_empty());
    }

    #[test]
    fn a_stored_none_is_not_an_absent_key() {
        let none = map(&[("n", "null")]);
        let empty = map(&[]);
        assert_eq!(changes(&empty, &none), [r#"{"key":"n","new":null}"#]);
        assert_eq!(changes(&none, &empty), [r#"{"key":"n","old":null}"#]);
        assert_eq!(
            changes(&none, &map(&[("n", "0")])),
            [r#"{"key":"n","old":null,"new":0}"#]
        );
    }
}

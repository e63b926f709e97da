//! `watch`: the store's stamp checked every interval; when it moved, every entry read again
//! and the changes printed as JSON lines.
//!
//! It reads the store directly rather than through a dict, which would prepare the store
//! (creating a missing table, keyspace or stamp) when built.

use std::collections::BTreeMap;
use std::time::Duration;

use durabledict::{StampValue, Store, ValueEncoding};

use crate::commands::decode;
use crate::failure::{Failure, store_error};
use crate::json_out;
use crate::output::print_line;

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
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        if ["zk", "zookeeper"]
            .iter()
            .any(|zk| scheme.eq_ignore_ascii_case(zk))
        {
            Answering::Probe
        } else {
            Answering::StampCheck
        }
    }
}

/// Every entry's JSON text (comparing texts tells changes apart even for NaN), and the stamp
/// and epoch it was read at.
struct Seen {
    stamp: Option<StampValue>,
    epoch: u64,
    entries: BTreeMap<String, String>,
}

/// Prints `{"key":…,"old":…,"new":…}` (a side where the key is absent left out) for every
/// change seen, until `count` changes (or for ever). A store that does not answer is reported
/// on stderr once (and again only when the error changes) and retried every interval; once it
/// answers again that is reported too and every entry is read again, whatever the stamp says
/// (it may have been restarted, or re-counted to the same number). Any change of the stamp
/// or of the store's epoch causes a reload, a lost stamp (`None`) included, so changes are
/// seen after a memcached or Redis restart and after a reconnection.
pub(crate) fn watch(
    store: &dyn Store,
    encoding: ValueEncoding,
    interval: Duration,
    count: Option<u64>,
    answering: Answering,
) -> Result<(), Failure> {
    let mut seen = load(store, encoding)?;
    eprintln!(
        "durabledict: watching {} keys, checking every {interval:?}",
        seen.entries.len()
    );
    let mut printed = 0u64;
    let mut failing: Option<String> = None;
    while count.is_none_or(|n| printed < n) {
        std::thread::sleep(interval);
        let now = match check(store, encoding, &seen, answering, failing.is_some()) {
            Ok(now) => now,
            Err(failure) => {
                let message = failure.to_string();
                if failing.as_ref() != Some(&message) {
                    eprintln!("durabledict: watch: {message}; retrying every {interval:?}");
                    failing = Some(message);
                }
                continue;
            }
        };
        if failing.take().is_some() {
            eprintln!("durabledict: watch: the store answers again");
        }
        let Some(now) = now else { continue };
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
    encoding: ValueEncoding,
    seen: &Seen,
    answering: Answering,
    reload: bool,
) -> Result<Option<Seen>, Failure> {
    let stamp = store
        .last_updated()
        .map_err(|e| store_error("stamp check", None, e))?;
    if answering == Answering::Probe {
        store
            .get(PROBE_KEY)
            .map_err(|e| store_error("check that the store answers", None, e))?;
    }
    if !reload && stamp == seen.stamp && store.epoch() == seen.epoch {
        return Ok(None);
    }
    load(store, encoding).map(Some)
}

fn load(store: &dyn Store, encoding: ValueEncoding) -> Result<Seen, Failure> {
    // Read before the entries, as a dict does: a continuity lost while they are read shows
    // at the next check.
    let epoch = store.epoch();
    let durables = store.durables().map_err(|e| store_error("load", None, e))?;
    let entries = durables
        .entries
        .iter()
        .map(|(key, bytes)| {
            let value = decode(encoding, key, bytes)?;
            Ok((key.clone(), json_out::to_json(&value)))
        })
        .collect::<Result<_, Failure>>()?;
    Ok(Seen {
        stamp: durables.stamp,
        epoch,
        entries,
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
            (old != new).then(|| {
                let mut line = format!("{{\"key\":{}", json_out::string(key));
                for (field, side) in [("old", old), ("new", new)] {
                    if let Some(value) = side {
                        line.push_str(&format!(",\"{field}\":{value}"));
                    }
                }
                line.push('}');
                line
            })
        })
        .collect()
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

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

/// Every entry's JSON text (comparing texts tells changes apart even for NaN), and the stamp
/// it was read at.
struct Seen {
    stamp: Option<StampValue>,
    entries: BTreeMap<String, String>,
}

/// Prints `{"key":…,"old":…,"new":…}` (a side where the key is absent left out) for every
/// change seen, until `count` changes (or for ever). A store error is reported on stderr once
/// (and again only when it changes) and retried every interval. Any change of the stamp
/// causes a reload, a lost stamp (`None`) included, so changes are seen after a memcached or
/// Redis restart and after a reconnection.
pub(crate) fn watch(
    store: &dyn Store,
    encoding: ValueEncoding,
    interval: Duration,
    count: Option<u64>,
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
        let now = match check(store, encoding, seen.stamp) {
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

/// The entries again when the stamp is no longer `stamp`; `None` when it still is.
fn check(
    store: &dyn Store,
    encoding: ValueEncoding,
    stamp: Option<StampValue>,
) -> Result<Option<Seen>, Failure> {
    let now = store
        .last_updated()
        .map_err(|e| store_error("stamp check", None, e))?;
    if now == stamp {
        return Ok(None);
    }
    load(store, encoding).map(Some)
}

fn load(store: &dyn Store, encoding: ValueEncoding) -> Result<Seen, Failure> {
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

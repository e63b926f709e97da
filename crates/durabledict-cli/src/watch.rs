//! `watch`: one live dict, synced every interval, its changes printed as JSON lines.

use std::collections::BTreeMap;
use std::time::Duration;

use durabledict::{DurableDict, PickleValue};

use crate::failure::Failure;
use crate::json_out;
use crate::output::print_line;

/// Prints `{"key":…,"old":…,"new":…}` (a side where the key is absent left out) for every
/// change seen, until `count` changes (or for
/// ever). A store error is reported on stderr once (and again only when it changes) and
/// retried every interval; the dict's own sync recovers from a lost stamp and a reconnect.
pub(crate) fn watch(
    dict: &DurableDict<PickleValue>,
    interval: Duration,
    count: Option<u64>,
) -> Result<(), Failure> {
    let mut seen = rendered(dict)?;
    eprintln!(
        "durabledict: watching {} keys, checking every {interval:?}",
        seen.len()
    );
    let mut printed = 0u64;
    let mut failing: Option<String> = None;
    while count.is_none_or(|n| printed < n) {
        std::thread::sleep(interval);
        let now = match dict.sync().and_then(|_| rendered(dict)) {
            Ok(now) => now,
            Err(error) => {
                let message = error.to_string();
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
        for line in changes(&seen, &now) {
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

/// Every entry's JSON text: comparing texts tells changes apart even for NaN.
fn rendered(
    dict: &DurableDict<PickleValue>,
) -> Result<BTreeMap<String, String>, durabledict::Error> {
    Ok(dict
        .snapshot()?
        .iter()
        .map(|(key, value)| (key.to_owned(), json_out::to_json(value)))
        .collect())
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

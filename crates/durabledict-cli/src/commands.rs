//! The commands. `get`, `set`, `del`, `import` and `stamp` touch only the keys they name, so a
//! value elsewhere that cannot be decoded never stops an operator from fixing things; `list`
//! and `watch` load the whole dict.

use std::io::Read;
use std::path::Path;

use durabledict::{Encoding, OpenOptions, PickleValue, Store, SyncPolicy, ValueEncoding};

use crate::cli::{Cli, Command};
use crate::failure::{Failure, store_error};
use crate::json_in::{self, JsonError};
use crate::json_out;
use crate::output::print_line;
use crate::watch;

pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    let mut options = OpenOptions::new()
        .keyspace(cli.keyspace.as_str())
        .encoding(cli.encoding);
    if let Some(stamp) = &cli.stamp {
        options = options.stamp(stamp.as_str());
    }
    if let Some(key) = &cli.stamp_key {
        options = options.stamp_key(key.as_str());
    }
    let url = cli.store.as_str();
    match cli.command {
        Command::Get { key } => get(&open_store(url, &options)?, cli.encoding, &key),
        Command::Set { key, value, string } => {
            let value = if string {
                PickleValue::String(value)
            } else {
                json_in::from_json(&value).map_err(|e| match e {
                    JsonError::Syntax(msg) => Failure::Usage(format!(
                        "VALUE is not valid JSON ({msg}); to store it as a plain string, use --str"
                    )),
                    JsonError::Form(msg) => Failure::Usage(format!("VALUE: {msg}")),
                })?
            };
            write(
                &open_store(url, &options)?,
                cli.encoding,
                vec![(key, value)],
            )
        }
        Command::Del { key } => {
            let store = open_store(url, &options)?;
            match store.depersist(&key) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(Failure::NotFound(key)),
                Err(e) => Err(store_error("delete", Some(&key), e)),
            }
        }
        Command::List => list(url, &options),
        Command::Import { file } => {
            let entries = read_import(&file)?;
            write(&open_store(url, &options)?, cli.encoding, entries)
        }
        Command::Watch { interval, count } => {
            let dict = durabledict::open(url, &options.policy(SyncPolicy::Manual))?;
            watch::watch(&dict, interval, count)
        }
        Command::Stamp => {
            let store = open_store(url, &options)?;
            let stamp = store
                .last_updated()
                .map_err(|e| store_error("stamp check", None, e))?;
            print_line(&stamp.map_or_else(|| "null".to_owned(), |s| s.to_string()))
        }
    }
}

/// The store, prepared (table, keyspace and stamp created when missing; nothing bumped).
fn open_store(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, Failure> {
    let store = durabledict::open_store(url, options)?;
    store.init().map_err(|e| store_error("init", None, e))?;
    Ok(store)
}

fn get(store: &dyn Store, encoding: ValueEncoding, key: &str) -> Result<(), Failure> {
    let bytes = store
        .get(key)
        .map_err(|e| store_error("get", Some(key), e))?
        .ok_or_else(|| Failure::NotFound(key.to_owned()))?;
    let value = encoding.decode(&bytes).map_err(|e| {
        Failure::Store(format!(
            "cannot decode the stored value of key {key:?} as {encoding}: {e}"
        ))
    })?;
    print_line(&json_out::to_json(&value))
}

fn list(url: &str, options: &OpenOptions) -> Result<(), Failure> {
    let dict = durabledict::open(url, options)?;
    let snapshot = dict.snapshot()?;
    let mut entries: Vec<(&str, &PickleValue)> =
        snapshot.iter().map(|(k, v)| (k, v.as_ref())).collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    print_line(&json_out::object(entries))
}

/// Writes the entries as one batch, after checking every key and encoding every value, as a
/// dict does: nothing is written unless everything can be.
fn write(
    store: &dyn Store,
    encoding: ValueEncoding,
    entries: Vec<(String, PickleValue)>,
) -> Result<(), Failure> {
    let mut encoded = Vec::with_capacity(entries.len());
    for (key, value) in &entries {
        store
            .validate_key(key)
            .map_err(|reason| Failure::Usage(format!("invalid key {key:?}: {reason}")))?;
        let bytes = encoding.encode(value).map_err(|e| {
            Failure::Store(format!(
                "cannot encode the value for key {key:?} as {encoding}: {e}"
            ))
        })?;
        if let Some(max) = store.max_value_len()
            && bytes.len() > max
        {
            return Err(Failure::Store(format!(
                "value for key {key:?} is {} bytes encoded, over the store's limit of {max}",
                bytes.len()
            )));
        }
        encoded.push((key.as_str(), bytes));
    }
    let batch: Vec<(&str, &[u8])> = encoded.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    let key = (batch.len() == 1).then(|| batch[0].0);
    store
        .persist_many(&batch)
        .map_err(|e| store_error("write", key, e))?;
    Ok(())
}

fn read_import(file: &Path) -> Result<Vec<(String, PickleValue)>, Failure> {
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    let name = file.display();
    read.map_err(|e| Failure::Usage(format!("cannot read {name}: {e}")))?;
    json_in::object_from_json(&text)
        .map_err(|e| Failure::Usage(format!("{name} is not a JSON object of entries: {e}")))
}

//! The commands. Only `set` and `import` write, so only they prepare the store (create the
//! SQLite file, the table, the keyspace, the stamp when missing). The others use the store as
//! it is: looking creates nothing, so a mistyped SQLite path is an error instead of a new
//! empty database, and `stamp` shows a lost stamp as `null` instead of re-seeding it.
//!
//! Every command but `list` and `watch` touches only the keys it names, so a value elsewhere
//! that cannot be decoded never stops an operator from fixing things.

use std::io::Read;
use std::path::Path;

use durabledict::{Encoding, OpenOptions, PickleValue, Store, ValueEncoding};

use crate::cli::{Cli, Command};
use crate::failure::{Failure, store_error};
use crate::json_in::{self, JsonError};
use crate::json_out;
use crate::output::print_line;
use crate::watch;

pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    let mut options = OpenOptions::new().keyspace(cli.keyspace.as_str());
    if let Some(stamp) = &cli.stamp {
        options = options.stamp(stamp.as_str());
    }
    if let Some(key) = &cli.stamp_key {
        options = options.stamp_key(key.as_str());
    }
    let url = cli.store.as_str();
    let encoding = cli.encoding;
    match cli.command {
        Command::Get { key } => get(&*reader(url, &options)?, encoding, &key),
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
            write(&*writer(url, &options)?, encoding, vec![(key, value)])
        }
        Command::Del { key } => {
            // Looked for first, so that deleting a missing key creates nothing; a deletion
            // is a write, and a write may need what only a prepared store has (the stamps
            // table, on tables a Python program made).
            let present = reader(url, &options)?
                .get(&key)
                .map_err(|e| store_error("delete", Some(&key), e))?;
            if present.is_none() {
                return Err(Failure::NotFound(key));
            }
            match writer(url, &options)?.depersist(&key) {
                Ok(Some(_)) => Ok(()),
                Ok(None) => Err(Failure::NotFound(key)),
                Err(e) => Err(store_error("delete", Some(&key), e)),
            }
        }
        Command::List => list(&*reader(url, &options)?, encoding),
        Command::Import { file } => {
            let entries = read_import(&file)?;
            write(&*writer(url, &options)?, encoding, entries)
        }
        Command::Watch { interval, count } => {
            let answering = watch::Answering::of(url);
            watch::watch(
                &*reader(url, &options)?,
                encoding,
                interval,
                count,
                answering,
            )
        }
        Command::Stamp => {
            let stamp = reader(url, &options)?
                .last_updated()
                .map_err(|e| store_error("stamp check", None, e))?;
            print_line(&stamp.map_or_else(|| "null".to_owned(), |s| s.to_string()))
        }
    }
}

/// The store for a command that writes, prepared: the SQLite file, table, keyspace and stamp
/// are created when missing (nothing is bumped).
fn writer(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, Failure> {
    let store = durabledict::open_store(url, options)?;
    store.init().map_err(|e| store_error("init", None, e))?;
    Ok(store)
}

/// The store as it is, for a command that reads: nothing is prepared, so nothing is created.
fn reader(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, Failure> {
    Ok(durabledict::open_store(
        url,
        &options.clone().create_missing(false),
    )?)
}

/// The stored value of `key`, decoded.
pub(crate) fn decode(
    encoding: ValueEncoding,
    key: &str,
    bytes: &[u8],
) -> Result<PickleValue, Failure> {
    encoding.decode(bytes).map_err(|e| {
        Failure::Store(format!(
            "cannot decode the stored value of key {key:?} as {encoding}: {e}"
        ))
    })
}

fn get(store: &dyn Store, encoding: ValueEncoding, key: &str) -> Result<(), Failure> {
    let bytes = store
        .get(key)
        .map_err(|e| store_error("get", Some(key), e))?
        .ok_or_else(|| Failure::NotFound(key.to_owned()))?;
    print_line(&json_out::to_json(&decode(encoding, key, &bytes)?))
}

fn list(store: &dyn Store, encoding: ValueEncoding) -> Result<(), Failure> {
    let durables = store.durables().map_err(|e| store_error("list", None, e))?;
    let mut entries = durables
        .entries
        .iter()
        .map(|(key, bytes)| Ok((key.as_str(), decode(encoding, key, bytes)?)))
        .collect::<Result<Vec<_>, Failure>>()?;
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    print_line(&json_out::object(entries.iter().map(|(k, v)| (*k, v))))
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

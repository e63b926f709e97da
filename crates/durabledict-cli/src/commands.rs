//! The commands. Only `set` and `import` write, so only they prepare the store (create the
//! SQLite file, the table, the keyspace, the stamp when missing). The others use the store as
//! it is: looking creates nothing, so a mistyped SQLite path is an error instead of a new
//! empty database, and `stamp` shows a lost stamp as `null` instead of re-seeding it.
//!
//! Every command but `list` and `watch` touches only the keys it names, so a value elsewhere
//! that cannot be decoded never stops an operator from fixing things; `list` and `watch` leave
//! out (and tell on stderr) what they cannot read, and `list` then exits 3.

use std::io::Read;
use std::path::Path;

use durabledict::{Encoding, Error, Op, OpenOptions, Store, SyncPolicy, Value};

use crate::cli::{Cli, Command};
use crate::failure::{Failure, store_error};
use crate::json_in::{self, JsonError};
use crate::json_out;
use crate::left_out::LeftOut;
use crate::looking;
use crate::name::{self, Name};
use crate::output::print_line;
use crate::values::Values;
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
    let values = Values::new(cli.encoding, cli.python2_str, cli.pickle_protocol)?;
    match cli.command {
        Command::Get { name } => match Name::of(name)? {
            Name::Key(key) => get(&*reader(url, &options)?, &values, &key),
            Name::Raw(raw) => name::get_raw(url, &options, &values, &raw),
        },
        Command::Set { key, value, string } => {
            let value = if string {
                Value::String(value)
            } else {
                json_in::from_json(&value).map_err(|e| match e {
                    JsonError::Syntax(msg) => Failure::Usage(format!(
                        "VALUE is not valid JSON ({msg}); to store it as a plain string, use --str"
                    )),
                    JsonError::Form(msg) => Failure::Usage(format!("VALUE: {msg}")),
                })?
            };
            write(&*writer(url, &options)?, &values, vec![(key, value)])
        }
        Command::Del { name } => match Name::of(name)? {
            Name::Key(key) => del(url, &options, &key),
            Name::Raw(raw) => name::del_raw(url, &options, &raw),
        },
        Command::List => list(reader(url, &options)?, values),
        Command::Import { file } => {
            let entries = read_import(&file)?;
            write(&*writer(url, &options)?, &values, entries)
        }
        Command::Watch { interval, count } => {
            let answering = watch::Answering::of(url);
            watch::watch(reader(url, &options)?, values, interval, count, answering)
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
pub(crate) fn writer(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, Failure> {
    let store = durabledict::open_store(url, options)?;
    store.init().map_err(|e| store_error("init", None, e))?;
    Ok(store)
}

/// The store as it is, for a command that reads: nothing is prepared, so nothing is created.
pub(crate) fn reader(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, Failure> {
    Ok(durabledict::open_store(
        url,
        &options.clone().create_missing(false),
    )?)
}

/// Deletes `key`. Looked for first, so that deleting a missing key creates nothing; a deletion
/// is a write, and a write may need what only a prepared store has (the stamps table, on
/// tables a Python program made).
fn del(url: &str, options: &OpenOptions, key: &str) -> Result<(), Failure> {
    let removal = |source| Error::Store {
        op: Op::Remove,
        key: Some(key.to_owned()),
        source,
    };
    let present = reader(url, options)?.get(key).map_err(removal)?;
    if present.is_none() {
        return Err(Failure::NotFound(key.to_owned()));
    }
    match writer(url, options)?.depersist(key).map_err(removal)? {
        Some(_) => Ok(()),
        None => Err(Failure::NotFound(key.to_owned())),
    }
}

/// The stored value of `key`, decoded; [`Error::Decode`] naming the key when it does not.
pub(crate) fn decode(values: &Values, key: &str, bytes: &[u8]) -> Result<Value, Error> {
    values.decode(bytes).map_err(|source| Error::Decode {
        key: key.to_owned(),
        source,
    })
}

fn get(store: &dyn Store, values: &Values, key: &str) -> Result<(), Failure> {
    let bytes = store
        .get(key)
        .map_err(|e| store_error("get", Some(key), e))?
        .ok_or_else(|| Failure::NotFound(key.to_owned()))?;
    // Each form is dropped once the next is made: a large value is held at most twice.
    let value = decode(values, key, &bytes)?;
    drop(bytes);
    let json = json_out::to_json(&value);
    drop(value);
    print_line(&json)
}

/// Prints every entry that can be read, through a dict (one load, as `-v` shows), and tells
/// on stderr which it left out: a value that does not decode, a name that is not a key. Left
/// out entries make it exit 3 after printing the rest, so a script never takes a partial
/// listing for the whole dict (and an operator still sees everything readable).
fn list(store: Box<dyn Store>, values: Values) -> Result<(), Failure> {
    let dict = looking::dict(store, values, SyncPolicy::Manual)?;
    let snapshot = dict.snapshot()?;
    let mut entries: Vec<(&str, &Value)> = snapshot
        .iter()
        .map(|(key, value)| (key, &**value))
        .collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    print_line(&json_out::object(entries))?;
    let status = dict.status();
    LeftOut::default().tell("list", &status.undecodable, &status.unreadable);
    match status.undecodable.len() + status.unreadable.len() {
        0 => Ok(()),
        n => Err(Failure::Store(format!(
            "list: left out {n} {} that cannot be read (named above); every other entry is \
             printed",
            if n == 1 { "entry" } else { "entries" }
        ))),
    }
}

/// Writes the entries as one batch, after checking every key and encoding every value, as a
/// dict does (and with its errors): nothing is written unless everything can be. (Not through
/// a dict, whose building loads every entry: on ZooKeeper that is a request per key.)
fn write(store: &dyn Store, values: &Values, entries: Vec<(String, Value)>) -> Result<(), Failure> {
    let mut encoded = Vec::with_capacity(entries.len());
    for (key, value) in &entries {
        encoded.push((key.as_str(), encode(store, values, key, value)?));
    }
    let batch: Vec<(&str, &[u8])> = encoded.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    let (op, key) = match batch.as_slice() {
        [(key, _)] => (Op::Insert, Some((*key).to_owned())),
        _ => (Op::Update, None),
    };
    store
        .persist_many(&batch)
        .map_err(|source| Error::Store { op, key, source })?;
    Ok(())
}

/// `value` encoded for `key`, refused as a dict refuses it: a key the store cannot hold, a
/// value the encoding cannot write, or one over the store's size limit.
fn encode(store: &dyn Store, values: &Values, key: &str, value: &Value) -> Result<Vec<u8>, Error> {
    store
        .validate_key(key)
        .map_err(|reason| Error::InvalidKey {
            key: key.to_owned(),
            reason,
        })?;
    let bytes = values.encode(value).map_err(|source| Error::Encode {
        key: key.to_owned(),
        source,
    })?;
    match store.max_value_len() {
        Some(max) if bytes.len() > max => Err(Error::ValueTooLarge {
            key: key.to_owned(),
            len: bytes.len(),
            max,
        }),
        _ => Ok(bytes),
    }
}

fn read_import(file: &Path) -> Result<Vec<(String, Value)>, Failure> {
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

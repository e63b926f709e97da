//! The command line: options, commands, and the help that documents the JSON forms.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use durabledict::{Protocol, Python2Str, ValueEncoding};

/// What `--help` says after the commands: the JSON forms and the exit codes.
const AFTER_HELP: &str = "\
Values are printed as JSON, one per line. Python values map to JSON as follows: None is
null; tuples, lists, sets and frozensets are arrays; dicts with string keys are objects;
integers of any size are numbers (all their digits). What JSON has no form for is printed
as a one-key object, read back the same way by `set` and `import`:
  bytes                     {\"$bytes\": \"<standard base64>\"}
  NaN, inf, -inf            {\"$float\": \"nan\"}, {\"$float\": \"inf\"}, {\"$float\": \"-inf\"}
  dict with non-string keys {\"$dict\": [[key, value], ...]}  (array keys are tuples)
A dict whose only key is \"$bytes\", \"$dict\" or \"$float\" is printed as a $dict too.

`watch` prints one line per change: {\"key\": ..., \"old\": ..., \"new\": ...}. A side where
the key is absent is left out, so a new key prints {\"key\": ..., \"new\": ...} and a deleted
one {\"key\": ..., \"old\": ...}; \"old\": null or \"new\": null is a stored None.

Options also come from the environment variables shown; an option given on the command
line wins. An empty variable counts as unset (DURABLEDICT_STAMP= means no stamp).

Only set and import create what is missing (the SQLite file, the table, the stamp); get,
del, list, stamp and watch create nothing: a missing SQLite file or table is exit code 3,
and a lost stamp prints as null.

`list` and `watch` leave out a value that does not decode and an entry whose name is not a
key (a Redis field that is not UTF-8), and say so on stderr: `list` still exits 0. Such a
name is given to get and del in base64: `durabledict del --key-base64 /w==`.

Python 2 data: --python2-str bytes reads a Python 2 str of any bytes as {\"$bytes\": ...};
with --pickle-protocol 2, {\"$bytes\": ...} is written as a Python 2 str (Python 3 reads bytes).

-v, -vv, -vvv print the library's events (info, debug, trace) on stderr; DURABLEDICT_LOG
takes a RUST_LOG-style filter instead (durabledict=debug,durabledict::redis=trace).

Exit codes: 0 success; 1 key not found (get, del); 2 usage error (bad option or URL,
VALUE not JSON); 3 store or encoding error.";

/// The long help: [`AFTER_HELP`] and the store URLs, from the library's scheme table.
fn after_long_help() -> String {
    let mut forms: Vec<&str> = Vec::new();
    for scheme in durabledict::SCHEMES {
        if !forms.contains(&scheme.form) {
            forms.push(scheme.form);
        }
    }
    format!(
        "{AFTER_HELP}\n\nStore URLs:\n  {}\n\
         Each backend's query options (pool_size=1, io_timeout=500ms, session_timeout=4s, ...;\n\
         an unknown one is refused) are listed in docs/urls.md\n\
         (https://github.com/durabledict/durabledict-rs/blob/main/docs/urls.md). The keyspace is\n\
         the Redis hash, the SQL table, and the ZooKeeper path when the URL has none (/KEYSPACE).",
        forms.join("\n  ")
    )
}

/// Reads and writes a durabledict store: the values Python durabledict and the Rust
/// durabledict crate keep in SQLite, PostgreSQL, MySQL, Redis or ZooKeeper.
#[derive(Debug, Parser)]
#[command(
    name = "durabledict",
    version,
    after_help = "See --help for the store URLs, how values map to JSON, and the exit codes.",
    after_long_help = after_long_help()
)]
pub(crate) struct Cli {
    /// Where the dict lives (see the store URLs below).
    #[arg(
        long,
        env = "DURABLEDICT_STORE",
        default_value = "sqlite:durabledict.db",
        value_name = "URL"
    )]
    pub(crate) store: String,

    /// The keyspace: Redis hash, SQL table, or ZooKeeper path when the URL names none.
    #[arg(
        long,
        env = "DURABLEDICT_KEYSPACE",
        default_value = durabledict::DEFAULT_KEYSPACE,
        value_name = "NAME"
    )]
    pub(crate) keyspace: String,

    /// How values are stored: pickle (Python durabledict's default), json, or raw bytes.
    #[arg(long, env = "DURABLEDICT_ENCODING", default_value = "pickle", value_name = "ENCODING",
          value_parser = parse_encoding)]
    pub(crate) encoding: ValueEncoding,

    /// Keep the stamp in memcached instead of the store (SQL stores only).
    #[arg(long, env = "DURABLEDICT_STAMP", value_name = "memcache://HOST:PORT")]
    pub(crate) stamp: Option<String>,

    /// The memcached key of the stamp [default: durabledict:KEYSPACE:last_updated].
    #[arg(
        long,
        env = "DURABLEDICT_STAMP_KEY",
        value_name = "KEY",
        requires = "stamp"
    )]
    pub(crate) stamp_key: Option<String>,

    /// How a Python 2 `str` in a stored pickle reads: text (UTF-8, as Python 3 reads it),
    /// bytes (any bytes, printed as {"$bytes": ...}), or latin1 (each byte one character).
    #[arg(long, env = "DURABLEDICT_PYTHON2_STR", default_value = "text", value_name = "HOW",
          value_parser = parse_python2_str)]
    pub(crate) python2_str: Python2Str,

    /// The pickle protocol written: 3 (every Python 3 reads it), or 2, which Python 2 reads
    /// too and where a value given as {"$bytes": ...} is a Python 2 `str` of those bytes.
    #[arg(long, env = "DURABLEDICT_PICKLE_PROTOCOL", default_value = "3", value_name = "2|3",
          value_parser = parse_protocol)]
    pub(crate) pickle_protocol: Protocol,

    /// Print the library's events on stderr: -v info, -vv debug, -vvv trace (filters as
    /// RUST_LOG in DURABLEDICT_LOG, which -v overrides).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the value of KEY as JSON.
    Get {
        #[command(flatten)]
        name: Name,
    },
    /// Set KEY to VALUE, a JSON value (or a plain string with --str).
    Set {
        /// The key.
        key: String,
        /// The value, as JSON: '"text"', 42, '[1, 2]', '{"a": null}'.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Store VALUE as a plain string, without reading it as JSON.
        #[arg(long = "str")]
        string: bool,
    },
    /// Delete KEY.
    Del {
        #[command(flatten)]
        name: Name,
    },
    /// Print the whole dict as one JSON object, keys sorted. What cannot be read (a value
    /// that does not decode, a name that is not a key) is left out and told on stderr, and
    /// the exit code is then 3 (after every other entry is printed).
    List,
    /// Write every entry of a JSON object, as one batch.
    Import {
        /// A file holding a JSON object, or - for standard input.
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
    },
    /// Print one JSON line per change made by anyone: {"key": ..., "old": ..., "new": ...},
    /// without "old" for a new key and without "new" for a deleted one. Store errors are
    /// reported on stderr and retried.
    Watch {
        /// How often to check for changes: 500ms, 2s, 1m, or seconds; at least 10ms.
        #[arg(long, default_value = "1s", value_parser = parse_interval)]
        interval: Duration,
        /// Exit after this many changes.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print the store's last_updated stamp: an integer, or null.
    Stamp,
}

/// The entry `get` and `del` address: a key, or a raw name in base64.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Name {
    /// The key.
    pub(crate) key: Option<String>,
    /// The name in standard base64 instead of KEY: for a name that is not UTF-8 (a Redis
    /// field a Python program wrote with d[b'\xff'] = ...), as `list` reports it.
    #[arg(long, value_name = "B64")]
    pub(crate) key_base64: Option<String>,
}

impl Cli {
    /// Parses the command line and the environment. An empty `DURABLEDICT_*` variable counts
    /// as unset (clap would take it as the value `""`): an operator clears a variable with
    /// `DURABLEDICT_STAMP=` as often as with `unset`.
    pub(crate) fn from_env() -> Cli {
        let mut command = Cli::command();
        let empty: Vec<clap::Id> = command
            .get_arguments()
            .filter(|arg| {
                arg.get_env()
                    .and_then(std::env::var_os)
                    .is_some_and(|value| value.is_empty())
            })
            .map(|arg| arg.get_id().clone())
            .collect();
        for id in empty {
            command = command.mut_arg(id, |arg| arg.env(None));
        }
        let matches = command.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

fn parse_encoding(text: &str) -> Result<ValueEncoding, String> {
    text.parse()
        .map_err(|e: durabledict::UnknownEncoding| e.to_string())
}

fn parse_python2_str(text: &str) -> Result<Python2Str, String> {
    match text.to_ascii_lowercase().as_str() {
        "text" => Ok(Python2Str::Text),
        "bytes" => Ok(Python2Str::Bytes),
        "latin1" => Ok(Python2Str::Latin1),
        _ => Err(format!("{text:?} is not one of text, bytes, latin1")),
    }
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    match text.trim() {
        "2" => Ok(Protocol::V2),
        "3" => Ok(Protocol::V3),
        _ => Err(format!(
            "{text:?} is not a pickle protocol this writes: 2 or 3"
        )),
    }
}

/// The shortest `watch --interval`: checking more often only burns a core (a stamp check on
/// a local store takes microseconds, so `0.0001ms` would spin), and no change reaches anyone
/// that fast anyway.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// `500ms`, `2s`, `1.5s`, `1m`, or a number of seconds; at least [`MIN_INTERVAL`].
fn parse_interval(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let not_a_duration = || format!("{text:?} is not a duration like 500ms, 2s or 1m");
    if number.trim().is_empty() {
        return Err(not_a_duration());
    }
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        _ => return Err(format!("unknown unit {unit:?}: use ms, s or m")),
    };
    let value: f64 = number.trim().parse().map_err(|_| not_a_duration())?;
    let interval = Duration::try_from_secs_f64(value * scale).map_err(|_| not_a_duration())?;
    if interval < MIN_INTERVAL {
        return Err(format!(
            "{text:?} is shorter than the shortest interval, {MIN_INTERVAL:?}"
        ));
    }
    Ok(interval)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_interval("10ms"), Ok(MIN_INTERVAL));
        assert_eq!(parse_interval("0.01"), Ok(MIN_INTERVAL));
        for short in ["0.0001ms", "9ms", "9.99ms", "0.001", "0s", "0"] {
            let err = parse_interval(short).unwrap_err();
            assert!(
                err.contains("shorter than the shortest interval, 10ms"),
                "{short}: {err}"
            );
        }
        assert!(parse_interval("-1s").is_err());
        assert!(parse_interval("3h").is_err());
        assert!(parse_interval("fast").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

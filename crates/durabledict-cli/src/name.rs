//! The entry `get` and `del` address: a key, or with `--key-base64` a raw name, which only a
//! Redis hash can hold when it is not UTF-8 (Python's `d[b'\xff'] = …`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict::OpenOptions;

use crate::cli;
use crate::failure::Failure;
use crate::values::Values;

/// A key, or a name that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    /// A UTF-8 key (given as KEY, or as base64 of UTF-8).
    Key(String),
    /// Bytes that are not UTF-8.
    Raw(Vec<u8>),
}

impl Name {
    /// The name the command line gives; base64 of UTF-8 is an ordinary key.
    pub(crate) fn of(name: cli::Name) -> Result<Name, Failure> {
        match (name.key, name.key_base64) {
            (Some(key), _) => Ok(Name::Key(key)),
            (None, Some(b64)) => {
                let bytes = STANDARD.decode(b64.trim()).map_err(|e| {
                    Failure::Usage(format!("--key-base64 {b64:?} is not standard base64: {e}"))
                })?;
                Ok(match String::from_utf8(bytes) {
                    Ok(key) => Name::Key(key),
                    Err(e) => Name::Raw(e.into_bytes()),
                })
            }
            (None, None) => Err(Failure::Usage("give KEY or --key-base64 B64".into())),
        }
    }
}

/// How a raw name reads in messages.
fn shown(raw: &[u8]) -> String {
    format!("{} (base64; not UTF-8)", STANDARD.encode(raw))
}

/// How long connecting may take: [`OpenOptions`]'s default, which the other commands use.
#[cfg(feature = "redis")]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Prints the value stored under a raw name.
pub(crate) fn get_raw(
    url: &str,
    options: &OpenOptions,
    values: &Values,
    raw: &[u8],
) -> Result<(), Failure> {
    let store = redis_store(url, options, raw)?;
    #[cfg(feature = "redis")]
    {
        use durabledict::redis::redis;
        let unavailable = |e: redis::RedisError| {
            Failure::Store(format!(
                "store error during get of {}: Unavailable: {}",
                shown(raw),
                durabledict::Report(&e)
            ))
        };
        // `RedisStore` reads keys only; the hash is read here, by the name the store uses.
        let mut con = redis::Client::open(url)
            .and_then(|client| client.get_connection_with_timeout(CONNECT_TIMEOUT))
            .map_err(unavailable)?;
        let bytes: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(store.hash_key())
            .arg(raw)
            .query(&mut con)
            .map_err(unavailable)?;
        let bytes = bytes.ok_or_else(|| Failure::NotFound(shown(raw)))?;
        let value = crate::commands::decode(values, &shown(raw), &bytes)?;
        crate::output::print_line(&crate::json_out::to_json(&value))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = values;
        match store {}
    }
}

/// Deletes the entry under a raw name, with a stamp bump, as `del` deletes a key.
pub(crate) fn del_raw(url: &str, options: &OpenOptions, raw: &[u8]) -> Result<(), Failure> {
    let store = redis_store(url, options, raw)?;
    #[cfg(feature = "redis")]
    {
        match store.remove_raw_field(raw) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Failure::NotFound(shown(raw))),
            Err(e) => Err(Failure::Store(format!(
                "store error during remove of {}: {}",
                shown(raw),
                durabledict::Report(&e)
            ))),
        }
    }
    #[cfg(not(feature = "redis"))]
    {
        match store {}
    }
}

#[cfg(feature = "redis")]
type RawStore = durabledict::redis::RedisStore;
#[cfg(not(feature = "redis"))]
type RawStore = std::convert::Infallible;

/// The Redis store `url` names: the only kind whose names can be other than UTF-8. Any other
/// store is a usage error, after the URL itself was checked as every command checks it.
fn redis_store(url: &str, options: &OpenOptions, raw: &[u8]) -> Result<RawStore, Failure> {
    crate::commands::reader(url, options)?;
    if !is_redis(url) {
        return Err(Failure::Usage(format!(
            "the name {} is not UTF-8: only a Redis hash can hold such a name, and this store's \
             keys are UTF-8 text",
            shown(raw)
        )));
    }
    #[cfg(feature = "redis")]
    {
        // Checked by `reader` above: the facade's parser and this one are the same.
        let parsed = durabledict::redis::RedisUrl::parse(url)
            .map_err(|e| Failure::Usage(durabledict::Report(&e).to_string()))?;
        parsed
            .builder(options.keyspace_name())
            .connect_timeout(parsed.connect_timeout().unwrap_or(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| {
                Failure::Store(format!(
                    "cannot connect to the store: {}",
                    durabledict::Report(&e)
                ))
            })
    }
    #[cfg(not(feature = "redis"))]
    Err(Failure::Usage(
        "Redis URLs need the redis cargo feature".into(),
    ))
}

/// Whether `url` names a Redis store (by the facade's scheme table).
fn is_redis(url: &str) -> bool {
    durabledict::StoreKind::of_url(url) == Some(durabledict::StoreKind::Redis)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name(key: Option<&str>, b64: Option<&str>) -> Result<Name, Failure> {
        Name::of(cli::Name {
            key: key.map(str::to_owned),
            key_base64: b64.map(str::to_owned),
        })
    }

    #[test]
    fn base64_of_utf8_is_a_key_and_of_other_bytes_a_raw_name() {
        assert_eq!(name(Some("k"), None).unwrap(), Name::Key("k".into()));
        assert_eq!(name(None, Some("4piD")).unwrap(), Name::Key("☃".into()));
        assert_eq!(name(None, Some("/w==")).unwrap(), Name::Raw(vec![0xff]));
        assert!(matches!(name(None, Some("!!")), Err(Failure::Usage(_))));
    }

    #[test]
    fn only_redis_urls_hold_raw_names() {
        for url in ["redis://h/", "REDISS://h", "redis+unix:///s", "unix:///s"] {
            assert!(is_redis(url), "{url}");
        }
        for url in ["sqlite:redis.db", "zk://redis:1", "postgres://u@redis/db"] {
            assert!(!is_redis(url), "{url}");
        }
    }
}

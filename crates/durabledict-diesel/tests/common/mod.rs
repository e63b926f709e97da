//! The conformance fixture for SQL stores, and raw SQL for acting behind the stores' backs.
#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use durabledict_conformance::{Capabilities, Fixture};
use durabledict_core::{
    BoxError, DurableDict, Error, Raw, Stamp, StampValue, Store, StoreError, StoreErrorKind,
};
use durabledict_diesel::{Backend, SqlStore};
use durabledict_memcache_stamp::MemcacheStamp;

/// Where a fixture's stamps live.
#[derive(Debug, Clone)]
pub enum StampKind {
    /// The SQL-row stamp.
    Row,
    /// memcached at this address (`127.0.0.1:PORT`).
    Memcache(String),
}

/// Runs the conformance suite on one database: each keyspace is a table, each `store()` call a
/// store with its own pool (another process).
#[derive(Debug)]
pub struct SqlFixture {
    pub url: String,
    pub stamp: StampKind,
}

impl SqlFixture {
    pub fn new(url: impl Into<String>, stamp: StampKind) -> Self {
        SqlFixture {
            url: url.into(),
            stamp,
        }
    }

    pub fn open(&self, keyspace: &str) -> Result<SqlStore, StoreError> {
        let builder = SqlStore::builder(&self.url)
            .table(keyspace)
            .pool_size(3)
            .connection_timeout(Duration::from_secs(5));
        match &self.stamp {
            StampKind::Row => builder.build(),
            StampKind::Memcache(addr) => builder.stamp(memcache_stamp(addr, keyspace)).build(),
        }
    }
}

pub fn memcache_stamp(addr: &str, keyspace: &str) -> MemcacheStamp {
    MemcacheStamp::builder(addr)
        .keyspace(keyspace)
        .build()
        .expect("memcache stamp")
}

impl Fixture for SqlFixture {
    fn store(&self, keyspace: &str) -> Result<Box<dyn Store>, BoxError> {
        Ok(Box::new(self.open(keyspace)?))
    }

    fn capabilities(&self) -> Capabilities {
        let long_key = match backend_of(&self.url) {
            // VARBINARY(1020): the limit is in bytes.
            Backend::Mysql => "k".repeat(1021),
            _ => "☃".repeat(256),
        };
        let mut invalid = vec![long_key];
        if backend_of(&self.url) == Backend::Postgres {
            invalid.push("nul\0key".to_string());
        }
        let cases = match backend_of(&self.url) {
            Backend::Sqlite => 48,
            _ => 24,
        };
        let caps = Capabilities::new().invalid_keys(invalid).model_cases(cases);
        // PostgreSQL with the SQL-row stamp pushes (LISTEN and the stamps table's trigger).
        match (backend_of(&self.url), &self.stamp) {
            (Backend::Postgres, StampKind::Row) => caps.feed(Duration::from_secs(2)),
            _ => caps,
        }
    }

    fn cut_feed(&self, keyspace: &str) -> Result<bool, BoxError> {
        if backend_of(&self.url) != Backend::Postgres || !matches!(self.stamp, StampKind::Row) {
            return Ok(false);
        }
        Ok(kill_listeners(&self.url, keyspace)? > 0)
    }

    fn cleanup(&self, keyspace: &str) -> Result<(), BoxError> {
        self.open(keyspace)?.drop_keyspace()?;
        if let StampKind::Memcache(addr) = &self.stamp {
            memcache_stamp(addr, keyspace).delete()?;
        }
        Ok(())
    }

    fn lose_stamp(&self, keyspace: &str) -> Result<bool, BoxError> {
        match &self.stamp {
            StampKind::Row => {
                let sql = match backend_of(&self.url) {
                    Backend::Mysql => {
                        format!("DELETE FROM durabledict_stamps WHERE keyspace = '{keyspace}'")
                    }
                    _ => format!(
                        "DELETE FROM \"durabledict_stamps\" WHERE \"keyspace\" = '{keyspace}'"
                    ),
                };
                execute(&self.url, &sql)?;
            }
            StampKind::Memcache(addr) => {
                memcache_stamp(addr, keyspace).delete()?;
            }
        }
        Ok(true)
    }

    fn write_unstamped(&self, keyspace: &str, key: &str, value: &[u8]) -> Result<bool, BoxError> {
        // The same table through a store whose stamp never changes.
        let store = SqlStore::builder(&self.url)
            .table(keyspace)
            .stamp(FrozenStamp)
            .build()?;
        store.persist(key, value)?;
        Ok(true)
    }
}

/// The `application_name` of the PostgreSQL listener of `keyspace`.
pub fn listener_name(keyspace: &str) -> String {
    let mut name = format!("durabledict-listen:{keyspace}");
    name.truncate(63);
    name
}

/// Terminates the PostgreSQL listener connections of `keyspace` (`pg_terminate_backend`),
/// waits until they are gone (a new one may have come meanwhile), and returns how many there
/// were.
pub fn kill_listeners(url: &str, keyspace: &str) -> Result<i64, BoxError> {
    let name = listener_name(keyspace);
    let at = query_i64(
        url,
        "SELECT CAST(extract(epoch FROM clock_timestamp()) * 1000000 AS BIGINT)",
    )?;
    let killed = query_i64(
        url,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = '{name}'"
        ),
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while query_i64(
        url,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' \
             AND extract(epoch FROM backend_start) * 1000000 < {at}"
        ),
    )? > 0
    {
        if std::time::Instant::now() > deadline {
            return Err(format!("the listeners of {keyspace} did not end").into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(killed)
}

/// A stamp that never changes: writes through it are invisible to the dicts.
#[derive(Debug)]
pub struct FrozenStamp;

impl Stamp for FrozenStamp {
    fn get(&self) -> Result<Option<StampValue>, StoreError> {
        Ok(Some(0))
    }
    fn bump(&self) -> Result<StampValue, StoreError> {
        Ok(0)
    }
}

pub fn backend_of(url: &str) -> Backend {
    if url.starts_with("postgres") {
        Backend::Postgres
    } else if url.starts_with("mysql") {
        Backend::Mysql
    } else {
        Backend::Sqlite
    }
}

/// Runs SQL on a fresh connection of the URL's backend.
pub fn execute(url: &str, sql: &str) -> Result<(), BoxError> {
    match backend_of(url) {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            let mut c = diesel::sqlite::SqliteConnection::establish(path)?;
            c.batch_execute(&format!("PRAGMA busy_timeout = 5000; {sql}"))?;
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => diesel::pg::PgConnection::establish(url)?.batch_execute(sql)?,
        #[cfg(feature = "mysql")]
        Backend::Mysql => diesel::mysql::MysqlConnection::establish(url)?.batch_execute(sql)?,
        other => return Err(format!("backend {other} not compiled in").into()),
    }
    Ok(())
}

/// One memcached per test binary (each test isolates itself with its own keys).
pub fn memcached_addr() -> String {
    use durabledict_test_servers::Memcached;
    use std::sync::OnceLock;
    static MEMCACHED: OnceLock<Memcached> = OnceLock::new();
    let server = MEMCACHED.get_or_init(|| {
        Memcached::start().unwrap_or_else(|e| panic!("cannot start memcached: {e}"))
    });
    server.addr().to_string()
}

/// A unique table name for one test.
pub fn table_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// Runs a query returning one integer on a fresh connection of the URL's backend.
pub fn query_i64(url: &str, sql: &str) -> Result<i64, BoxError> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::BigInt;
    let query = diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})")));
    Ok(match backend_of(url) {
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite://");
            query.get_result(&mut diesel::sqlite::SqliteConnection::establish(path)?)?
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => query.get_result(&mut diesel::pg::PgConnection::establish(url)?)?,
        #[cfg(feature = "mysql")]
        Backend::Mysql => query.get_result(&mut diesel::mysql::MysqlConnection::establish(url)?)?,
        other => return Err(format!("backend {other} not compiled in").into()),
    })
}

/// A table as Django creates it for a `ModelDict` model (`ddl` makes `myapp_setting` with an
/// auto id, a unique `varchar(32)` key, a text value and a column with a default) works as it
/// is: existing rows are read, writes keep its shape, what it cannot hold is refused naming the
/// key. `shaped` counts the rows that look as Django wrote them.
pub fn django_model_dict_works(url: &str, ddl: &str, shaped: &str) {
    use durabledict_core::{DurableDict, Error, Raw, StoreErrorKind};

    execute(url, ddl).unwrap();
    let quote = if backend_of(url) == Backend::Mysql {
        '`'
    } else {
        '"'
    };
    execute(
        url,
        &format!(
            "INSERT INTO {quote}myapp_setting{quote} ({quote}key{quote}, {quote}value{quote}) \
             VALUES ('existing', 'from django')"
        ),
    )
    .unwrap();
    let store = || {
        SqlStore::builder(url)
            .table("myapp_setting")
            .build()
            .unwrap()
    };
    let d = DurableDict::<String>::builder(store(), Raw)
        .build()
        .unwrap();
    assert_eq!(
        d.get("existing").unwrap().as_deref().map(String::as_str),
        Some("from django")
    );
    d.insert("new", "from rust ☃".into()).unwrap();
    d.insert("existing", "overwritten".into()).unwrap();
    assert_eq!(
        *d.setdefault("existing", "ignored".into()).unwrap(),
        "overwritten"
    );
    assert_eq!(*d.setdefault("ключ", "☃".into()).unwrap(), "☃");
    assert_eq!(*d.pop("ключ").unwrap(), "☃");
    // A key over the varchar(32) Django declared is refused before anything is written.
    let long = "é".repeat(33);
    match d.insert(&long, "v".into()) {
        Err(Error::InvalidKey { key, .. }) => assert_eq!(key, long),
        other => panic!("a 33-character key must be refused, got {other:?}"),
    }
    assert!(
        d.insert(&"é".repeat(32), "fits".into()).is_ok(),
        "32 characters fit"
    );
    d.remove(&"é".repeat(32)).unwrap();
    // Bytes a text column cannot hold are refused, naming the key.
    let raw = DurableDict::<Vec<u8>>::builder(store(), Raw)
        .build()
        .unwrap();
    for bad in [&b"\xff\xfe"[..], &b"nul\0"[..]] {
        if bad.contains(&0) && backend_of(url) != Backend::Postgres {
            continue; // only PostgreSQL text refuses NUL
        }
        match raw.insert("binary", bad.to_vec()) {
            Err(e @ Error::Store { .. }) => {
                assert_eq!(e.key(), Some("binary"));
                assert_eq!(
                    e.store_error().map(|s| s.kind()),
                    Some(StoreErrorKind::Rejected)
                );
            }
            other => panic!("{bad:?} in a text column must be refused, got {other:?}"),
        }
    }
    assert_eq!(store().get("binary").unwrap(), None);
    // Another dict reads the whole table; the rows are Django's: ids assigned, defaults filled.
    let reader = DurableDict::<String>::builder(store(), Raw)
        .build()
        .unwrap();
    let mut keys = reader.keys().unwrap();
    keys.sort();
    assert_eq!(keys, ["existing", "new"]);
    assert_eq!(
        query_i64(url, shaped).unwrap(),
        2,
        "every row is Django-shaped"
    );
    // A stamp row was created for the table that already existed, from the clock.
    let stamp = d.last_updated().unwrap().unwrap();
    assert!(
        stamp > 1_000_000,
        "a pre-existing table's stamp starts from the clock: {stamp}"
    );
}

/// A table created with `text_values(true)` keeps values as text, as a Django `TextField` (so
/// Python reads `str`): UTF-8 round-trips, other bytes are refused naming the key.
pub fn text_values_table_works(url: &str) {
    use durabledict_core::{DurableDict, Error, Raw, StoreErrorKind};

    let store = SqlStore::builder(url)
        .table(table_name("text_values"))
        .text_values(true)
        .build()
        .unwrap();
    let dict = DurableDict::<Vec<u8>>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    dict.insert("snowman", "☃ ключ".as_bytes().to_vec())
        .unwrap();
    let reader = DurableDict::<Vec<u8>>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    assert_eq!(
        reader.get("snowman").unwrap().as_deref().map(Vec::as_slice),
        Some("☃ ключ".as_bytes())
    );
    match dict.insert("bad", b"\xc3\x28".to_vec()) {
        Err(e @ Error::Store { .. }) => {
            assert_eq!(e.key(), Some("bad"));
            assert_eq!(
                e.store_error().map(|s| s.kind()),
                Some(StoreErrorKind::Rejected)
            );
        }
        other => panic!("invalid UTF-8 in a text column must be refused, got {other:?}"),
    }
    assert_eq!(reader.len().unwrap(), 1);
    store.drop_keyspace().unwrap();
}

/// Reads `key` as an owned string.
pub fn read(dict: &DurableDict<String>, key: &str) -> Result<Option<String>, Error> {
    Ok(dict.get(key)?.map(|v| (*v).clone()))
}

/// Asserts that a read failed because the server is unavailable.
pub fn assert_unavailable(result: Result<Option<String>, Error>) {
    match result {
        Err(e @ Error::Store { .. }) => assert_eq!(
            e.store_error().map(|s| s.kind()),
            Some(StoreErrorKind::Unavailable),
            "{e}"
        ),
        other => panic!("an Always dict must fail while its server is down, got {other:?}"),
    }
}

/// The server behind `url` (`server`) stops and comes back under live dicts: an
/// `Always` dict fails while it is down (or serves its last snapshot when asked to), and the
/// same dicts work again once it is back, their dead pooled connections replaced.
pub fn restart_under_live_dicts<S>(
    url: &str,
    server: &mut S,
    stop: impl FnOnce(&mut S),
    restart: impl FnOnce(&mut S),
) {
    let store = || {
        SqlStore::builder(url)
            .table("flags")
            .connection_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let strict = DurableDict::<String>::builder(store(), Raw)
        .build()
        .unwrap();
    let lenient = DurableDict::<String>::builder(store(), Raw)
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    strict.insert("k", "before".into()).unwrap();
    assert_eq!(read(&lenient, "k").unwrap().as_deref(), Some("before"));

    stop(server);
    assert_unavailable(read(&strict, "k"));
    assert_eq!(
        read(&lenient, "k").unwrap().as_deref(),
        Some("before"),
        "serve_stale_for serves the last snapshot"
    );
    match strict.insert("k", "lost".into()) {
        Err(e) => assert_eq!(
            e.store_error().map(|s| s.kind()),
            Some(StoreErrorKind::Unavailable)
        ),
        Ok(()) => panic!("a write while the server is down must fail"),
    }

    restart(server);
    // The first read after the restart already succeeds: dead connections are replaced.
    assert_eq!(read(&strict, "k").unwrap().as_deref(), Some("before"));
    DurableDict::<String>::builder(store(), Raw)
        .build()
        .unwrap()
        .insert("k", "after".into())
        .unwrap();
    assert_eq!(read(&strict, "k").unwrap().as_deref(), Some("after"));
    assert_eq!(read(&lenient, "k").unwrap().as_deref(), Some("after"));
    strict.insert("k", "again".into()).unwrap();
    assert_eq!(read(&lenient, "k").unwrap().as_deref(), Some("again"));
}

/// Every spelling of a table name that the database resolves to one table reaches one stamp
/// row, so a dict on one spelling sees writes through another (SQLite ignores case in table
/// names, MySQL does unless `lower_case_table_names` is 0); spellings that are different tables
/// (PostgreSQL, whose quoted names are exact) keep one stamp row each. Either way a dict serves
/// what its table holds. `same_table` says which of the two the database does.
pub fn one_stamp_row_per_table(url: &str, same_table: bool) {
    let lower = table_name("case");
    let upper = lower.to_uppercase();
    let open = |table: &str| SqlStore::builder(url).table(table).build().unwrap();
    let dict = |table: &str| {
        DurableDict::<String>::builder(open(table), Raw)
            .build()
            .unwrap()
    };
    let watcher = dict(&lower);
    watcher.insert("a", "1".into()).unwrap();
    let upper_watcher = dict(&upper);
    dict(&upper).insert("a", "2".into()).unwrap();
    let expected = if same_table { "2" } else { "1" };
    assert_eq!(
        open(&lower).get("a").unwrap().as_deref(),
        Some(expected.as_bytes()),
        "{upper} is {}the table {lower}",
        if same_table { "" } else { "not " }
    );
    assert_eq!(read(&watcher, "a").unwrap().as_deref(), Some(expected));
    // And the other way round.
    dict(&lower).insert("b", "3".into()).unwrap();
    assert_eq!(
        read(&upper_watcher, "b").unwrap(),
        same_table.then(|| "3".to_string())
    );
    let keyspace = match backend_of(url) {
        Backend::Mysql => "LOWER(CONVERT(keyspace USING utf8mb4))",
        _ => "LOWER(keyspace)",
    };
    let rows = query_i64(
        url,
        &format!("SELECT count(*) FROM durabledict_stamps WHERE {keyspace} = '{lower}'"),
    )
    .unwrap();
    assert_eq!(rows, if same_table { 1 } else { 2 }, "stamp rows");
    open(&lower).drop_keyspace().unwrap();
    open(&upper).drop_keyspace().unwrap();
}

/// A request that fails because the server is down changes the store's epoch, and so does a
/// dead connection found after a restart, even when the retry on a new one succeeds: the
/// server may have come back with other contents at the same stamp.
pub fn failed_requests_change_the_epoch<S>(
    url: &str,
    server: &mut S,
    stop: impl Fn(&mut S),
    restart: impl Fn(&mut S),
) {
    let store = SqlStore::builder(url)
        .table(table_name("epoch"))
        .connection_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    store.init().unwrap();
    store.last_updated().unwrap();
    let before = store.epoch();
    store.last_updated().unwrap();
    assert_eq!(
        store.epoch(),
        before,
        "a request that succeeds keeps the epoch"
    );

    // Restarted between two requests: the pooled connection is dead, the retry succeeds.
    stop(server);
    restart(server);
    store.last_updated().unwrap();
    let after_restart = store.epoch();
    assert_ne!(after_restart, before, "a dead connection changes the epoch");

    stop(server);
    assert!(store.last_updated().is_err());
    let down = store.epoch();
    assert_ne!(down, after_restart, "a failed request changes the epoch");
    restart(server);
    store.last_updated().unwrap();
    store.drop_keyspace().unwrap();
}

/// A dict on `store` under `SyncPolicy::Watch`.
pub fn watch(store: SqlStore) -> DurableDict<String> {
    DurableDict::<String>::builder(store, Raw)
        .policy(durabledict_core::SyncPolicy::Watch)
        .build()
        .unwrap()
}

/// Waits (polling every 2 ms) until `check` holds; fails naming `what` after `bound`.
pub fn wait_until(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + bound;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} (within {bound:?})"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

//! Every URL form the facade accepts, opened with `durabledict::open` and `open_store` against
//! a real server: a dict writes, another dict (on the same URL or another form naming the same
//! place) built before the write reads it back, writes in turn, and new dicts agree. Forms
//! that need the process's environment or working directory (TLS roots, a relative SQLite
//! path) run in a member process.

use durabledict::{OpenOptions, Value as PyValue};
use serde_json::{Value, json};

use crate::contents::{self, Dict};
use crate::member::{self, Member};
use crate::servers;

fn open(url: &str, options: &OpenOptions) -> Dict {
    durabledict::open(url, options).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// A dict of Python values on the store `open_store` makes for `url`.
fn open_through_store(url: &str, options: &OpenOptions) -> Dict {
    let store =
        durabledict::open_store(url, options).unwrap_or_else(|e| panic!("open_store {url}: {e}"));
    durabledict::dynamic(store).build().unwrap()
}

/// Writes through a dict on `first` and reads back through one on `second`, built before the
/// write; then the other way round; then new dicts on both URLs, one made through
/// `open_store`, hold the same. `fed`: the store tells dicts of changes (ZooKeeper), so
/// another dict sees a change once the notification arrives rather than on its next read.
/// Returns the final contents, rendered.
fn round_trip(first: &str, second: &str, options: &OpenOptions, fed: bool) -> String {
    let one = open(first, options);
    let two = open(second, options);
    assert!(two.is_empty().unwrap(), "{second} starts empty");

    one.insert("snow", PyValue::String("☃".into())).unwrap();
    one.insert(
        "limits",
        PyValue::Tuple(vec![PyValue::I64(10), PyValue::F64(0.5)]),
    )
    .unwrap();
    let want = contents::render(&contents::of(&one));
    contents::assert_holds(&two, &want, fed);

    two.remove("snow").unwrap();
    two.insert("from second", PyValue::Bytes(b"\x00\xff".to_vec()))
        .unwrap();
    let want = contents::render(&contents::of(&two));
    assert!(
        want.contains("from second") && !want.contains("snow"),
        "{want}"
    );
    contents::assert_holds(&one, &want, fed);

    for url in [first, second] {
        assert_eq!(contents::render(&contents::of(&open(url, options))), want);
        assert_eq!(
            contents::render(&contents::of(&open_through_store(url, options))),
            want
        );
    }
    want
}

/// Runs a round trip in a member process set up by `set_up`; returns the final contents.
fn round_trip_in_member(
    test: &str,
    first: &str,
    second: &str,
    keyspace: &str,
    set_up: impl FnOnce(&mut std::process::Command),
) -> String {
    let job = json!({"first": first, "second": second, "keyspace": keyspace});
    let mut member = Member::spawn_with(test, "round trip", &job, set_up);
    let got = member.expect("contents");
    member.finish();
    got
}

/// Member side of [`round_trip_in_member`].
fn member_round_trip(job: &Value) {
    let options = OpenOptions::new().keyspace(job["keyspace"].as_str().unwrap());
    let got = round_trip(
        job["first"].as_str().unwrap(),
        job["second"].as_str().unwrap(),
        &options,
        false,
    );
    member::say("contents", &got);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;

    #[test]
    fn redis_urls_with_and_without_a_database() {
        let redis = servers::redis();
        let options = OpenOptions::new().keyspace(servers::keyspace("redis"));
        round_trip(&redis.url(None), &redis.url(Some(0)), &options, false);
        // Database 3 is another place: the same keyspace starts empty there (round_trip
        // checks), and what is written there is not in database 0.
        let fresh = OpenOptions::new().keyspace(servers::keyspace("redis"));
        round_trip(&redis.url(Some(3)), &redis.url(Some(3)), &options, false);
        round_trip(&redis.url(Some(3)), &redis.url(Some(3)), &fresh, false);
        assert!(open(&redis.url(None), &fresh).is_empty().unwrap());
    }

    #[test]
    fn redis_unix_socket_urls_reach_the_server_tcp_reaches() {
        let redis = servers::redis();
        let socket = redis.socket().display().to_string();
        let options = OpenOptions::new().keyspace(servers::keyspace("unix"));
        round_trip(
            &format!("redis+unix://{socket}"),
            &redis.url(None),
            &options,
            false,
        );
        round_trip(
            &format!("unix://{socket}?db=2"),
            &redis.url(Some(2)),
            &options,
            false,
        );
    }
}

#[cfg(feature = "redis-tls")]
mod rediss {
    use std::path::Path;
    use std::process::Command;

    use durabledict_test_servers::{RedisServer, free_port};

    use super::*;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("the TLS test needs the openssl command (apt-get install openssl): {e}")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ca.crt`, and `server.crt` / `server.key` for 127.0.0.1 signed by it.
    fn certificates(dir: &Path) {
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca = [
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=durabledict e2e CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ];
        openssl(dir, &[&["req", "-x509"][..], &key, &ca].concat());
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let csr = [
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=server",
        ];
        openssl(dir, &[&["req"][..], &key, &csr].concat());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
    }

    /// `rediss://` through the facade, which takes no certificate option: the member process
    /// trusts the test CA through `SSL_CERT_FILE`, which the system's roots are read from.
    #[test]
    fn rediss_url_over_tls() {
        let test = member::test_name(module_path!(), "rediss_url_over_tls");
        if let Some(job) = member::job() {
            return member_round_trip(&job);
        }
        let dir = tempfile::tempdir().unwrap();
        certificates(dir.path());
        let tls_port = free_port().unwrap();
        let file = |name: &str| dir.path().join(name).display().to_string();
        let args = [
            "--bind".to_string(),
            "127.0.0.1".into(),
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        let server = RedisServer::start_with_args(args)
            .unwrap_or_else(|e| panic!("cannot start redis-server with TLS: {e}"));
        let keyspace = servers::keyspace("tls");
        let url = format!("rediss://127.0.0.1:{tls_port}/");
        let got = round_trip_in_member(&test, &url, &url, &keyspace, |command| {
            command.env("SSL_CERT_FILE", file("ca.crt"));
        });
        // The same server's plain port holds what went over TLS.
        let plain = open(&server.url(), &OpenOptions::new().keyspace(keyspace));
        assert_eq!(contents::render(&contents::of(&plain)), got);
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    #[test]
    fn sqlite_absolute_path_forms_name_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forms.db").display().to_string();
        assert!(path.starts_with('/'));
        let options = OpenOptions::new().keyspace(servers::keyspace("sqlite"));
        // sqlite:/abs/forms.db and sqlite:///abs/forms.db
        round_trip(
            &format!("sqlite:{path}"),
            &format!("sqlite://{path}"),
            &options,
            false,
        );
        assert!(std::path::Path::new(&path).is_file());
    }

    /// `sqlite:NAME` and `sqlite://NAME` are relative to the working directory, which a
    /// member process is started in.
    #[test]
    fn sqlite_relative_path_forms_open_in_the_working_directory() {
        let test = member::test_name(
            module_path!(),
            "sqlite_relative_path_forms_open_in_the_working_directory",
        );
        if let Some(job) = member::job() {
            return member_round_trip(&job);
        }
        let dir = tempfile::tempdir().unwrap();
        let keyspace = servers::keyspace("relative");
        let got = round_trip_in_member(
            &test,
            "sqlite:relative.db",
            "sqlite://relative.db",
            &keyspace,
            |command| {
                command.current_dir(dir.path());
            },
        );
        let file = dir.path().join("relative.db");
        assert!(file.is_file(), "{} was not created", file.display());
        let absolute = open(
            &format!("sqlite:{}", file.display()),
            &OpenOptions::new().keyspace(keyspace),
        );
        assert_eq!(contents::render(&contents::of(&absolute)), got);
    }

    /// `sqlite::memory:` is one private database per store, consistent across the threads of
    /// its dict.
    #[test]
    fn sqlite_memory_is_private_to_its_store() {
        let options = OpenOptions::new().keyspace("memory");
        let dict = open("sqlite::memory:", &options);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let dict = &dict;
                scope.spawn(move || {
                    for i in 0..10 {
                        dict.insert(&format!("t{thread}-{i}"), PyValue::I64(i))
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(dict.len().unwrap(), 40);
        assert_eq!(dict.get("t3-9").unwrap().as_deref(), Some(&PyValue::I64(9)));
        assert!(open("sqlite::memory:", &options).is_empty().unwrap());
        assert!(
            open_through_store("sqlite::memory:", &options)
                .is_empty()
                .unwrap()
        );
    }
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_and_postgresql_urls() {
    let url = servers::postgres().url();
    let postgresql = url.replacen("postgres://", "postgresql://", 1);
    let options = OpenOptions::new().keyspace(servers::keyspace("pg"));
    round_trip(&url, &postgresql, &options, false);
}

#[cfg(feature = "mysql")]
#[test]
fn mysql_and_mariadb_urls() {
    let url = servers::mariadb().url();
    let mariadb = url.replacen("mysql://", "mariadb://", 1);
    let options = OpenOptions::new().keyspace(servers::keyspace("my"));
    round_trip(&url, &mariadb, &options, false);
}

#[cfg(feature = "zookeeper")]
#[test]
fn zookeeper_urls_with_a_path_or_the_keyspace() {
    let hosts = servers::zookeeper();
    let name = servers::keyspace("zk");
    // A path in the URL wins over the keyspace option.
    let ignored = OpenOptions::new().keyspace("unused");
    round_trip(
        &format!("zk://{hosts}/e2e/{name}"),
        &format!("zookeeper://{hosts}/e2e/{name}/"),
        &ignored,
        true,
    );
    // Without a path the keyspace names the node: /<keyspace>.
    let name = servers::keyspace("zk");
    let by_keyspace = OpenOptions::new().keyspace(&name);
    let got = round_trip(
        &format!("zk://{hosts}"),
        &format!("zookeeper://{hosts}/"),
        &by_keyspace,
        true,
    );
    let by_path = open(&format!("zk://{hosts}/{name}"), &ignored);
    assert_eq!(contents::render(&contents::of(&by_path)), got);
}

/// The memcached stamp: SQL values, `last_updated` kept in memcached under the documented key
/// (or the one given), bumped once per write.
#[cfg(all(
    feature = "memcache",
    any(feature = "sqlite", feature = "postgres", feature = "mysql")
))]
mod memcached_stamp {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;

    use super::*;

    /// The value memcached holds at `key`, read with a plain `get`.
    fn memcached_get(key: &str) -> Option<i64> {
        let addr = servers::memcached().addr();
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "get {key}\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "END\r\n" {
            return None;
        }
        assert!(line.starts_with(&format!("VALUE {key} ")), "{line:?}");
        let mut value = String::new();
        reader.read_line(&mut value).unwrap();
        Some(value.trim_end().parse().unwrap())
    }

    fn check(url: &str) {
        let memcache = servers::memcached().url();
        let keyspace = servers::keyspace("stamped");
        let options = OpenOptions::new().keyspace(&keyspace).stamp(&memcache);
        round_trip(url, url, &options, false);
        let key = format!("durabledict:{keyspace}:last_updated");
        let before = memcached_get(&key).expect("the stamp is in memcached");
        open(url, &options)
            .insert("one more", PyValue::None)
            .unwrap();
        assert_eq!(memcached_get(&key), Some(before + 1));

        // A stamp key given, as a Django ModelDict shares one.
        let own_key = format!(":{keyspace}:last_updated");
        let keyed = OpenOptions::new()
            .keyspace(servers::keyspace("keyed"))
            .stamp(&memcache)
            .stamp_key(&own_key);
        round_trip(url, url, &keyed, false);
        assert!(memcached_get(&own_key).is_some());
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_with_a_memcached_stamp() {
        let dir = tempfile::tempdir().unwrap();
        check(&format!(
            "sqlite:{}",
            dir.path().join("stamped.db").display()
        ));
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_with_a_memcached_stamp() {
        check(&servers::postgres().url());
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_with_a_memcached_stamp() {
        check(&servers::mariadb().url());
    }
}

/// Schemes match in any case, as URL schemes do.
#[cfg(all(feature = "redis", feature = "sqlite", feature = "zookeeper"))]
#[test]
fn schemes_match_in_any_case() {
    let redis = servers::redis();
    let options = OpenOptions::new().keyspace(servers::keyspace("case"));
    round_trip(
        &redis.url(None).replacen("redis://", "Redis://", 1),
        &format!("REDIS+UNIX://{}", redis.socket().display()),
        &options,
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.db").display().to_string();
    round_trip(
        &format!("SQLite:{path}"),
        &format!("sqlite://{path}"),
        &options,
        false,
    );
    let hosts = servers::zookeeper();
    round_trip(
        &format!("ZK://{hosts}"),
        &format!("ZooKeeper://{hosts}"),
        &options,
        true,
    );
}

/// A memcached stamp URL may end in `/`, as the facade's check allows.
#[cfg(all(feature = "memcache", feature = "sqlite"))]
#[test]
fn a_memcached_stamp_url_with_a_trailing_slash() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("slash.db").display());
    let options = OpenOptions::new()
        .keyspace(servers::keyspace("slash"))
        .stamp(format!("{}/", servers::memcached().url()));
    round_trip(&url, &url, &options, false);
}

/// A URL naming a loopback port nobody listens on fails `open` with an error, within about
/// the connect timeout, whatever the backend.
#[cfg(any(
    feature = "redis",
    feature = "postgres",
    feature = "mysql",
    feature = "zookeeper",
    all(feature = "sqlite", feature = "memcache")
))]
#[test]
fn an_unreachable_server_is_an_error_not_a_hang() {
    let port = durabledict_test_servers::free_port().unwrap();
    let timeout = std::time::Duration::from_millis(500);
    let options = OpenOptions::new()
        .keyspace("unreachable")
        .connect_timeout(timeout);
    let mut urls = Vec::new();
    if cfg!(feature = "redis") {
        urls.push(format!("redis://127.0.0.1:{port}/"));
    }
    if cfg!(feature = "postgres") {
        urls.push(format!("postgres://postgres@127.0.0.1:{port}/db"));
    }
    if cfg!(feature = "mysql") {
        urls.push(format!("mysql://root@127.0.0.1:{port}/db"));
    }
    if cfg!(feature = "zookeeper") {
        urls.push(format!("zk://127.0.0.1:{port}/unreachable"));
    }
    for url in &urls {
        let start = std::time::Instant::now();
        let result = durabledict::open(url, &options);
        let took = start.elapsed();
        let err = result.err().unwrap_or_else(|| panic!("{url} opened"));
        assert!(took < timeout * 10, "{url} took {took:?} to fail: {err}");
    }
    if cfg!(all(feature = "sqlite", feature = "memcache")) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("x.db").display());
        let stamped = options.stamp(format!("memcache://127.0.0.1:{port}"));
        let start = std::time::Instant::now();
        assert!(durabledict::open(&url, &stamped).is_err());
        assert!(start.elapsed() < timeout * 10, "{:?}", start.elapsed());
    }
}

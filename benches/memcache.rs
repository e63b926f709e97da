//! The memcached stamp's costs against a raw memcached `get` round trip measured in the same
//! run (one TCP connection, `TCP_NODELAY`, the request written and the reply parsed by hand):
//! the stamp's own `get` (an `mg` through the `memcache` crate's meta-protocol wire layer), and
//! an `Always` dict read whose stamp check is that `get` (an SQLite store in memory keeps the
//! values). The crate's other configurations are measured by
//! `crates/durabledict-memcache-stamp/examples/crate_configurations.rs`.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/paired.rs"]
mod paired;
use durabledict::memcache::MemcacheStamp;
use durabledict::sql::SqlStore;
use durabledict::{DurableDict, Raw, Stamp, SyncPolicy};
use durabledict_test_servers::Memcached;
use paired::interleaved;

/// A bare `get` of one key: the least a stamp check can cost.
struct RawGet {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
    line: Vec<u8>,
    value: Vec<u8>,
}

impl RawGet {
    fn new(memcached: &Memcached, key: &str) -> Self {
        let stream = TcpStream::connect(memcached.addr()).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawGet {
            reader: BufReader::new(stream),
            request: format!("get {key}\r\n").into_bytes(),
            line: Vec::new(),
            value: Vec::new(),
        }
    }

    fn get(&mut self) -> usize {
        self.reader
            .get_mut()
            .write_all(&self.request)
            .expect("send");
        self.line.clear();
        self.reader
            .read_until(b'\n', &mut self.line)
            .expect("header");
        let header = String::from_utf8_lossy(&self.line);
        let len: usize = header
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a VALUE line");
        self.value.resize(len + 2, 0);
        self.reader.read_exact(&mut self.value).expect("value");
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line).expect("END");
        len
    }
}

fn always_read(c: &mut Criterion) {
    let memcached = Memcached::start().expect("start memcached");
    let addr = memcached.addr().to_string();
    let stamp = MemcacheStamp::builder(&addr)
        .keyspace("bench")
        .build()
        .expect("stamp");
    let store = SqlStore::builder("sqlite::memory:")
        .table("bench")
        .stamp(stamp.clone())
        .build()
        .expect("store");
    let dict = DurableDict::<String>::builder(store, Raw)
        .policy(SyncPolicy::Always)
        .build()
        .expect("build");
    dict.update((0..100).map(|i| (format!("feature.flag.{i}"), "enabled".to_string())))
        .expect("fill");
    let mut raw = RawGet::new(&memcached, stamp.key());

    let mut group = c.benchmark_group("memcache_always_read");
    group.bench_function("raw_get", |b| b.iter(|| black_box(raw.get())));
    group.bench_function("stamp_get", |b| {
        b.iter(|| black_box(stamp.get().expect("stamp get")))
    });
    group.bench_function("dict_always_get", |b| {
        b.iter(|| black_box(dict.get(black_box("feature.flag.7")).expect("get")))
    });
    group.finish();
    interleaved(
        "memcache: stamp get / raw get",
        1.2,
        200,
        || {
            black_box(raw.get());
        },
        || {
            black_box(stamp.get().expect("stamp get"));
        },
    );
    interleaved(
        "memcache: Always read / raw get",
        1.2,
        200,
        || {
            black_box(raw.get());
        },
        || {
            black_box(dict.get("feature.flag.7").expect("get"));
        },
    );
    assert_eq!(
        dict.status().reloads,
        1,
        "the stamp never changed: no reload"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = always_read
}
criterion_main!(benches);

//! Every configuration of the `memcache` crate (0.21) that could serve the stamp's check, each
//! paired against a raw memcached `get` round trip in the same run: the figures behind the
//! choice of its meta-protocol wire layer (docs/PERFORMANCE.md, memcached section). An optional
//! argument keeps only the configurations whose name contains it.
//!
//! `cargo run --release -p durabledict-memcache-stamp --example crate_configurations`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use durabledict_test_servers::Memcached;
use memcache::exp::{GetOptions, MetaClient, MetaConnection, build_get};

#[path = "../../../benches/common/paired.rs"]
mod paired;

const KEY: &str = "durabledict:bench:last_updated";

/// The least a stamp check can cost: one write, one read, parsed by hand.
struct RawGet {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
    line: Vec<u8>,
    value: Vec<u8>,
}

impl RawGet {
    fn new(memcached: &Memcached) -> Self {
        let stream = TcpStream::connect(memcached.addr()).unwrap();
        stream.set_nodelay(true).unwrap();
        RawGet {
            reader: BufReader::new(stream),
            request: format!("get {KEY}\r\n").into_bytes(),
            line: Vec::new(),
            value: Vec::new(),
        }
    }

    fn get(&mut self) -> usize {
        self.reader.get_mut().write_all(&self.request).unwrap();
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line).unwrap();
        let len: usize = String::from_utf8_lossy(&self.line)
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        self.value.resize(len + 2, 0);
        self.reader.read_exact(&mut self.value).unwrap();
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line).unwrap();
        len
    }
}

fn classic(memcached: &Memcached, query: &str) -> memcache::Client {
    let url = memcache::Url::parse(&format!("{}?{query}", memcached.url())).unwrap();
    let pool = memcache::Pool::builder()
        .max_size(4)
        .test_on_check_out(false)
        .build(memcache::ConnectionManager::new(url))
        .unwrap();
    memcache::Client::with_pool(pool).unwrap()
}

fn main() {
    let memcached = Memcached::start().unwrap();
    let filter = std::env::args().nth(1).unwrap_or_default();
    let mut raw = RawGet::new(&memcached);
    let setup = classic(&memcached, "protocol=ascii&tcp_nodelay=true");
    setup.set(KEY, "1764638000000001", 0).unwrap();
    let pair = |name: &str, raw: &mut RawGet, mut subject: Box<dyn FnMut() + '_>| {
        if name.contains(filter.as_str()) {
            paired::interleaved(
                name,
                1.2,
                200,
                || {
                    black_box(raw.get());
                },
                &mut subject,
            );
        }
    };

    let ascii = classic(&memcached, "protocol=ascii&tcp_nodelay=true&timeout=1");
    pair(
        "Client::with_pool, ascii, tcp_nodelay, no checkout test / raw get",
        &mut raw,
        Box::new(|| {
            black_box(ascii.get::<Vec<u8>>(KEY).unwrap());
        }),
    );
    let binary = classic(&memcached, "tcp_nodelay=true&timeout=1");
    pair(
        "Client::with_pool, binary, tcp_nodelay, no checkout test / raw get",
        &mut raw,
        Box::new(|| {
            black_box(binary.get::<Vec<u8>>(KEY).unwrap());
        }),
    );
    let meta = MetaClient::builder()
        .max_idle(4)
        .connect(memcached.addr())
        .unwrap();
    pair(
        "exp::MetaClient (pool, 1 s io deadline) / raw get",
        &mut raw,
        Box::new(|| {
            if let Err(e) = meta.get(KEY).send() {
                eprintln!("{e:?}");
            }
        }),
    );
    let meta_untimed = MetaClient::builder()
        .max_idle(4)
        .io_timeout(None)
        .connect(memcached.addr())
        .unwrap();
    pair(
        "exp::MetaClient (pool, no io deadline) / raw get",
        &mut raw,
        Box::new(|| {
            black_box(meta_untimed.get(KEY).send().unwrap());
        }),
    );
    let mut options = GetOptions::default();
    options.return_client_flags = true;
    let command = build_get(KEY, &options).unwrap();
    for (name, timeout) in [
        (
            "exp::MetaConnection (no pool, 1 s io deadline) / raw get",
            Some(Duration::from_secs(1)),
        ),
        (
            "exp::MetaConnection (no pool, no io deadline) / raw get",
            None,
        ),
    ] {
        let stream = TcpStream::connect(memcached.addr()).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut connection = MetaConnection::from_stream(stream);
        connection.set_io_timeout(timeout);
        let connection = Mutex::new(connection);
        pair(
            name,
            &mut raw,
            Box::new(|| {
                black_box(connection.lock().unwrap().execute(&command).unwrap());
            }),
        );
    }
    // What a stamp built on the wire layer would add: a connection popped from and pushed back
    // to an idle stack, and the value parsed.
    let stream = TcpStream::connect(memcached.addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut connection = MetaConnection::from_stream(stream);
    connection.set_io_timeout(Some(Duration::from_secs(1)));
    let idle = Mutex::new(vec![connection]);
    pair(
        "exp::MetaConnection (idle stack, 1 s io deadline, value parsed) / raw get",
        &mut raw,
        Box::new(|| {
            let mut connection = idle.lock().unwrap().pop().unwrap();
            let response = connection.execute(&command).unwrap();
            idle.lock().unwrap().push(connection);
            let value: u64 = std::str::from_utf8(response.value().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            black_box(value);
        }),
    );
}

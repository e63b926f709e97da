//! What an async `Always` read can reach: raw stamp `GET`s on this machine, paired in one run,
//! each against a raw sync `GET` on a `redis::Connection` (what the sync dict's check costs).
//!
//! | pair | subject |
//! |---|---|
//! | `spawn_blocking` | the sync `GET` run through `tokio::task::spawn_blocking` from a task (the facade's `Offload::Pool`) |
//! | `async socket` | `GET` on a tokio `TcpStream` read by the task itself (what `RedisStore::async_stamp` does) |
//! | `yield_now alone` | a task's `yield_now` (no I/O): what a handler's yield between reads costs |
//!
//! A redis-rs `MultiplexedConnection` was measured here too (commit b42b97e: 1.3–1.4× on a
//! current-thread runtime, 1.7–2.9× on a multi-thread one); it left the bench because its
//! `tokio-comp` feature, unified with durabledict-redis's `tls`, makes redis-rs ask for
//! `tokio-rustls-comp` in a workspace build.
//!
//! Each subject is measured on a current-thread runtime and on a multi-thread one (2 workers).
//! The async batches run inside one spawned task; a task yields after each `GET` as a handler
//! does between requests. Prints `paired:` lines (alternating rounds, median of the per-round
//! ratios); the target column is the 1.3×, for orientation only: these are the floors
//! the facade's reads sit on.
//!
//! Run with `cargo bench -p durabledict-aio --bench rtt`.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durabledict_test_servers::RedisServer;
use tokio::runtime::Runtime;

#[path = "../../../benches/common/paired.rs"]
mod paired;

const STAMP: &str = "bench-rtt-last_updated";

fn runtimes() -> [(&'static str, Runtime); 2] {
    [
        (
            "current_thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        ),
        (
            "multi_thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime"),
        ),
    ]
}

fn sync_gets(conn: &mut redis::Connection, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            redis::cmd("GET")
                .arg(STAMP)
                .query::<Option<i64>>(conn)
                .expect("GET"),
        );
    }
    start.elapsed()
}

fn pooled_gets(rt: &Runtime, conn: &Arc<Mutex<redis::Connection>>, n: u32) -> Duration {
    let conn = Arc::clone(conn);
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..n {
                let conn = Arc::clone(&conn);
                let stamp = tokio::task::spawn_blocking(move || {
                    let mut conn = conn.lock().expect("lock");
                    redis::cmd("GET")
                        .arg(STAMP)
                        .query::<Option<i64>>(&mut *conn)
                        .expect("GET")
                })
                .await
                .expect("join");
                black_box(stamp);
                tokio::task::yield_now().await;
            }
            start.elapsed()
        })
        .await
        .expect("task")
    })
}

/// `GET` on a plain tokio `TcpStream` read by the task itself (no driver task): the floor of a
/// hand-written async stamp connection.
fn socket_gets(rt: &Runtime, addr: std::net::SocketAddr, n: u32, yields: bool) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = redis::cmd("GET").arg(STAMP).get_packed_command();
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut buf = [0u8; 64];
            let start = Instant::now();
            for _ in 0..n {
                stream.write_all(&request).await.expect("write");
                let mut len = 0;
                // `$2\r\n42\r\n`: complete once two CRLFs arrived.
                while buf[..len].windows(2).filter(|w| w == b"\r\n").count() < 2 {
                    len += stream.read(&mut buf[len..]).await.expect("read");
                }
                black_box(&buf[..len]);
                if yields {
                    tokio::task::yield_now().await;
                }
            }
            start.elapsed()
        })
        .await
        .expect("task")
    })
}

/// `n` `yield_now`s in one spawned task: what the "yielding" pairs of the `aio` bench add to
/// each read.
fn yields(rt: &Runtime, n: u32) -> Duration {
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
            start.elapsed()
        })
        .await
        .expect("task")
    })
}

fn main() {
    let server = RedisServer::start().expect("start redis-server (cargo xtask install)");
    let client = redis::Client::open(server.url()).expect("client");
    let mut sync = client.get_connection().expect("connect");
    redis::cmd("SET")
        .arg(STAMP)
        .arg(42)
        .query::<()>(&mut sync)
        .expect("SET");
    let pooled = Arc::new(Mutex::new(client.get_connection().expect("connect")));
    for (flavour, rt) in runtimes() {
        paired::paired(
            &format!("rtt ({flavour}) spawn_blocking GET / sync GET"),
            1.3,
            41,
            500,
            |n| sync_gets(&mut sync, n),
            |n| pooled_gets(&rt, &pooled, n),
        );
        paired::paired(
            &format!("rtt ({flavour}) yield_now alone / sync GET (informative)"),
            f64::INFINITY,
            41,
            500,
            |n| sync_gets(&mut sync, n),
            |n| yields(&rt, n),
        );
        let addr = format!("127.0.0.1:{}", server.port())
            .parse()
            .expect("addr");
        paired::paired(
            &format!("rtt ({flavour}) async socket GET / sync GET"),
            1.3,
            41,
            500,
            |n| sync_gets(&mut sync, n),
            |n| socket_gets(&rt, addr, n, true),
        );
        paired::paired(
            &format!("rtt ({flavour}) async socket GET, no yield / sync GET"),
            1.3,
            41,
            500,
            |n| sync_gets(&mut sync, n),
            |n| socket_gets(&rt, addr, n, false),
        );
    }
}

//! A Prometheus endpoint for a dict's metrics, with `metrics-exporter-prometheus`.
//!
//! ```sh
//! cargo run --example prometheus --features metrics
//! curl -s 127.0.0.1:9000/metrics | grep durabledict_
//! ```
//!
//! The dict here is on a `MemoryStore` written by a second dict, so the example needs no
//! server; any store reports the same metrics. It serves for `DURATION_SECS` (default 60).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use durabledict::{DurableDict, MemoryStore, Raw, SyncPolicy};
use metrics_exporter_prometheus::PrometheusBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:9000".into())
        .parse()?;
    let seconds: u64 = std::env::var("DURATION_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // Installs the recorder (before any dict is built: a dict registers its metrics once)
    // and serves /metrics on its own thread.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()?;

    let store = MemoryStore::new();
    let flags = DurableDict::<String>::builder(store.clone(), Raw)
        .name("flags")
        .build()?;
    let operator = DurableDict::<String>::builder(store, Raw)
        .policy(SyncPolicy::Manual)
        .build()?;

    println!("serving http://{addr}/metrics for {seconds} s");
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut round = 0u64;
    while Instant::now() < until {
        for _ in 0..1000 {
            flags.get("new-checkout")?;
        }
        if round.is_multiple_of(10) {
            operator.insert("new-checkout", round.is_multiple_of(20).to_string())?;
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

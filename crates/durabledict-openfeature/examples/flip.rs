//! A flag read through the OpenFeature client while another writer flips it.
//!
//! Uses the Redis server at `DURABLEDICT_REDIS_URL`, or starts one on a free loopback port.
//!
//! ```text
//! cargo run -p durabledict-openfeature --example flip
//! ```

use std::time::Duration;

use durabledict_aio::AsyncDict;
use durabledict_core::SyncPolicy;
use durabledict_encoding::Json;
use durabledict_openfeature::DurableDictProvider;
use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;
use open_feature::OpenFeature;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (_server, url) = match std::env::var("DURABLEDICT_REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = RedisServer::start()?;
            let url = server.url();
            (Some(server), url)
        }
    };

    // The reader: a provider over a dict on Redis, behind the OpenFeature client.
    let reader_url = url.clone();
    let provider = DurableDictProvider::<Value>::connect(move || {
        Ok(
            AsyncDict::builder(RedisStore::open(&reader_url, "example-flags")?, Json::new())
                .policy(SyncPolicy::Watch),
        )
    });
    OpenFeature::singleton_mut()
        .await
        .set_provider(provider)
        .await;
    let client = OpenFeature::singleton().await.create_client();

    // The writer: another dict (another process, in real life) flips the flag.
    let writer = AsyncDict::<Value>::builder(RedisStore::open(&url, "example-flags")?, Json::new())
        .build()
        .await?;
    let flipping = tokio::spawn(async move {
        for i in 0..10 {
            writer.insert("new-checkout", json!(i % 2 == 0)).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<_, durabledict_core::Error>(())
    });

    for _ in 0..20 {
        match client.get_bool_details("new-checkout", None, None).await {
            Ok(details) => println!("new-checkout = {} ({:?})", details.value, details.reason),
            Err(e) => println!("new-checkout: {} ({:?})", e.code, e.message),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flipping.await??;
    Ok(())
}

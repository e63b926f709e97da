//! Through the OpenFeature client against a real Redis: every flag type, reasons, error codes,
//! a flag flipped by another writer, configuration-changed events, and a provider that is not
//! ready while the store cannot be reached at start.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use durabledict_aio::AsyncDict;
use durabledict_core::SyncPolicy;
use durabledict_encoding::Json;
use durabledict_openfeature::DurableDictProvider;
use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;
use futures_util::StreamExt;
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    Client, EvaluationErrorCode, EvaluationReason, OpenFeature, StructValue, Value,
};
use serde_json::json;

fn server_url() -> String {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER
        .get_or_init(|| RedisServer::start().unwrap_or_else(|e| panic!("redis-server: {e}")))
        .url()
}

fn keyspace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "of-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn dict(keyspace: &str, policy: SyncPolicy) -> AsyncDict<serde_json::Value> {
    AsyncDict::builder(
        RedisStore::open(&server_url(), keyspace).unwrap(),
        Json::new(),
    )
    .policy(policy)
    .build()
    .await
    .unwrap()
}

/// A client of its own (a named provider), so tests do not share the global provider.
async fn client(name: &str, provider: DurableDictProvider<serde_json::Value>) -> Client {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_named_provider(name, provider).await;
    api.create_named_client(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_of_every_type_with_reasons_and_errors() {
    let space = keyspace();
    let writer = dict(&space, SyncPolicy::Manual).await;
    writer
        .update([
            ("on", json!(true)),
            ("name", json!("blue")),
            ("limit", json!(42)),
            ("ratio", json!(0.25)),
            (
                "layout",
                json!({"columns": 3, "title": "wide", "gone": null}),
            ),
        ])
        .await
        .unwrap();
    // A value another program wrote that does not decode: it poisons only its own flag.
    let raw_store = RedisStore::open(&server_url(), &space).unwrap();
    redis::cmd("HSET")
        .arg(raw_store.hash_key())
        .arg("broken")
        .arg("{not json")
        .query::<()>(
            &mut redis::Client::open(server_url())
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();

    // `Always`: every evaluation checks the store first (STATIC).
    let always = client(
        "types-always",
        DurableDictProvider::new(dict(&space, SyncPolicy::Always).await),
    )
    .await;
    let on = always.get_bool_details("on", None, None).await.unwrap();
    assert!(on.value);
    assert_eq!(on.reason, Some(EvaluationReason::Static));
    assert_eq!(
        always.get_string_value("name", None, None).await.unwrap(),
        "blue"
    );
    assert_eq!(always.get_int_value("limit", None, None).await.unwrap(), 42);
    assert_eq!(
        always.get_float_value("ratio", None, None).await.unwrap(),
        0.25
    );
    assert_eq!(
        always.get_float_value("limit", None, None).await.unwrap(),
        42.0
    );
    let layout: StructValue = always.get_struct_value("layout", None, None).await.unwrap();
    assert_eq!(layout.fields.get("columns"), Some(&Value::Int(3)));
    assert_eq!(
        layout.fields.get("title"),
        Some(&Value::String("wide".into()))
    );
    assert!(
        !layout.fields.contains_key("gone"),
        "null has no OpenFeature value"
    );

    fn code<T>(result: Result<T, open_feature::EvaluationError>) -> EvaluationErrorCode {
        result.err().unwrap().code
    }
    assert_eq!(
        code(always.get_bool_details("absent", None, None).await),
        EvaluationErrorCode::FlagNotFound
    );
    assert_eq!(
        code(always.get_bool_details("name", None, None).await),
        EvaluationErrorCode::TypeMismatch
    );
    assert_eq!(
        code(always.get_int_details("ratio", None, None).await),
        EvaluationErrorCode::TypeMismatch
    );
    assert_eq!(
        code(always.get_bool_details("broken", None, None).await),
        EvaluationErrorCode::ParseError
    );
    assert!(
        always.get_bool_value("on", None, None).await.unwrap(),
        "other flags still read"
    );

    // `Manual`: answered from the cache with no I/O (CACHED).
    let manual = client(
        "types-manual",
        DurableDictProvider::new(dict(&space, SyncPolicy::Manual).await),
    )
    .await;
    let on = manual.get_bool_details("on", None, None).await.unwrap();
    assert!(on.value);
    assert_eq!(on.reason, Some(EvaluationReason::Cached));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_flipped_by_another_writer_and_its_event() {
    let space = keyspace();
    let writer = dict(&space, SyncPolicy::Manual).await;
    writer.insert("new-checkout", json!(false)).await.unwrap();
    let provider = DurableDictProvider::new(dict(&space, SyncPolicy::Always).await);
    let mut changes = provider.configuration_changes().await.unwrap();
    let client = client("flip", provider).await;
    assert!(
        !client
            .get_bool_value("new-checkout", None, None)
            .await
            .unwrap()
    );

    writer.insert("new-checkout", json!(true)).await.unwrap();
    // `Always`: the next evaluation sees it.
    assert!(
        client
            .get_bool_value("new-checkout", None, None)
            .await
            .unwrap()
    );
    let event = tokio::time::timeout(Duration::from_secs(5), changes.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.flags_changed, vec!["new-checkout".to_string()]);
}

#[tokio::test(flavor = "current_thread")]
async fn not_ready_while_the_store_cannot_be_reached_at_start() {
    // Nothing listens on the first URL; later it points at the real server.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("redis://{}", listener.local_addr().unwrap())
    };
    let url = Arc::new(Mutex::new(dead));
    let space = keyspace();
    let provider = DurableDictProvider::connect_retrying(
        {
            let (url, space) = (Arc::clone(&url), space.clone());
            move || {
                let url = url.lock().unwrap().clone();
                Ok(
                    AsyncDict::builder(RedisStore::open(&url, &space)?, Json::new())
                        .policy(SyncPolicy::Always),
                )
            }
        },
        Duration::from_millis(50),
    );
    let watcher = provider.clone();
    let client = client("not-ready", provider).await;
    assert_eq!(
        watcher.status(),
        ProviderStatus::Error,
        "the first attempt failed"
    );
    let err = client.get_bool_details("on", None, None).await.unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::ProviderNotReady);

    dict(&space, SyncPolicy::Manual)
        .await
        .insert("on", json!(true))
        .await
        .unwrap();
    *url.lock().unwrap() = server_url();
    let deadline = Instant::now() + Duration::from_secs(10);
    while watcher.status() != ProviderStatus::Ready {
        assert!(Instant::now() < deadline, "the provider never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.get_bool_value("on", None, None).await.unwrap());
}

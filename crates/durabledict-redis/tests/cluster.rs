//! On a cluster: the hash-tagged layout, Python's numbering, and batch writes in one slot.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Target, cluster_urls, keyspace};
use durabledict_core::{DurableDict, Raw, Store};
use durabledict_redis::RedisStore;

#[test]
fn hash_tagged_keys_python_numbering_and_batches() {
    let ks = keyspace("cluster");
    let store = RedisStore::cluster_builder(cluster_urls(), &ks)
        .build()
        .unwrap();
    assert_eq!(store.hash_key(), format!("{{{ks}}}"));
    assert_eq!(store.stamp_key(), format!("{{{ks}}}last_updated"));

    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    dict.insert("a", "1".into()).unwrap();
    dict.insert("b", "2".into()).unwrap();
    let mut raw = Target::Cluster(cluster_urls()).raw();
    let stamp: String = redis::cmd("GET")
        .arg(store.stamp_key())
        .query(&mut *raw)
        .unwrap();
    assert_eq!(stamp, "3");

    let values: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| (format!("k{i}"), vec![b'v'; i % 7]))
        .collect();
    let batch: Vec<(&str, &[u8])> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(store.persist_many(&batch).unwrap(), Some(4));
    assert_eq!(store.durables().unwrap().entries.len(), 3002);
    assert_eq!(dict.len().unwrap(), 3002);
}

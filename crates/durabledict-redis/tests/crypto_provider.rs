//! A library changes no global state it does not need: building stores, and using one that
//! does not speak TLS, leaves rustls' process-wide crypto provider alone (issue 11). Its own
//! test binary, so that no other test's TLS connection installs one first.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

mod common;

use common::{keyspace, server_url};
use durabledict_core::Store;
use durabledict_redis::RedisStore;
use rustls::crypto::CryptoProvider;

#[test]
fn no_crypto_provider_is_installed_before_a_tls_connection() {
    let plain = RedisStore::open(&server_url(), &keyspace("plain")).unwrap();
    plain.init().unwrap();
    plain.persist("k", b"v").unwrap();
    let _tls = RedisStore::open("rediss://127.0.0.1:1/", "never-connected").unwrap();
    let _cluster = RedisStore::cluster_builder(["redis://127.0.0.1:1/"], "never-connected")
        .build()
        .unwrap();
    assert!(
        CryptoProvider::get_default().is_none(),
        "a store installed a process-wide crypto provider"
    );
}

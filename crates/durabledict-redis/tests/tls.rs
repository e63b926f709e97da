//! `rediss://` against a TLS-only `redis-server` with a certificate authority made for the
//! test (by the `openssl` command): the CA given to the builder, mutual TLS with a client
//! certificate, and refusal of a server the system's roots do not vouch for. Feature `tls`.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::keyspace;
use durabledict_core::{DurableDict, Raw, Store, StoreErrorKind};
use durabledict_redis::RedisStore;
use durabledict_test_servers::{RedisServer, free_port};

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

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=durabledict test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat(),
    );
    for (name, usage, san) in [
        ("server", "serverAuth", "subjectAltName=IP:127.0.0.1"),
        ("client", "clientAuth", "subjectAltName=DNS:client"),
    ] {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(
            dir.join(&ext),
            format!("{san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[test]
fn rediss_with_the_test_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    let args: Vec<String> = [
        "--bind",
        "127.0.0.1",
        "--tls-port",
        &port.to_string(),
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
        "--tls-auth-clients",
        "yes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Ready once it answers PING on its plain port; the TLS listener opened before that.
    let _server = RedisServer::start_with_args(args)
        .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let url = format!("rediss://127.0.0.1:{port}/");

    let store = RedisStore::builder(&url, &keyspace("tls"))
        .tls_root_certificate(read("ca.crt"))
        .tls_client_certificate(read("client.crt"), read("client.key"))
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    dict.insert("k", "over TLS".into()).unwrap();
    assert_eq!(store.durables().unwrap().entries["k"], b"over TLS");

    // The feed connects over TLS too, with the same certificates: a Watch dict on another
    // handle hears the write and is then served locally.
    let watch_store = RedisStore::builder(&url, store.keyspace())
        .tls_root_certificate(read("ca.crt"))
        .tls_client_certificate(read("client.crt"), read("client.key"))
        .build()
        .unwrap();
    let feed = watch_store.feed().unwrap();
    let watch = DurableDict::<String>::builder(watch_store, Raw)
        .policy(durabledict_core::SyncPolicy::Watch)
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !feed.state().is_up() {
        assert!(
            std::time::Instant::now() < deadline,
            "the TLS feed never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before = feed.state();
    dict.insert("k", "heard".into()).unwrap();
    assert_ne!(feed.state(), before);
    assert_eq!(
        watch.get("k").unwrap().as_deref().map(String::as_str),
        Some("heard")
    );

    // Without the client certificate the server refuses the handshake.
    let no_client = RedisStore::builder(&url, "tls")
        .tls_root_certificate(read("ca.crt"))
        .build()
        .unwrap();
    let error = no_client.last_updated().unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");

    // The system's roots do not know the test CA: the client refuses the server.
    let system_roots = RedisStore::open(&url, "tls").unwrap();
    let error = system_roots.last_updated().unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
    assert!(
        durabledict_core::Report(&error)
            .to_string()
            .contains("the TLS handshake with 127.0.0.1:")
            && durabledict_core::Report(&error)
                .to_string()
                .contains("certificate"),
        "{error}"
    );
}

/// `rediss://` pointed at a server that speaks plain text on that port: the error says the TLS
/// handshake failed and why, promptly, instead of the client's "Resource temporarily
/// unavailable (os error 11)" after the connect timeout.
#[test]
fn rediss_to_a_plain_text_server_says_the_handshake_failed_and_why() {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let url = format!("rediss://127.0.0.1:{}/", server.port());
    // The TLS hello holds random bytes: a newline among them makes the server answer (an
    // error rustls cannot read) instead of waiting. Both ways must say the same.
    for _ in 0..4 {
        let store = RedisStore::builder(&url, "plain")
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let started = Instant::now();
        let error = store.last_updated().unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let message = durabledict_core::Report(&error).to_string();
        assert!(
            message.contains(&format!(
                "the TLS handshake with 127.0.0.1:{} failed",
                server.port()
            )) && message.contains("plain text"),
            "{message}"
        );
        assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
    }
}

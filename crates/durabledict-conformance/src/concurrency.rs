//! Properties under concurrency: threads writing and reading at once converge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use durabledict_core::SyncPolicy;

use crate::fixture::Fixture;
use crate::harness::{Keyspace, contents, store_contents};

/// Threads writing through several dicts (and one dict shared by two threads) while others
/// read: no operation fails, and afterwards every dict holds exactly what the store holds.
pub fn concurrent_writers_converge(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    if !ks.caps().concurrent_writes {
        return;
    }
    let shared = Arc::new(ks.dict(SyncPolicy::Always));
    let own: Vec<_> = (0..2)
        .map(|_| Arc::new(ks.dict(SyncPolicy::Always)))
        .collect();
    let writers: Vec<_> = [Arc::clone(&shared), Arc::clone(&shared)]
        .into_iter()
        .chain(own.iter().cloned())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        for dict in [Arc::clone(&shared), Arc::clone(&own[0])] {
            let stop = Arc::clone(&stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for key in ["k0", "k1", "k2"] {
                        // A value, when present, is one some writer wrote for this key.
                        if let Some(v) = dict.get(key).expect("concurrent read") {
                            assert!(v.starts_with(&format!("{key}=")), "{key} held {v}");
                        }
                    }
                }
            });
        }
        let handles: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(w, dict)| {
                scope.spawn(move || {
                    for i in 0..40 {
                        let key = format!("k{}", (i + w) % 5);
                        match i % 7 {
                            3 => {
                                dict.remove(&key).expect("concurrent remove");
                            }
                            5 => {
                                dict.setdefault(&key, format!("{key}=sd{w}"))
                                    .expect("concurrent setdefault");
                            }
                            _ => dict
                                .insert(&key, format!("{key}=w{w}i{i}"))
                                .expect("concurrent insert"),
                        }
                    }
                })
            })
            .collect();
        // Stop the readers before reporting a writer's failure: a panic here while they spin
        // would leave the scope waiting for them forever.
        let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        stop.store(true, Ordering::Relaxed);
        for result in joined {
            if let Err(panic) = result {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let truth = store_contents(&*ks.store());
    for (i, dict) in std::iter::once(&shared).chain(&own).enumerate() {
        ks.eventually(&format!("dict {i} converges to the store"), || {
            contents(dict) == truth
        });
    }
}

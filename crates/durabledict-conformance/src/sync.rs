//! Properties of syncing between dicts: policies, several instances, stamp loss, own writes.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Raw, SyncPolicy};

use crate::fixture::{Fixture, Visibility};
use crate::harness::{Keyspace, contents, pairs, read};

/// `Always`: while the stamp does not change the dict keeps its cache, even when the store's
/// contents differ; once the stamp changes, the next read reloads (reference 13).
pub fn always_follows_the_stamp(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    dict.insert("k", "cached".into()).expect("insert");
    if ks.write_unstamped("k", b"behind") {
        assert_eq!(read(&dict, "k").as_deref(), Some("cached"));
    }
    let other = ks.dict(SyncPolicy::Always);
    other.insert("j", "new".into()).expect("insert");
    ks.eventually("an Always dict sees a stamped change", || {
        read(&dict, "j").as_deref() == Some("new")
    });
    if ks.caps().visibility == Visibility::Immediate {
        assert_eq!(
            read(&dict, "k"),
            read(&other, "k"),
            "a reload takes the store's contents"
        );
    }
}

/// `Manual`: another handle's writes are not seen until `sync()`, which reports that it
/// reloaded (reference 14).
pub fn manual_waits_for_sync(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Manual);
    let other = ks.dict(SyncPolicy::Always);
    other.insert("k", "v".into()).expect("insert");
    assert_eq!(
        read(&dict, "k"),
        None,
        "a Manual dict must not sync on reads"
    );
    ks.eventually("sync() reloads", || {
        dict.sync().expect("sync");
        read(&dict, "k").as_deref() == Some("v")
    });
    assert!(
        !dict.sync().expect("sync"),
        "nothing changed since the last sync"
    );
    // Own writes are seen at once under Manual too.
    dict.insert("mine", "1".into()).expect("insert");
    assert_eq!(read(&dict, "mine").as_deref(), Some("1"));
}

/// Bounded staleness: a change is seen no later than the interval after it, and reads in
/// between do not check.
pub fn bounded_staleness(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let interval = Duration::from_millis(200);
    let dict = ks.dict(SyncPolicy::AtMostEvery(interval));
    let other = ks.dict(SyncPolicy::Always);
    assert_eq!(read(&dict, "k"), None);
    other.insert("k", "v".into()).expect("insert");
    let written = Instant::now();
    let bound = interval
        + match ks.caps().visibility {
            Visibility::Immediate => Duration::from_millis(100),
            Visibility::Within(d) => d,
        };
    loop {
        if read(&dict, "k").as_deref() == Some("v") {
            break;
        }
        assert!(
            written.elapsed() < bound,
            "a change must be seen within the interval"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Two dicts on different keyspaces share neither values nor stamps (reference 15).
pub fn keyspaces_are_isolated(fixture: &dyn Fixture) {
    let a = Keyspace::new(fixture);
    let b = Keyspace::new(fixture);
    let da = a.dict(SyncPolicy::Always);
    let db = b.dict(SyncPolicy::Always);
    let stamp_b = db.last_updated().expect("stamp");
    da.insert("k", "a".into()).expect("insert");
    assert_eq!(read(&db, "k"), None);
    assert_eq!(db.last_updated().expect("stamp"), stamp_b);
    db.insert("k", "b".into()).expect("insert");
    assert_eq!(read(&da, "k").as_deref(), Some("a"));
    assert_eq!(read(&db, "k").as_deref(), Some("b"));
}

/// Several dicts on one keyspace, each writing, all converge to the same contents.
pub fn instances_converge(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dicts: Vec<DurableDict<String>> = (0..3).map(|_| ks.dict(SyncPolicy::Always)).collect();
    for (i, dict) in dicts.iter().enumerate() {
        dict.insert(&format!("k{i}"), format!("v{i}"))
            .expect("insert");
        dict.insert("shared", format!("from {i}")).expect("insert");
    }
    dicts[0].remove("k0").expect("remove");
    let want = pairs(&[("k1", "v1"), ("k2", "v2"), ("shared", "from 2")]);
    for (i, dict) in dicts.iter().enumerate() {
        ks.eventually(&format!("dict {i} converges"), || contents(dict) == want);
    }
}

/// When the stamp is lost (eviction, restart, deletion) every dict reloads once, and a write
/// made after the loss is seen by every dict.
pub fn stamp_loss_recovery(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let a = ks.dict(SyncPolicy::Always);
    let b = ks.dict(SyncPolicy::Always);
    a.insert("k", "before".into()).expect("insert");
    ks.eventually("b sees the first write", || {
        read(&b, "k").as_deref() == Some("before")
    });
    if !ks.lose_stamp() {
        return;
    }
    // Reads keep working while the stamp is missing.
    assert_eq!(read(&a, "k").as_deref(), Some("before"));
    let reloads = b.status().reloads;
    assert_eq!(read(&b, "k").as_deref(), Some("before"));
    assert_eq!(read(&b, "k").as_deref(), Some("before"));
    assert!(
        b.status().reloads <= reloads + 1,
        "a missing stamp makes a dict reload once, not on every read"
    );
    // The next write re-creates the stamp; both dicts see it.
    a.insert("k", "after".into())
        .expect("insert after the loss");
    assert!(
        a.last_updated().expect("stamp").is_some(),
        "the write re-creates the stamp"
    );
    ks.eventually("b sees a write made after the stamp was lost", || {
        read(&b, "k").as_deref() == Some("after")
    });
    assert_eq!(read(&a, "k").as_deref(), Some("after"));
    // And a third write after another loss too: re-created stamps never repeat old values.
    assert!(ks.lose_stamp());
    b.insert("k", "third".into()).expect("insert");
    ks.eventually("a sees a write after a second loss", || {
        read(&a, "k").as_deref() == Some("third")
    });
}

/// A dict's own writes are applied without reloading the store, whatever its size.
pub fn own_writes_do_not_reload(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let (store, loads) = ks.counting_store();
    let dict = DurableDict::<String>::builder(store, Raw)
        .build()
        .expect("build");
    let after_build = loads.load(Ordering::SeqCst);
    dict.insert("a", "1".into()).expect("insert");
    dict.insert("a", "2".into()).expect("insert");
    dict.update([("b", "3".to_string()), ("c", "4".to_string())])
        .expect("update");
    dict.setdefault("d", "5".into()).expect("setdefault");
    dict.remove("c").expect("remove");
    dict.pop("d").expect("pop");
    assert_eq!(contents(&dict), pairs(&[("a", "2"), ("b", "3")]));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        after_build,
        "own writes must not reload the store"
    );
    // Another writer in between: the next own write (or read) reloads, once.
    let other = ks.dict(SyncPolicy::Always);
    other.insert("x", "9".into()).expect("insert");
    dict.insert("a", "3".into()).expect("insert");
    ks.eventually("the other writer's key is seen", || {
        read(&dict, "x").as_deref() == Some("9")
    });
    assert_eq!(read(&dict, "a").as_deref(), Some("3"));
    assert!(loads.load(Ordering::SeqCst) > after_build);
}

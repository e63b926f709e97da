//! Properties of single-dict operations: the reference suite's items 1–12 and the batch
//! operations it lacked.

use std::sync::Arc;

use durabledict_core::{DurableDict, Encoding, Error, Raw, SyncPolicy};

use crate::fixture::Fixture;
use crate::harness::{Keyspace, Typed, TypedEncoding, contents, pairs, read, store_contents};

/// Two keys set are read back (reference 1).
pub fn set_and_get(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    dict.insert("foo", "bar".into()).expect("insert foo");
    dict.insert("buzz", "foogle".into()).expect("insert buzz");
    assert_eq!(read(&dict, "foo").as_deref(), Some("bar"));
    assert_eq!(read(&dict, "buzz").as_deref(), Some("foogle"));
    assert_eq!(dict.len().expect("len"), 2);
}

/// Overwriting a key makes the new value read (reference 2).
pub fn overwrite(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    dict.insert("foo", "bar".into()).expect("insert");
    dict.insert("foo", "baz".into()).expect("overwrite");
    assert_eq!(read(&dict, "foo").as_deref(), Some("baz"));
    assert_eq!(store_contents(&*ks.store()), pairs(&[("foo", "baz")]));
}

/// A removed key is missing afterwards, in the dict and in the store (reference 3, 4).
pub fn remove(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    dict.insert("foo", "bar".into()).expect("insert");
    let removed = dict.remove("foo").expect("remove");
    assert_eq!(removed.as_deref().map(String::as_str), Some("bar"));
    assert_eq!(read(&dict, "foo"), None);
    assert!(!dict.contains_key("foo").expect("contains_key"));
    assert!(store_contents(&*ks.store()).is_empty());
    assert_eq!(dict.remove("foo").expect("remove absent"), None);
}

/// Writes and removals reach the store itself, not only the cache (reference 4).
pub fn writes_reach_store(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    let observer = ks.store();
    dict.insert("a", "1".into()).expect("insert");
    assert_eq!(observer.get("a").expect("store get"), Some(b"1".to_vec()));
    dict.remove("a").expect("remove");
    assert_eq!(observer.get("a").expect("store get"), None);
}

/// Structured values with non-ASCII text round-trip through insert, setdefault and pop
/// (reference 5).
pub fn typed_values(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let build = || {
        DurableDict::builder(ks.store(), TypedEncoding)
            .build()
            .expect("build typed dict")
    };
    let dict = build();
    let value = Typed::sample();
    dict.insert("complex", value.clone()).expect("insert");
    assert_eq!(*dict.get("complex").expect("get").expect("present"), value);
    // A new dict decodes what the first stored.
    assert_eq!(
        *build().get("complex").expect("get").expect("present"),
        value
    );
    let via_default = dict.setdefault("other", value.clone()).expect("setdefault");
    assert_eq!(*via_default, value);
    assert_eq!(*dict.pop("other").expect("pop"), value);
    assert_eq!(dict.len().expect("len"), 1);
}

/// `setdefault` inserts and returns the default when absent; returns the existing value and
/// leaves it unchanged (and the stamp unbumped) when present (reference 6, 18).
pub fn setdefault(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    assert_eq!(
        *dict.setdefault("k", "first".into()).expect("setdefault"),
        "first"
    );
    let stamp = dict.last_updated().expect("stamp");
    assert_eq!(
        *dict.setdefault("k", "second".into()).expect("setdefault"),
        "first"
    );
    assert_eq!(
        dict.last_updated().expect("stamp"),
        stamp,
        "setdefault on a present key must not bump the stamp"
    );
    assert_eq!(read(&dict, "k").as_deref(), Some("first"));
    assert_eq!(store_contents(&*ks.store()), contents(&dict));
}

/// A new dict starts with what the store already holds (reference 7).
pub fn loads_existing(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let writer = ks.dict(SyncPolicy::Always);
    writer.insert("x", "1".into()).expect("insert");
    writer.insert("y", "2".into()).expect("insert");
    let reader = ks.dict(SyncPolicy::Manual);
    assert_eq!(contents(&reader), pairs(&[("x", "1"), ("y", "2")]));
}

/// The stamp is set right after a dict is built and changes after every write and removal
/// (reference 8; strictly growing within one stamp's life).
pub fn stamp_changes_on_writes(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    let mut last = dict
        .last_updated()
        .expect("stamp")
        .expect("stamp set after build");
    for step in 0..3 {
        dict.insert("k", format!("v{step}")).expect("insert");
        let now = dict.last_updated().expect("stamp").expect("stamp set");
        assert!(now > last, "insert must raise the stamp ({last} -> {now})");
        last = now;
    }
    dict.remove("k").expect("remove");
    let now = dict.last_updated().expect("stamp").expect("stamp set");
    assert!(now > last, "remove must raise the stamp ({last} -> {now})");
    // Building another dict never bumps an existing stamp.
    let _other = ks.dict(SyncPolicy::Always);
    assert_eq!(dict.last_updated().expect("stamp"), Some(now));
}

/// `pop` returns and removes; a missing key is `KeyNotFound` without a default and the
/// default with one, a falsy default included (reference 9).
pub fn pop(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    dict.insert("k", "v".into()).expect("insert");
    assert_eq!(*dict.pop("k").expect("pop"), "v");
    // A fresh handle each time: a long-lived one may lag behind under eventual visibility.
    ks.eventually("the store agrees with the dict", || {
        store_contents(&*ks.store()) == contents(&dict)
    });
    match dict.pop("k") {
        Err(Error::KeyNotFound { key }) => assert_eq!(key, "k"),
        other => panic!("pop of a missing key must be KeyNotFound, got {other:?}"),
    }
    assert_eq!(*dict.pop_or("k", String::new()).expect("pop_or"), "");
    assert_eq!(*dict.pop_or("k", "dflt".into()).expect("pop_or"), "dflt");
    assert!(store_contents(&*ks.store()).is_empty());
    // A pop that removed nothing does not bump the stamp.
    let stamp = dict.last_updated().expect("stamp");
    dict.pop_or("k", "x".into()).expect("pop_or");
    assert_eq!(dict.last_updated().expect("stamp"), stamp);
}

/// `get` returns the value or the default and removes nothing (reference 10).
pub fn get_default(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    assert_eq!(dict.get("k").expect("get"), None);
    assert_eq!(*dict.get_or("k", "d".into()).expect("get_or"), "d");
    dict.insert("k", "v".into()).expect("insert");
    assert_eq!(*dict.get_or("k", "d".into()).expect("get_or"), "v");
    assert_eq!(read(&dict, "k").as_deref(), Some("v"));
}

/// Membership is about keys, not values (reference 11).
pub fn contains_key(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    assert!(!dict.contains_key("k").expect("contains"));
    dict.insert("k", "value".into()).expect("insert");
    assert!(dict.contains_key("k").expect("contains"));
    assert!(!dict.contains_key("value").expect("contains"));
}

/// The encoding given at construction is what the store holds, and bytes another encoding
/// cannot read are a decode error naming the key, for that key only (reference 12, 19).
pub fn encoding_is_used(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let typed = DurableDict::builder(ks.store(), TypedEncoding)
        .build()
        .expect("build");
    typed.insert("t", Typed::sample()).expect("insert");
    let stored = ks.store().get("t").expect("store get").expect("stored");
    assert!(
        stored.starts_with(crate::harness::TYPED_MAGIC.as_bytes()),
        "the store must hold the custom encoding's bytes"
    );
    // Another program writes something this encoding cannot read.
    let raw = DurableDict::<Vec<u8>>::builder(ks.store(), Raw)
        .build()
        .expect("build");
    raw.insert("bad", b"\xffnot typed".to_vec())
        .expect("insert");
    ks.eventually(
        "a read after the foreign write reports the undecodable key",
        || match typed.get("bad") {
            Err(Error::Decode { key, .. }) => {
                assert_eq!(key, "bad", "the decode error names the key");
                true
            }
            // Not propagated yet (eventual visibility).
            Ok(None) => false,
            other => panic!("an undecodable value must be a Decode error naming it, got {other:?}"),
        },
    );
    assert_eq!(
        typed
            .get("t")
            .expect("the other key still reads")
            .as_deref(),
        Some(&Typed::sample()),
    );
    assert_eq!(
        typed
            .status()
            .undecodable
            .first()
            .map(|(key, _)| key.as_str()),
        Some("bad"),
    );
    raw.remove("bad").expect("remove");
    ks.eventually("the bad key is gone once removed elsewhere", || {
        matches!(typed.get("bad"), Ok(None)) && typed.status().undecodable.is_empty()
    });
}

/// A value that cannot be decoded poisons only its key: a dict builds on a keyspace holding
/// one, reads every other key, reloads after other changes, reports it in `status()`, and is
/// healed by another program's rewrite and by its own write.
pub fn undecodable_value_poisons_only_its_key(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let raw = DurableDict::<Vec<u8>>::builder(ks.store(), Raw)
        .build()
        .expect("build");
    let good = TypedEncoding.encode(&Typed::sample()).expect("encode");
    raw.update([
        ("good", good.clone()),
        ("bad1", b"\xffgarbage".to_vec()),
        ("bad2", b"\x80\x05 a newer pickle".to_vec()),
    ])
    .expect("update");
    let typed = DurableDict::builder(ks.store(), TypedEncoding)
        .build()
        .expect("a dict builds on a keyspace holding undecodable values");
    assert_eq!(
        typed.get("good").expect("get").as_deref(),
        Some(&Typed::sample())
    );
    assert!(matches!(typed.get("bad1"), Err(Error::Decode { key, .. }) if key == "bad1"));
    assert_eq!(
        typed.len().expect("len"),
        1,
        "len leaves undecodable keys out"
    );
    let listed: Vec<String> = typed
        .status()
        .undecodable
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(listed, ["bad1", "bad2"]);

    // Reloads keep working, and another program's rewrite heals its key.
    raw.insert("bad1", good.clone()).expect("rewrite");
    ks.eventually(
        "a rewrite elsewhere heals the key",
        || matches!(typed.get("bad1"), Ok(Some(v)) if *v == Typed::sample()),
    );
    assert!(matches!(typed.get("bad2"), Err(Error::Decode { .. })));
    // An own write heals it at once.
    typed.insert("bad2", Typed::sample()).expect("own write");
    assert_eq!(
        typed.get("bad2").expect("get").as_deref(),
        Some(&Typed::sample())
    );
    assert!(typed.status().undecodable.is_empty());
    assert_eq!(typed.len().expect("len"), 3);
}

/// Batch update writes every entry, and another dict sees all of them at once.
pub fn update_batch(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    let other = ks.dict(SyncPolicy::Always);
    let before = dict.last_updated().expect("stamp");
    dict.update([
        ("a", "1".to_string()),
        ("b", "2".to_string()),
        ("c", "3".to_string()),
    ])
    .expect("update");
    assert_ne!(dict.last_updated().expect("stamp"), before);
    let want = pairs(&[("a", "1"), ("b", "2"), ("c", "3")]);
    assert_eq!(contents(&dict), want);
    ks.eventually("another dict sees the whole batch", || {
        contents(&other) == want
    });
    assert_eq!(store_contents(&*ks.store()), want);
    dict.update(Vec::<(String, String)>::new())
        .expect("empty update");
    assert_eq!(contents(&dict), want);
}

/// `clear` empties the dict and the store.
pub fn clear(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    dict.update([("a", "1".to_string()), ("b", "2".to_string())])
        .expect("update");
    dict.clear().expect("clear");
    assert!(dict.is_empty().expect("is_empty"));
    assert!(store_contents(&*ks.store()).is_empty());
    dict.clear().expect("clear of an empty dict");
}

/// `keys`, `values`, `iter` and `snapshot` agree with each other, and a snapshot does not
/// change under later writes.
pub fn views_and_snapshots(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    dict.update([("a", "1".to_string()), ("b", "2".to_string())])
        .expect("update");
    let mut keys = dict.keys().expect("keys");
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    let mut values: Vec<String> = dict
        .values()
        .expect("values")
        .iter()
        .map(|v| (**v).clone())
        .collect();
    values.sort();
    assert_eq!(values, ["1", "2"]);
    let snapshot = dict.snapshot().expect("snapshot");
    dict.insert("c", "3".into()).expect("insert");
    dict.remove("a").expect("remove");
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot.get("a").map(|v| v.as_str()), Some("1"));
    assert!(!snapshot.contains_key("c"));
    assert_eq!(contents(&dict), pairs(&[("b", "2"), ("c", "3")]));
}

/// Non-ASCII keys and values, and keys that look like paths or SQL, are ordinary keys.
pub fn unusual_keys(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    let invalid = &ks.caps().invalid_keys;
    let keys = [
        "☃",
        "clé",
        "键",
        "emoji 🚀",
        "with space",
        "quote'\"",
        "semi;colon -- comment",
        "a.b:c",
        "%s %d {}",
        "x",
    ];
    for key in keys.iter().filter(|k| !invalid.iter().any(|i| i == *k)) {
        dict.insert(key, format!("value of {key} ✓"))
            .unwrap_or_else(|e| panic!("insert {key:?}: {e}"));
    }
    let reader = ks.dict(SyncPolicy::Always);
    for key in keys.iter().filter(|k| !invalid.iter().any(|i| i == *k)) {
        let want = format!("value of {key} ✓");
        assert_eq!(
            read(&reader, key).as_deref(),
            Some(want.as_str()),
            "key {key:?}"
        );
    }
}

/// Keys the store cannot hold and values over its limit are typed errors naming the key, and
/// nothing is written.
pub fn invalid_input(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Always);
    let stamp = dict.last_updated().expect("stamp");
    for key in ks.caps().invalid_keys.clone() {
        match dict.insert(&key, "v".into()) {
            Err(Error::InvalidKey { key: named, .. }) => assert_eq!(named, key),
            other => panic!("key {key:?} must be refused as invalid, got {other:?}"),
        }
        match dict.update([
            (key.clone(), "v".to_string()),
            ("ok".to_string(), "v".to_string()),
        ]) {
            Err(Error::InvalidKey { key: named, .. }) => assert_eq!(named, key),
            other => panic!("a batch with key {key:?} must be refused, got {other:?}"),
        }
    }
    if let Some(max) = ks.caps().max_value_len {
        let fits = "x".repeat(max);
        dict.insert("big", fits)
            .expect("a value of exactly the limit fits");
        match dict.insert("bigger", "x".repeat(max + 1)) {
            Err(Error::ValueTooLarge { key, len, max: m }) => {
                assert_eq!((key.as_str(), len, m), ("bigger", max + 1, max));
            }
            other => panic!("a value over the limit must be ValueTooLarge, got {other:?}"),
        }
        dict.remove("big").expect("remove");
    }
    assert!(
        store_contents(&*ks.store()).is_empty(),
        "nothing may be written"
    );
    if ks.caps().invalid_keys.is_empty() && ks.caps().max_value_len.is_none() {
        assert_eq!(dict.last_updated().expect("stamp"), stamp);
    }
}

/// A dict is usable from many threads through an `Arc` (compile-time and run-time check).
pub fn shared_through_arc(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = Arc::new(ks.dict(SyncPolicy::Always));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let dict = Arc::clone(&dict);
            std::thread::spawn(move || {
                dict.insert(&format!("t{i}"), i.to_string())
                    .expect("insert from a thread");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!(dict.len().expect("len"), 4);
}

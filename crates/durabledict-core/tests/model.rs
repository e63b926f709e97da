//! Long random operation sequences against a `HashMap` model, long enough to fold the
//! overlay of own writes into new base maps many times, with a second dict writing in between.

use std::collections::HashMap;

use durabledict_core::{DurableDict, MemoryStore, Raw, SyncPolicy};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Insert(u8, u16),
    Remove(u8),
    Foreign(u8, u16),
    ForeignRemove(u8),
    Clear,
    Snapshot,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..60u8, any::<u16>()).prop_map(|(k, v)| Step::Insert(k, v)),
        4 => (0..60u8).prop_map(Step::Remove),
        1 => (0..60u8, any::<u16>()).prop_map(|(k, v)| Step::Foreign(k, v)),
        1 => (0..60u8).prop_map(Step::ForeignRemove),
        1 => Just(Step::Clear),
        1 => Just(Step::Snapshot),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn dict_matches_model(steps in proptest::collection::vec(step(), 1..400)) {
        let store = MemoryStore::new();
        let dict = DurableDict::<String>::builder(store.clone(), Raw).build().expect("build");
        let foreign = DurableDict::<String>::builder(store, Raw)
            .policy(SyncPolicy::Manual)
            .build()
            .expect("build");
        let mut model: HashMap<String, String> = HashMap::new();
        for step in steps {
            match step {
                Step::Insert(k, v) => {
                    dict.insert(&format!("key{k}"), v.to_string()).expect("insert");
                    model.insert(format!("key{k}"), v.to_string());
                }
                Step::Remove(k) => {
                    let got = dict.remove(&format!("key{k}")).expect("remove");
                    prop_assert_eq!(got.map(|v| (*v).clone()), model.remove(&format!("key{k}")));
                }
                Step::Foreign(k, v) => {
                    foreign.insert(&format!("key{k}"), v.to_string()).expect("insert");
                    model.insert(format!("key{k}"), v.to_string());
                }
                Step::ForeignRemove(k) => {
                    foreign.remove(&format!("key{k}")).expect("remove");
                    model.remove(&format!("key{k}"));
                }
                Step::Clear => {
                    dict.clear().expect("clear");
                    model.clear();
                }
                Step::Snapshot => {
                    let snapshot = dict.snapshot().expect("snapshot");
                    prop_assert_eq!(snapshot.len(), model.len());
                    for (k, v) in &model {
                        prop_assert_eq!(snapshot.get(k).map(|v| v.as_str()), Some(v.as_str()));
                    }
                }
            }
            prop_assert_eq!(dict.len().expect("len"), model.len());
        }
        for k in 0..60u8 {
            let key = format!("key{k}");
            prop_assert_eq!(dict.get(&key).expect("get").map(|v| (*v).clone()), model.get(&key).cloned());
            prop_assert_eq!(dict.contains_key(&key).expect("contains"), model.contains_key(&key));
        }
    }
}

//! The model test: random operation sequences on two dicts, checked against a `HashMap`.

use std::collections::HashMap;

use durabledict_core::{Error, SyncPolicy};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::fixture::{Fixture, Visibility};
use crate::harness::{Keyspace, contents};

#[derive(Debug, Clone)]
enum Step {
    Insert(usize, String),
    Remove(usize),
    Pop(usize),
    PopOr(usize, String),
    SetDefault(usize, String),
    Update(Vec<(usize, String)>),
    Clear,
    Get(usize),
}

const KEYS: [&str; 6] = ["a", "b", "ключ", "☃", "k e y", "z"];

fn step() -> impl Strategy<Value = (bool, Step)> {
    let key = 0..KEYS.len();
    let value = "[a-z☃é0-9]{0,8}";
    let step = prop_oneof![
        4 => (key.clone(), value).prop_map(|(k, v)| Step::Insert(k, v)),
        2 => key.clone().prop_map(Step::Remove),
        1 => key.clone().prop_map(Step::Pop),
        1 => (key.clone(), value).prop_map(|(k, v)| Step::PopOr(k, v)),
        2 => (key.clone(), value).prop_map(|(k, v)| Step::SetDefault(k, v)),
        1 => proptest::collection::vec((key.clone(), value), 0..4).prop_map(Step::Update),
        1 => Just(Step::Clear),
        3 => key.prop_map(Step::Get),
    ];
    (any::<bool>(), step)
}

/// Random sequences of operations, each through one of two dicts on one keyspace, give the
/// same results as the same operations on a `HashMap`, and both dicts end equal to it.
pub fn model(fixture: &dyn Fixture) {
    let caps = fixture.capabilities();
    let mut runner = TestRunner::new(Config {
        cases: caps.model_cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(step(), 1..24), |steps| {
        run_case(fixture, &steps);
        Ok(())
    });
    if let Err(e) = result {
        panic!("model test failed: {e}");
    }
}

fn run_case(fixture: &dyn Fixture, steps: &[(bool, Step)]) {
    let ks = Keyspace::new(fixture);
    let immediate = ks.caps().visibility == Visibility::Immediate;
    let a = ks.dict(SyncPolicy::Always);
    let b = ks.dict(SyncPolicy::Always);
    let mut model: HashMap<String, String> = HashMap::new();
    for (use_b, step) in steps {
        // With eventual visibility, one dict does everything and the other only converges.
        let dict = if *use_b && immediate { &b } else { &a };
        match step {
            Step::Insert(k, v) => {
                dict.insert(KEYS[*k], v.clone()).expect("insert");
                model.insert(KEYS[*k].to_owned(), v.clone());
            }
            Step::Remove(k) => {
                let got = dict.remove(KEYS[*k]).expect("remove").map(|v| (*v).clone());
                assert_eq!(got, model.remove(KEYS[*k]), "remove {:?}", KEYS[*k]);
            }
            Step::Pop(k) => match (dict.pop(KEYS[*k]), model.remove(KEYS[*k])) {
                (Ok(v), Some(m)) => assert_eq!(*v, m),
                (Err(Error::KeyNotFound { .. }), None) => {}
                (got, want) => panic!("pop {:?}: got {got:?}, model {want:?}", KEYS[*k]),
            },
            Step::PopOr(k, d) => {
                let got = dict.pop_or(KEYS[*k], d.clone()).expect("pop_or");
                assert_eq!(*got, model.remove(KEYS[*k]).unwrap_or_else(|| d.clone()));
            }
            Step::SetDefault(k, v) => {
                let got = dict.setdefault(KEYS[*k], v.clone()).expect("setdefault");
                let want = model
                    .entry(KEYS[*k].to_owned())
                    .or_insert_with(|| v.clone());
                assert_eq!(*got, *want);
            }
            Step::Update(entries) => {
                dict.update(entries.iter().map(|(k, v)| (KEYS[*k], v.clone())))
                    .expect("update");
                for (k, v) in entries {
                    model.insert(KEYS[*k].to_owned(), v.clone());
                }
            }
            Step::Clear => {
                dict.clear().expect("clear");
                model.clear();
            }
            Step::Get(k) => {
                let got = dict.get(KEYS[*k]).expect("get").map(|v| (*v).clone());
                assert_eq!(got.as_ref(), model.get(KEYS[*k]), "get {:?}", KEYS[*k]);
            }
        }
    }
    let mut want: Vec<(String, String)> = model.into_iter().collect();
    want.sort();
    assert_eq!(contents(&a), want);
    ks.eventually("the second dict converges to the model", || {
        contents(&b) == want
    });
}

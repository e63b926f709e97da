//! What each fleet writer does, and what the fleet must end with.
//!
//! Every writer runs the same program on its own keys (`w<N>-<round>`, some removed again)
//! and on keys all writers contend for (`shared-<i>`, `first`). Values name their writer and
//! round, so the final contents say whose write won each key. The program runs the same
//! whichever process runs it, so the parent knows every write without being told.

use std::collections::{BTreeMap, BTreeSet};

use durabledict::{HashableValue as Hashable, Value};
use num_bigint::BigInt;

use crate::contents::Dict;

/// Rounds per writer.
pub const ROUNDS: i64 = 20;
/// Keys every writer contends for.
const SHARED: i64 = 3;
/// The key every writer `setdefault`s.
pub const FIRST: &str = "first";

#[derive(Debug, Clone)]
pub enum Op {
    /// Writes the writer's value of `round` at the key.
    Insert(String, i64),
    Remove(String),
    /// One `update` (a batch), of entries as in `Insert`.
    Update(Vec<(String, i64)>),
    /// `setdefault` with the writer's value of `round`.
    SetDefault(String, i64),
}

/// The value writer `worker` writes in `round`: a tuple of what Python holds and JSON has not
/// (a big integer, bytes, a set, a dict with a non-string key). Python builds the same with
/// `PY_VALUE`.
pub fn value(worker: usize, round: i64) -> Value {
    let worker_i64 = i64::try_from(worker).unwrap();
    Value::Tuple(vec![
        Value::String(format!("w{worker}")),
        Value::I64(round),
        Value::Int(BigInt::from(2).pow(70) + round),
        Value::Bytes(vec![
            u8::try_from(worker).unwrap(),
            u8::try_from(round).unwrap(),
            0xff,
        ]),
        Value::Set(BTreeSet::from([
            Hashable::I64(worker_i64),
            Hashable::I64(round),
        ])),
        Value::Dict(BTreeMap::from([
            (Hashable::I64(round), Value::None),
            (Hashable::String("k".into()), Value::F64(1.5)),
        ])),
    ])
}

/// [`value`] in Python.
pub const PY_VALUE: &str = r#"
def value(w, r):
    return ("w%d" % w, r, 2**70 + r, bytes([w, r, 255]), {w, r}, {r: None, "k": 1.5})
"#;

fn own(worker: usize, round: i64) -> String {
    format!("w{worker}-{round}")
}

/// Writer `worker`'s program.
pub fn program(worker: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    for round in 0..ROUNDS {
        ops.push(Op::Insert(own(worker, round), round));
        ops.push(Op::Insert(format!("shared-{}", round % SHARED), round));
        if round % 4 == 3 {
            ops.push(Op::Remove(own(worker, round - 2)));
        }
    }
    ops.push(Op::Update(vec![
        (own(worker, ROUNDS), ROUNDS),
        ("shared-0".into(), ROUNDS),
    ]));
    ops.push(Op::SetDefault(FIRST.into(), ROUNDS + 1));
    ops
}

/// Runs writer `worker`'s program on `dict`; returns what its `setdefault` returned.
pub fn run(dict: &Dict, worker: usize) -> Value {
    let mut first = None;
    for op in program(worker) {
        match op {
            Op::Insert(key, round) => dict.insert(&key, value(worker, round)).unwrap(),
            Op::Remove(key) => {
                let removed = dict.remove(&key).unwrap();
                assert!(removed.is_some(), "{key} was written, then removed");
            }
            Op::Update(entries) => dict
                .update(
                    entries
                        .into_iter()
                        .map(|(key, round)| (key, value(worker, round))),
                )
                .unwrap(),
            Op::SetDefault(key, round) => {
                first = Some((*dict.setdefault(&key, value(worker, round)).unwrap()).clone());
            }
        }
    }
    first.unwrap()
}

/// Checks `got`, the fleet's final contents, against the writers' programs: a key one writer
/// wrote holds exactly its last write (or is absent when that removed it); a contended key
/// holds one writer's last write to it; nothing else is there; every `setdefault` returned
/// what `first` holds. Returns, for each key, the writer and round of the value it holds.
#[track_caller]
pub fn check(
    got: &BTreeMap<String, Value>,
    workers: usize,
    setdefault_answers: &[String],
) -> BTreeMap<String, (usize, i64)> {
    // For each key, each writer's last effect on it: Some(round) written, None removed.
    let mut last: BTreeMap<String, BTreeMap<usize, Option<i64>>> = BTreeMap::new();
    for worker in 0..workers {
        for op in program(worker) {
            let mut effect = |key: String, round| {
                last.entry(key).or_default().insert(worker, round);
            };
            match op {
                Op::Insert(key, round) | Op::SetDefault(key, round) => effect(key, Some(round)),
                Op::Remove(key) => effect(key, None),
                Op::Update(entries) => {
                    for (key, round) in entries {
                        effect(key, Some(round));
                    }
                }
            }
        }
    }
    let stray: Vec<&String> = got.keys().filter(|k| !last.contains_key(*k)).collect();
    assert!(stray.is_empty(), "keys nobody wrote: {stray:?}");

    let mut whose = BTreeMap::new();
    for (key, effects) in &last {
        match got.get(key) {
            None => assert!(
                effects.values().any(Option::is_none),
                "{key} is missing; last writes: {effects:?}"
            ),
            Some(held) => {
                let winner = effects.iter().find_map(|(&worker, round)| {
                    round
                        .filter(|&r| value(worker, r) == *held)
                        .map(|r| (worker, r))
                });
                let winner = winner.unwrap_or_else(|| {
                    panic!("{key} holds {held:?}, which is no writer's last write ({effects:?})")
                });
                whose.insert(key.clone(), winner);
            }
        }
    }
    let first = format!("{:?}", got.get(FIRST).unwrap());
    for answer in setdefault_answers {
        assert_eq!(
            answer, &first,
            "setdefault answers differ from what is stored"
        );
    }
    whose
}

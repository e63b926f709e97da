//! Comparing what dicts hold, across threads and processes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use durabledict::{DurableDict, Value};

pub type Dict = DurableDict<Value>;

/// Everything a dict holds, keys sorted.
pub fn of(dict: &Dict) -> BTreeMap<String, Value> {
    dict.iter()
        .unwrap()
        .map(|(key, value)| (key, (*value).clone()))
        .collect()
}

/// The contents as one line of text, the same in every process for the same contents
/// (`BTreeMap` and `BTreeSet` order, no addresses).
pub fn render(contents: &BTreeMap<String, Value>) -> String {
    format!("{contents:?}")
}

/// Reads `dict` until it holds `want` (rendered), for at most `limit`. Returns how many reads
/// it took and what the last one rendered.
pub fn read_until(dict: &Dict, want: &str, limit: Duration) -> (u32, String) {
    let start = Instant::now();
    let mut reads = 0;
    loop {
        reads += 1;
        let got = render(&of(dict));
        if got == want || start.elapsed() > limit {
            return (reads, got);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that `dict` holds `want`: on the first read for a store whose stamp is read on each
/// read, within `limit` for one told of changes by a feed (ZooKeeper watches).
#[track_caller]
pub fn assert_holds(dict: &Dict, want: &str, fed: bool) {
    let (reads, got) = read_until(dict, want, Duration::from_secs(10));
    assert_eq!(got, want);
    if !fed {
        assert_eq!(reads, 1, "a change was not seen on the first read");
    }
}

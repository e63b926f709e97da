//! Decoding stored pickles against CPython decoding the same bytes in the same run.
//!
//! The baseline is a `python3` process started once, which on each request times
//! `pickle.loads(base64.decodebytes(stored))` (what Python durabledict does for a value) and
//! reports the time; interpreter start-up is not in it. Each `paired:` round asks CPython for
//! one decode, then decodes once here (`DynamicPickle::decode`, the same base64 text), so the
//! machine's load falls on both alike. Target: at most 3× CPython (durabledict issue 14).
//!
//! Cases (made by CPython at start):
//! - `memo_10m_ints`: a list of 10 M ints, each memoized (`K\x01\x94` × 10 M, 30 MB);
//! - `shared_str_100k`: `['x' * 1000] * 100000` (a 200 kB pickle of one memoized string
//!   referenced 100,000 times; CPython shares it, a `PickleValue` must copy it: 100 MB);
//! - `dict_1m`: `{f"key{i}": i for i in range(1_000_000)}`, an ordinary large value;
//! - `bytes_200mb`: one 200 MB `bytes` value;
//! - `stdlib_100k`: 100,000 tuples of an aware `datetime`, a `Decimal` and a `UUID` (the
//!   allowed standard library types, decoded into `Value` with `Pickle<Value>`).
//!
//! Peak memory is not measured here (one process): run
//! `crates/durabledict-encoding/examples/decode_peak.rs` under `/usr/bin/time -v`.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/paired.rs"]
mod paired;
use durabledict::{DynamicPickle, Encoding};
use durabledict_encoding::{Pickle, Value};

const MAKE: &str = r#"
import base64, datetime, decimal, pickle, sys, uuid
out = sys.argv[1]
cases = {
    "memo_10m_ints": b"\x80\x04](" + b"K\x01\x94" * 10_000_000 + b"e.",
    "shared_str_100k": pickle.dumps(["x" * 1000] * 100_000, 5),
    "dict_1m": pickle.dumps({f"key{i}": i for i in range(1_000_000)}, 5),
    "bytes_200mb": pickle.dumps(b"\x01" * 200_000_000, 5),
    "stdlib_100k": pickle.dumps([
        (datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
            + datetime.timedelta(seconds=i), decimal.Decimal(i) / 100, uuid.UUID(int=i))
        for i in range(100_000)], 5),
}
for name, raw in cases.items():
    with open(f"{out}/{name}.b64", "wb") as f:
        f.write(base64.encodebytes(raw))
"#;

const SERVE: &str = r#"
import base64, pickle, sys, time
stored = open(sys.argv[1], "rb").read()
for _ in sys.stdin:
    start = time.perf_counter()
    value = pickle.loads(base64.decodebytes(stored))
    took = time.perf_counter() - start
    del value
    print(took, flush=True)
"#;

const CASES: [&str; 5] = [
    "memo_10m_ints",
    "shared_str_100k",
    "dict_1m",
    "bytes_200mb",
    "stdlib_100k",
];

/// A CPython process that decodes one stored value on request.
struct CPython {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl CPython {
    fn start(stored: &Path) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", SERVE])
            .arg(stored)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 must be installed for this bench (apt-get install python3)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        CPython {
            child,
            stdin,
            stdout,
        }
    }

    fn decode(&mut self) -> Duration {
        self.stdin.write_all(b"go\n").expect("ask python3");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("python3 answers");
        Duration::from_secs_f64(line.trim().parse().expect("python3 printed a time"))
    }
}

impl Drop for CPython {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_cases() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("durabledict-pickle-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let status = Command::new("python3")
        .args(["-c", MAKE])
        .arg(&dir)
        .status()
        .expect("python3 must be installed for this bench (apt-get install python3)");
    assert!(status.success(), "python3 could not write the cases");
    dir
}

fn decode_vs_cpython(c: &mut Criterion) {
    let dir = make_cases();
    let codec = DynamicPickle::new();
    let stdlib = Pickle::<Value>::new();
    for case in CASES {
        // The standard library types need `Value`; the builtins keep `DynamicPickle`, which
        // builds `PickleValue` directly.
        let decode = |stored: &[u8]| {
            if case == "stdlib_100k" {
                drop(black_box(stdlib.decode(stored).expect("decode")));
            } else {
                drop(black_box(codec.decode(stored).expect("decode")));
            }
        };
        let path = dir.join(format!("{case}.b64"));
        let stored = std::fs::read(&path).expect("case");
        let mut cpython = CPython::start(&path);
        let rounds = if case == "shared_str_100k" { 21 } else { 7 };
        paired::paired(
            &format!("decode {case} vs CPython pickle.loads"),
            3.0,
            rounds,
            1,
            |_| cpython.decode(),
            |_| paired::timed(|| decode(&stored)),
        );
        drop(cpython);

        let mut group = c.benchmark_group("pickle_decode");
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(5));
        group.bench_function(case, |b| b.iter(|| decode(black_box(&stored))));
        group.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, decode_vs_cpython);
criterion_main!(benches);

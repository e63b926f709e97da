//! Running the built `durabledict` binary, CPython, and `watch` processes from tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a finished command left.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts success and returns stdout without its final newline.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self.stdout.strip_suffix('\n').unwrap_or(&self.stdout)
    }

    /// Asserts `code`, an empty stdout, a stderr containing `message`, and no panic.
    #[track_caller]
    pub fn fails(&self, code: i32, message: &str) {
        assert_eq!(self.code, code, "exit code: {self:?}");
        assert!(
            self.stderr.contains(message),
            "stderr lacks {message:?}: {self:?}"
        );
        assert!(self.stdout.is_empty(), "stdout should be empty: {self:?}");
        for sign in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(!self.stderr.contains(sign), "a panic: {self:?}");
        }
    }
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Self {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

/// The binary, with the caller's `DURABLEDICT_*` variables removed so that only the test's
/// own options count.
pub fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_durabledict"));
    cmd.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DURABLEDICT_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_BACKTRACE", "1");
    cmd
}

/// Runs `durabledict ARGS` in `dir` and waits for it.
pub fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    run_with(command(dir), args, None)
}

/// Runs `durabledict ARGS` in `dir` like [`run`], but kills it after `timeout` (a command
/// that should exit at once must not hang the test when it does not): its exit code is then
/// -1.
pub fn run_within(dir: &std::path::Path, args: &[&str], timeout: Duration) -> Output {
    let mut child = command(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the durabledict binary");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap().into()
}

/// Runs `cmd ARGS`, feeding `stdin` if given.
pub fn run_with(mut cmd: Command, args: &[&str], stdin: Option<&str>) -> Output {
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run the durabledict binary");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap().into()
}

/// Runs a CPython script with `args` (sys.argv[1:]); fails loudly when python3 is missing or
/// the script fails. Returns its stdout.
#[track_caller]
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for the interop tests (apt-get install python3): {e}")
        });
    assert!(
        out.status.success(),
        "python3 failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The Python values of the interop tests, each with the JSON the CLI prints for it.
pub const PYTHON_VALUES: &str = r#"
VALUES = {
    "text": "☃ snow",
    "int": 42,
    "neg": -7,
    "big": 2**70,
    "float": 1.5,
    "none": None,
    "flag": True,
    "tuple": ("a", 1.5, [1, 2]),
    "list": [1, [2, 3], {"k": "v"}],
    "set": {3, 1, 2},
    "dict": {"b": 1, "a": [None]},
    "intkeys": {1: "one", (2, "x"): None},
    "bytes": b"\x00\xffab",
    "nan": float("nan"),
    "inf": float("-inf"),
    "lookalike": {"$bytes": "AP8="},
}
"#;

/// What `list` prints for [`PYTHON_VALUES`].
pub const PYTHON_VALUES_JSON: &str = concat!(
    r#"{"big":1180591620717411303424,"bytes":{"$bytes":"AP9hYg=="},"dict":{"a":[null],"b":1},"#,
    r#""flag":true,"float":1.5,"inf":{"$float":"-inf"},"int":42,"#,
    r#""intkeys":{"$dict":[[1,"one"],[[2,"x"],null]]},"list":[1,[2,3],{"k":"v"}],"#,
    r#""lookalike":{"$dict":[["$bytes","AP8="]]},"nan":{"$float":"nan"},"neg":-7,"#,
    r#""none":null,"set":[1,2,3],"text":"☃ snow","tuple":["a",1.5,[1,2]]}"#
);

/// A `durabledict watch` process, its stdout lines collected as they come.
pub struct Watcher {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Watcher {
    /// Starts `durabledict ARGS watch WATCH_ARGS` and waits until it has loaded the dict.
    pub fn start(mut cmd: Command, args: &[&str]) -> Watcher {
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start durabledict watch");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let watcher = Watcher {
            child,
            lines,
            stderr,
        };
        watcher.wait_stderr("durabledict: watching", Duration::from_secs(20));
        watcher
    }

    /// The next change line; fails after `timeout`.
    #[track_caller]
    pub fn next_line(&self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(e) => panic!(
                "no watch line within {timeout:?} ({e}); stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Asserts that no change line comes within `wait`.
    #[track_caller]
    pub fn no_line_for(&self, wait: Duration) {
        if let Ok(line) = self.lines.recv_timeout(wait) {
            panic!("unexpected watch line {line}; stderr:\n{}", self.stderr());
        }
    }

    /// Waits until stderr contains `needle`.
    #[track_caller]
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "stderr lacks {needle:?} after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything written on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit by itself (after `--count`), returning its exit code.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < timeout,
                "watch did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keyspace no other test uses (a valid SQL table name, Redis hash, ZooKeeper node).
pub fn keyspace(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

//! Fleet members: this test binary re-executed as separate OS processes, each running only
//! the test that started it, with a job in an environment variable that makes it play a
//! member instead of the parent. Parent and members talk in lines: the member's stdout lines
//! starting with `@e2e `, and its stdin.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

const JOB: &str = "DURABLEDICT_E2E_JOB";
const MARK: &str = "@e2e ";
/// How long a member may take to say the next thing (starting, a whole program on a loaded
/// machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// The job this process was started for, when it is a fleet member.
pub fn job() -> Option<Value> {
    let text = std::env::var(JOB).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// The libtest name of `function` in `module_path` (as `module_path!()` gives it), which
/// `--exact` selects.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, module)) => format!("{module}::{function}"),
        None => function.to_owned(),
    }
}

/// Member side: tells the parent `word` and `rest`.
pub fn say(word: &str, rest: &str) {
    let mut out = std::io::stdout().lock();
    // On a line of its own: libtest may have begun one (`test NAME ... `).
    writeln!(out, "\n{MARK}{word} {rest}").unwrap();
    out.flush().unwrap();
}

/// Member side: the parent's next line.
pub fn hear() -> String {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    line.trim_end_matches('\n').to_owned()
}

/// Parent side: a running member.
pub struct Member {
    name: String,
    child: Child,
    stdin: ChildStdin,
    said: Receiver<String>,
    output: Arc<Mutex<String>>,
}

impl Member {
    /// Starts this binary running only `test`, as a member doing `job`.
    pub fn spawn(test: &str, name: &str, job: &Value) -> Member {
        Self::spawn_with(test, name, job, |_| {})
    }

    /// [`spawn`](Self::spawn), with more set up on the command (a directory, a variable).
    pub fn spawn_with(
        test: &str,
        name: &str,
        job: &Value,
        set_up: impl FnOnce(&mut Command),
    ) -> Member {
        let exe = std::env::current_exe().unwrap();
        let mut command = Command::new(exe);
        set_up(&mut command);
        let mut child = command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(JOB, job.to_string())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, said) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix(MARK) {
                    Some(said) => {
                        let _ = tx.send(said.to_owned());
                    }
                    None => push(&sink, &line),
                }
            }
        });
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                push(&sink, &line);
            }
        });
        let stdin = child.stdin.take().unwrap();
        Member {
            name: name.to_owned(),
            child,
            stdin,
            said,
            output,
        }
    }

    /// Tells the member `line`.
    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The member's next message, which must be `word`; returns what follows it.
    #[track_caller]
    pub fn expect(&mut self, word: &str) -> String {
        match self.said.recv_timeout(PATIENCE) {
            Ok(line) => {
                let (said, rest) = line.split_once(' ').unwrap_or((&line, ""));
                assert_eq!(said, word, "{} said {line:?}", self.name);
                rest.to_owned()
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "{} did not say {word:?} within {PATIENCE:?}; its output:\n{}",
                self.name,
                self.output()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().unwrap();
                panic!(
                    "{} ended ({status}) before saying {word:?}; its output:\n{}",
                    self.name,
                    self.output()
                )
            }
        }
    }

    /// Waits for the member to end, which it must do successfully.
    #[track_caller]
    pub fn finish(mut self) {
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "{} ended with {status}; its output:\n{}",
            self.name,
            self.output()
        );
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // A failed test must not leave members behind; after `finish` this is a no-op.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push(sink: &Mutex<String>, line: &str) {
    let mut text = sink.lock().unwrap();
    text.push_str(line);
    text.push('\n');
}

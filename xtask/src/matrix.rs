//! Reading libtest's output: totals, and the conformance matrix.
//!
//! The conformance crate's macro expands to `mod conformance_<backend> { #[test] fn
//! <property>() … }`, so a conformance test is named `…conformance_<backend>::<property>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Ignored,
}

/// Parses a libtest result line: `test <name> ... ok | FAILED | ignored[, reason]`.
pub fn parse_line(line: &str) -> Option<(String, Outcome)> {
    let line = strip_colour(line);
    let (name, result) = line
        .trim_end()
        .strip_prefix("test ")?
        .rsplit_once(" ... ")?;
    let outcome = match result {
        "ok" => Outcome::Passed,
        "FAILED" => Outcome::Failed,
        r if r.starts_with("ignored") => Outcome::Ignored,
        _ => return None,
    };
    Some((name.to_string(), outcome))
}

/// Removes ANSI escape sequences (`ESC [ … letter`), in case colour was forced.
fn strip_colour(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `(backend, property)` when `name` is a conformance test.
pub fn conformance(name: &str) -> Option<(&str, String)> {
    let segments: Vec<&str> = name.split("::").collect();
    let at = segments
        .iter()
        .position(|s| s.starts_with("conformance_"))?;
    let backend = segments[at].strip_prefix("conformance_")?;
    let property = segments[at + 1..].join("::");
    (!backend.is_empty() && !property.is_empty()).then_some((backend, property))
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub ignored: usize,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Ignored => self.ignored += 1,
        }
    }
}

#[derive(Debug, Default)]
pub struct Row {
    pub counts: Counts,
    pub failed: Vec<String>,
}

/// Everything read from one `cargo test` run.
#[derive(Debug, Default)]
pub struct Tally {
    pub all: Counts,
    pub backends: BTreeMap<String, Row>,
}

impl Tally {
    /// Takes one line of cargo's standard output into account.
    pub fn read(&mut self, line: &str) {
        let Some((name, outcome)) = parse_line(line) else {
            return;
        };
        self.all.add(outcome);
        if let Some((backend, property)) = conformance(&name) {
            let row = self.backends.entry(backend.to_string()).or_default();
            row.counts.add(outcome);
            if outcome == Outcome::Failed {
                row.failed.push(property);
            }
        }
    }

    /// The matrix: `expected` backends first (in that order, shown even without tests), then
    /// any other backend whose conformance tests ran.
    pub fn render(&self, expected: &[&str]) -> String {
        let mut out = String::new();
        if self.backends.is_empty() {
            out.push_str(
                "No conformance test ran (no test named `conformance_<backend>::<property>`).\n",
            );
            return out;
        }
        let others = self
            .backends
            .keys()
            .map(String::as_str)
            .filter(|b| !expected.contains(b));
        let order: Vec<&str> = expected.iter().copied().chain(others).collect();
        let width = order
            .iter()
            .map(|b| b.len())
            .max()
            .unwrap_or(0)
            .max("backend".len());
        let _ = writeln!(out, "Conformance matrix");
        let _ = writeln!(
            out,
            "  {:width$}  {:>6}  {:>6}  {:>7}",
            "backend", "passed", "failed", "ignored"
        );
        for backend in &order {
            match self.backends.get(*backend) {
                Some(row) => {
                    let c = &row.counts;
                    let _ = writeln!(
                        out,
                        "  {backend:width$}  {:>6}  {:>6}  {:>7}",
                        c.passed, c.failed, c.ignored
                    );
                }
                None => {
                    // A backend that only runs paired with others (the memcached stamp under
                    // each SQL store) has rows named after the pairs.
                    let pairs: Vec<&str> = self
                        .backends
                        .keys()
                        .map(String::as_str)
                        .filter(|name| name.split('_').any(|part| part == *backend))
                        .collect();
                    let _ = if pairs.is_empty() {
                        writeln!(out, "  {backend:width$}  no conformance test ran")
                    } else {
                        writeln!(out, "  {backend:width$}  runs paired: {}", pairs.join(", "))
                    };
                }
            }
        }
        let failing: Vec<(&String, &Row)> = self
            .backends
            .iter()
            .filter(|(_, row)| !row.failed.is_empty())
            .collect();
        if !failing.is_empty() {
            let _ = writeln!(out, "Failed properties");
            for (backend, row) in failing {
                let _ = writeln!(out, "  {backend}: {}", row.failed.join(", "));
            }
        }
        out
    }

    pub fn any_failed(&self) -> bool {
        self.all.failed > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_result_lines() {
        let parsed = |line: &str| parse_line(line);
        assert_eq!(
            parsed("test a::b ... ok"),
            Some(("a::b".into(), Outcome::Passed))
        );
        assert_eq!(
            parsed("test a::b ... FAILED"),
            Some(("a::b".into(), Outcome::Failed))
        );
        assert_eq!(
            parsed("test a ... ignored, x"),
            Some(("a".into(), Outcome::Ignored))
        );
        assert_eq!(
            parsed("test src/lib.rs - Foo (line 3) ... ok\r"),
            Some(("src/lib.rs - Foo (line 3)".into(), Outcome::Passed))
        );
        assert_eq!(
            parsed("test a ... \u{1b}[31mFAILED\u{1b}[0m"),
            Some(("a".into(), Outcome::Failed))
        );
        assert_eq!(parsed("test result: ok. 3 passed; 0 failed"), None);
        assert_eq!(parsed("test a ... bench:  12 ns/iter"), None);
        assert_eq!(parsed("running 3 tests"), None);
    }

    #[test]
    fn recognises_conformance_tests() {
        assert_eq!(
            conformance("conformance_redis::get_after_insert"),
            Some(("redis", "get_after_insert".into()))
        );
        assert_eq!(
            conformance("tests::conformance_memory::pop::missing"),
            Some(("memory", "pop::missing".into()))
        );
        assert_eq!(conformance("conformance_redis"), None);
        assert_eq!(conformance("other::test"), None);
    }

    #[test]
    fn a_backend_tested_only_in_pairs_names_its_pairs() {
        let mut tally = Tally::default();
        tally.read("test conformance_sqlite_memcache::pop ... ok");
        tally.read("test conformance_sqlite::pop ... ok");
        let text = tally.render(&["sqlite", "memcache", "zookeeper"]);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} ")))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        };
        assert_eq!(
            line("memcache").as_deref(),
            Some("memcache runs paired: sqlite_memcache")
        );
        assert_eq!(
            line("zookeeper").as_deref(),
            Some("zookeeper no conformance test ran")
        );
    }

    #[test]
    fn tallies_and_renders_the_matrix() {
        let mut tally = Tally::default();
        for line in [
            "test conformance_memory::insert ... ok",
            "test conformance_memory::pop ... ok",
            "test conformance_redis::insert ... ok",
            "test conformance_redis::pop ... FAILED",
            "test unrelated ... ok",
            "test result: FAILED. 4 passed; 1 failed",
        ] {
            tally.read(line);
        }
        assert_eq!(
            tally.all,
            Counts {
                passed: 4,
                failed: 1,
                ignored: 0
            }
        );
        assert!(tally.any_failed());
        let text = tally.render(&["memory", "redis", "sqlite"]);
        assert!(text.contains("memory        2       0        0"), "{text}");
        assert!(text.contains("redis         1       1        0"), "{text}");
        assert!(text.contains("sqlite   no conformance test ran"), "{text}");
        assert!(text.contains("redis: pop"), "{text}");
    }

    #[test]
    fn says_when_no_conformance_test_ran() {
        let mut tally = Tally::default();
        tally.read("test unrelated ... ok");
        assert!(
            tally
                .render(&["memory"])
                .starts_with("No conformance test ran")
        );
    }
}

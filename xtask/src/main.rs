//! `cargo xtask …`: durabledict's one task runner, the same entry point locally and in CI.
//!
//! ```text
//! cargo xtask install [all | <backend>…]
//! cargo xtask test    [all | <backend>…] [--keep-going] [-- <libtest args>…]
//! cargo xtask bench   [all | <backend>… | <bench>…] [-- <bench args>…]
//! ```

mod backends;
mod install;
mod manifest;
mod matrix;

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use backends::{BACKENDS, Backend};
use manifest::Features;
use matrix::Tally;

/// A task that could not be done; the message is for the person at the terminal.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

const USAGE: &str = "\
usage:
  cargo xtask install [all | <backend>…]
      install the Debian packages (servers, client tools, -dev libraries) the backends need
  cargo xtask test [all | <backend>…] [--keep-going] [-- <libtest args>…]
      install, run every test in the workspace with the backends' features, print the
      conformance matrix; --keep-going runs every test binary even after a failure
  cargo xtask bench [all | <backend>… | <bench>…] [-- <bench args>…]
      install, run the benches named benches/<backend>*.rs and those a backend lists (sqlite,
      postgres: benches/sql.rs), or the bench benches/<bench>.rs named (sql), with the
      backends it measures and the features it requires";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("xtask: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Failure(USAGE.to_string()));
    };
    let (ours, passed_on) = match rest.iter().position(|a| a == "--") {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    match command.as_str() {
        "install" => {
            let selection = Selection::parse(ours, false)?;
            install::ensure(&selection.backends)?;
            Ok(ExitCode::SUCCESS)
        }
        "test" => test(&Selection::parse(ours, true)?, passed_on),
        "bench" => bench(ours, passed_on),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(Failure(format!("unknown command `{other}`\n{USAGE}"))),
    }
}

/// The backends named on the command line (all of them when none or `all` is named).
#[derive(Debug)]
struct Selection {
    all: bool,
    backends: Vec<&'static Backend>,
    keep_going: bool,
}

impl Selection {
    fn parse(args: &[String], allow_keep_going: bool) -> Result<Selection> {
        let mut selection = Selection {
            all: false,
            backends: Vec::new(),
            keep_going: false,
        };
        for arg in args {
            match arg.as_str() {
                "all" => selection.all = true,
                "--keep-going" if allow_keep_going => selection.keep_going = true,
                name => match backends::find(name) {
                    Some(backend) if !selection.backends.iter().any(|b| b.name == name) => {
                        selection.backends.push(backend)
                    }
                    Some(_) => {}
                    None => {
                        return Err(Failure(format!(
                            "unknown backend or option `{name}` (backends: {})\n{USAGE}",
                            backends::names()
                        )));
                    }
                },
            }
        }
        if selection.all || selection.backends.is_empty() {
            selection.all = true;
            selection.backends = BACKENDS.iter().collect();
        }
        Ok(selection)
    }

    fn names(&self) -> Vec<&'static str> {
        self.backends.iter().map(|b| b.name).collect()
    }

    /// Adds what the benches to run need: the backends that list a bench named on the command
    /// line (`sql`: SQLite and PostgreSQL), and those whose features a bench requires (its
    /// `required-features`: `cargo bench --bench` refuses a target without them).
    fn add_backends_of(
        &mut self,
        named: &[String],
        benches: &[String],
        required: &std::collections::BTreeMap<String, Vec<String>>,
    ) {
        let listing = BACKENDS
            .iter()
            .filter(|b| named.iter().any(|n| b.benches.contains(&n.as_str())));
        let requiring = benches
            .iter()
            .filter_map(|bench| required.get(bench))
            .flatten()
            .filter_map(|feature| BACKENDS.iter().find(|b| b.feature == Some(feature)));
        for backend in listing.chain(requiring) {
            if !self.backends.iter().any(|b| b.name == backend.name) {
                self.backends.push(backend);
            }
        }
    }
}

fn root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    if std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1") {
        if std::env::var_os("CARGO_TERM_COLOR").is_none() {
            command.env("CARGO_TERM_COLOR", "never");
        }
        // A CI build is compiled once: incremental state would only double its disk use (a
        // full test build ran a shared disk out of space with it).
        if std::env::var_os("CARGO_INCREMENTAL").is_none() {
            command.env("CARGO_INCREMENTAL", "0");
        }
    }
    command
}

/// `--all-features`, or `--features` for the selected backends' features that the root package
/// has (read now, so a backend added later needs no change here).
fn feature_args(selection: &Selection, features: &Features) -> Vec<String> {
    if selection.all {
        return vec!["--all-features".to_string()];
    }
    let (present, absent): (Vec<&str>, Vec<&str>) = selection
        .backends
        .iter()
        .filter_map(|b| b.feature)
        .partition(|feature| features.has(feature));
    for feature in absent {
        println!("xtask: the root Cargo.toml has no feature `{feature}`; testing without it");
    }
    if present.is_empty() {
        Vec::new()
    } else {
        vec!["--features".to_string(), present.join(",")]
    }
}

/// The crate whose smoke tests start every kind of server, whatever backends are selected.
const TEST_SERVERS: &str = "durabledict-test-servers";

/// `--exclude` for the workspace crates that only unselected backends' features pull in, so
/// that `cargo xtask test redis` neither runs the ZooKeeper crate's tests nor needs ZooKeeper
/// installed; and for the test servers' own smoke tests, which need every server.
fn exclude_args(root: &Path, selection: &Selection, features: &Features) -> Vec<String> {
    if selection.all {
        return Vec::new();
    }
    let packages_of = |backends: &mut dyn Iterator<Item = &Backend>| -> Vec<String> {
        backends
            .filter_map(|b| b.feature)
            .flat_map(|feature| features.packages_of(feature))
            .collect()
    };
    let wanted = packages_of(&mut selection.backends.iter().copied());
    let mut unselected = BACKENDS
        .iter()
        .filter(|b| !selection.backends.iter().any(|s| s.name == b.name));
    let mut excluded: Vec<String> = packages_of(&mut unselected)
        .into_iter()
        .filter(|package| !wanted.contains(package))
        .chain([TEST_SERVERS.to_string()])
        .filter(|package| {
            root.join("crates")
                .join(package)
                .join("Cargo.toml")
                .is_file()
        })
        .collect();
    excluded.sort();
    excluded.dedup();
    excluded
        .into_iter()
        .flat_map(|package| ["--exclude".to_string(), package])
        .collect()
}

fn read_features(root: &Path) -> Result<Features> {
    let path = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
    Ok(Features::parse(&text))
}

fn test(selection: &Selection, libtest_args: &[String]) -> Result<ExitCode> {
    install::ensure(&selection.backends)?;
    let root = root();
    let features = read_features(&root)?;
    let mut command = cargo(&root);
    command
        .args(["test", "--workspace"])
        .args(feature_args(selection, &features))
        .args(exclude_args(&root, selection, &features));
    if selection.keep_going {
        command.arg("--no-fail-fast");
    }
    if !libtest_args.is_empty() {
        command.arg("--").args(libtest_args);
    }
    println!("xtask: {}", render(&command));
    warn_if_disk_is_short(&root);

    let mut tally = Tally::default();
    let status = stream(&mut command, |line| tally.read(line))?;

    println!();
    print!("{}", tally.render(&selection.names()));
    let all = &tally.all;
    println!(
        "xtask: {} passed, {} failed, {} skipped",
        all.passed, all.failed, all.ignored
    );
    if !status.success() {
        println!("xtask: cargo test failed ({status})");
    }
    Ok(if status.success() && !tally.any_failed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What a full `cargo xtask test` build takes on disk (2.5 GB measured, with the dev profile's
/// line tables only and no incremental state under CI), with a margin.
const TEST_BUILD_BYTES: u64 = 4 << 30;

/// Says so before building when the file system the build goes to has less room than a test
/// build takes: the build would fail late, with only `No space left on device` to show.
fn warn_if_disk_is_short(root: &Path) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // The nearest directory that exists: `df` needs one.
    let Some(dir) = target.ancestors().find(|dir| dir.is_dir()) else {
        return;
    };
    let Some(free) = Command::new("df")
        .args(["-Pk"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|out| df_available_kib(&String::from_utf8_lossy(&out.stdout)))
        .map(|kib| kib * 1024)
    else {
        return;
    };
    if free < TEST_BUILD_BYTES {
        println!(
            "xtask: warning: {:.1} GiB free where the build goes ({}); a full test build takes \
             about {} GiB: it may fail with `No space left on device`",
            free as f64 / f64::from(1u32 << 30),
            target.display(),
            TEST_BUILD_BYTES >> 30,
        );
    }
}

/// The available KiB in `df -Pk` output: the fourth field of its second line.
fn df_available_kib(df: &str) -> Option<u64> {
    df.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

/// Runs `command`, passing its standard output through line by line (and to `each_line`);
/// standard error goes straight to ours.
fn stream(
    command: &mut Command,
    mut each_line: impl FnMut(&str),
) -> Result<std::process::ExitStatus> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure(format!("cannot run {}: {e}", render(command))))?;
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut out = std::io::stdout();
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let _ = out.write_all(&line);
            let _ = out.flush();
            each_line(String::from_utf8_lossy(&line).trim_end());
            line.clear();
        }
    }
    child
        .wait()
        .map_err(|e| Failure(format!("waiting for {}: {e}", render(command))))
}

fn bench(args: &[String], bench_args: &[String]) -> Result<ExitCode> {
    let root = root();
    let dir = root.join("benches");
    // A bench file named on the command line (`sql`) runs alone, with what it measures.
    let (named, others): (Vec<String>, Vec<String>) = args.iter().cloned().partition(|arg| {
        arg != "all" && backends::find(arg).is_none() && dir.join(format!("{arg}.rs")).is_file()
    });
    let mut selection = if others.is_empty() && !named.is_empty() {
        Selection {
            all: false,
            backends: Vec::new(),
            keep_going: false,
        }
    } else {
        Selection::parse(&others, false)?
    };
    let mut benches = bench_names(&dir, &selection.names());
    benches.extend(named.iter().cloned());
    benches.sort();
    benches.dedup();
    if benches.is_empty() {
        let message = format!(
            "no bench file benches/<backend>*.rs for {}",
            selection.names().join(", ")
        );
        return if selection.all {
            println!("xtask: {message}");
            Ok(ExitCode::SUCCESS)
        } else {
            Err(Failure(message))
        };
    }
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| Failure(format!("cannot read {}: {e}", manifest.display())))?;
    let required = manifest::bench_required_features(&text);
    if !selection.all {
        selection.add_backends_of(&named, &benches, &required);
    }
    install::ensure(&selection.backends)?;
    let features = read_features(&root)?;
    // The root package is the workspace's default member: plain `cargo bench` targets it.
    let mut command = cargo(&root);
    command
        .arg("bench")
        .args(feature_args(&selection, &features));
    for name in &benches {
        command.args(["--bench", name]);
    }
    if !bench_args.is_empty() {
        command.arg("--").args(bench_args);
    }
    println!("xtask: {}", render(&command));
    let status = command
        .status()
        .map_err(|e| Failure(format!("cannot run cargo bench: {e}")))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The bench targets `benches/<backend>*.rs` for the given backends, and those they list
/// ([`Backend::benches`]), sorted.
fn bench_names(dir: &Path, selected: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().into_string().ok()?;
            let stem = file.strip_suffix(".rs")?;
            selected
                .iter()
                .any(|b| {
                    stem.starts_with(b)
                        || backends::find(b).is_some_and(|backend| backend.benches.contains(&stem))
                })
                .then(|| stem.to_string())
        })
        .collect();
    names.sort();
    names
}

fn render(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    std::iter::once(program)
        .chain(command.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn df_output_gives_the_available_kib() {
        let df = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                  /dev/vda         263174212 90140328 159579572      37% /\n";
        assert_eq!(df_available_kib(df), Some(159_579_572));
        assert_eq!(
            df_available_kib("df: /nowhere: No such file or directory\n"),
            None
        );
    }

    #[test]
    fn no_backend_means_all() {
        let selection = Selection::parse(&[], true).expect("parse");
        assert!(selection.all);
        assert_eq!(selection.backends.len(), BACKENDS.len());
    }

    #[test]
    fn selects_named_backends_once() {
        let selection =
            Selection::parse(&args(&["redis", "sqlite", "redis", "--keep-going"]), true)
                .expect("parse");
        assert!(!selection.all && selection.keep_going);
        assert_eq!(selection.names(), ["redis", "sqlite"]);
        assert!(Selection::parse(&args(&["nosql"]), true).is_err());
        assert!(Selection::parse(&args(&["--keep-going"]), false).is_err());
    }

    #[test]
    fn features_only_those_the_root_has() {
        let features = Features::parse("[features]\nredis = [\"dep:durabledict-redis\"]\n");
        let selection = Selection::parse(&args(&["memory", "redis"]), true).expect("parse");
        assert_eq!(feature_args(&selection, &features), ["--features", "redis"]);
        let sqlite = Selection::parse(&args(&["sqlite"]), true).expect("parse");
        assert!(feature_args(&sqlite, &features).is_empty());
        let memory = Selection::parse(&args(&["memory"]), true).expect("parse");
        assert!(feature_args(&memory, &features).is_empty());
        let all = Selection::parse(&args(&["all"]), true).expect("parse");
        assert_eq!(feature_args(&all, &features), ["--all-features"]);
    }

    #[test]
    fn excludes_crates_only_unselected_backends_need() {
        let features = Features::parse(
            "[features]\n\
             redis = [\"dep:durabledict-redis\"]\n\
             sqlite = [\"dep:durabledict-diesel\", \"durabledict-diesel/sqlite\"]\n\
             postgres = [\"dep:durabledict-diesel\", \"durabledict-diesel/postgres\"]\n\
             zookeeper = [\"dep:durabledict-zookeeper\"]\n",
        );
        let dir = std::env::temp_dir().join(format!("xtask-crates-{}", std::process::id()));
        for package in ["durabledict-redis", "durabledict-diesel", TEST_SERVERS] {
            let crate_dir = dir.join("crates").join(package);
            std::fs::create_dir_all(&crate_dir).expect("mkdir");
            std::fs::write(crate_dir.join("Cargo.toml"), "").expect("write");
        }
        let sqlite = Selection::parse(&args(&["sqlite"]), true).expect("parse");
        // durabledict-zookeeper is no workspace member here, so it is not excluded.
        assert_eq!(
            exclude_args(&dir, &sqlite, &features),
            ["--exclude", "durabledict-redis", "--exclude", TEST_SERVERS]
        );
        let all = Selection::parse(&[], true).expect("parse");
        assert!(exclude_args(&dir, &all, &features).is_empty());
        std::fs::remove_dir_all(&dir).expect("rmdir");
    }

    #[test]
    fn finds_benches_by_backend_prefix() {
        let dir = std::env::temp_dir().join(format!("xtask-benches-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for file in ["memory.rs", "redis_read.rs", "redis.rs", "notes.txt"] {
            std::fs::write(dir.join(file), "").expect("write");
        }
        assert_eq!(bench_names(&dir, &["redis"]), ["redis", "redis_read"]);
        assert_eq!(bench_names(&dir, &["memory", "sqlite"]), ["memory"]);
        std::fs::write(dir.join("sql.rs"), "").expect("write");
        std::fs::write(dir.join("postgres_feed.rs"), "").expect("write");
        assert_eq!(bench_names(&dir, &["sqlite"]), ["sql"]);
        assert_eq!(bench_names(&dir, &["postgres"]), ["postgres_feed", "sql"]);
        std::fs::remove_dir_all(&dir).expect("rmdir");
    }

    #[test]
    fn a_bench_brings_the_backends_it_measures_and_requires() {
        let required = manifest::bench_required_features(
            "[[bench]]\nname = \"sql\"\nrequired-features = [\"sqlite\"]\n\n\
             [[bench]]\nname = \"memcache\"\nrequired-features = [\"memcache\", \"sqlite\"]\n",
        );
        let mut postgres = Selection::parse(&args(&["postgres"]), false).expect("parse");
        postgres.add_backends_of(&[], &args(&["postgres_feed", "sql"]), &required);
        assert_eq!(postgres.names(), ["postgres", "sqlite"]);
        let mut sql = Selection {
            all: false,
            backends: Vec::new(),
            keep_going: false,
        };
        sql.add_backends_of(&args(&["sql"]), &args(&["sql"]), &required);
        assert_eq!(sql.names(), ["sqlite", "postgres"]);
        let mut memcache = Selection::parse(&args(&["memcache"]), false).expect("parse");
        memcache.add_backends_of(&[], &args(&["memcache"]), &required);
        assert_eq!(memcache.names(), ["memcache", "sqlite"]);
    }
}

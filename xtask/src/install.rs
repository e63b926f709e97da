//! Installing the Debian packages the selected backends need.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::backends::Backend;
use crate::{Failure, Result};

/// Installs whatever the backends miss, with apt-get when we are root; otherwise fails with the
/// command to run.
pub fn ensure(backends: &[&Backend]) -> Result<()> {
    let missing = missing(backends);
    if missing.is_empty() {
        println!("xtask: every server and library the selected backends need is installed");
        return Ok(());
    }
    let packages: BTreeSet<&str> = missing.iter().map(|(_, package)| *package).collect();
    let packages: Vec<&str> = packages.into_iter().collect();
    println!("xtask: missing {}", describe(&missing));
    let install = format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let can_install = is_root() && Command::new("apt-get").arg("--version").output().is_ok();
    if !can_install {
        return Err(Failure(format!(
            "install the missing packages first, as root:\n    apt-get update && {install}"
        )));
    }
    println!("xtask: apt-get update && {install}");
    // Other sessions may be installing at the same time: wait for dpkg's lock.
    let lock = ["-o", "DPkg::Lock::Timeout=300"];
    run(Command::new("apt-get").args(lock).args(["-q", "update"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(lock)
        .args(["-q", "install", "-y", "--no-install-recommends"])
        .args(&packages))?;

    let still = missing_now(&missing);
    if !still.is_empty() {
        return Err(Failure(format!(
            "still missing after apt-get install: {}",
            describe(&still)
        )));
    }
    Ok(())
}

type Missing = Vec<(crate::backends::Probe, &'static str)>;

fn missing(backends: &[&Backend]) -> Missing {
    let mut seen = BTreeSet::new();
    backends
        .iter()
        .flat_map(|b| b.needs.iter())
        .filter(|need| !need.what.is_present())
        .filter(|need| seen.insert(need.what.describe()))
        .map(|need| (need.what, need.package))
        .collect()
}

fn missing_now(missing: &Missing) -> Missing {
    missing
        .iter()
        .filter(|(probe, _)| !probe.is_present())
        .copied()
        .collect()
}

fn describe(missing: &Missing) -> String {
    missing
        .iter()
        .map(|(probe, package)| format!("{} ({package})", probe.describe()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .map_err(|e| Failure(format!("cannot run {command:?}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure(format!("{command:?} failed: {status}")))
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user of the process reading it.
    Path::new("/proc/self")
        .metadata()
        .is_ok_and(|m| m.uid() == 0)
}

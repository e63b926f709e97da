//! Locating the programs and files the servers are made of.

use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, ServerError};

/// Directories searched after `PATH`: daemons live in sbin, which a non-root `PATH` may lack.
const EXTRA_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Finds `name` on `PATH` (then in the sbin directories).
pub(crate) fn binary(server: &'static str, name: &str, packages: &'static str) -> Result<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| missing(server, name, packages))
}

/// Finds the first of `candidates` that exists.
pub(crate) fn file(
    server: &'static str,
    candidates: &[&str],
    packages: &'static str,
) -> Result<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| missing(server, candidates.join(" or "), packages))
}

pub(crate) fn missing(
    server: &'static str,
    binary: impl Into<String>,
    packages: &'static str,
) -> ServerError {
    ServerError::MissingBinary {
        server,
        binary: binary.into(),
        packages,
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directory holding `initdb`, `postgres` and friends.
///
/// Debian keeps them in `/usr/lib/postgresql/<version>/bin` (off `PATH`); the newest version
/// wins. Elsewhere, the directory of the `initdb` found on `PATH`.
pub(crate) fn postgres_bin_dir(packages: &'static str) -> Result<PathBuf> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            is_executable(&bin.join("initdb")).then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    if let Some(bin) = newest {
        return Ok(bin);
    }
    let initdb = binary("postgres", "initdb", packages)?;
    let initdb = initdb.canonicalize().unwrap_or(initdb);
    initdb
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| missing("postgres", "initdb", packages))
}

/// Whether this process runs as root (which PostgreSQL, memcached and MariaDB care about).
pub(crate) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user of the process reading it.
    Path::new("/proc/self")
        .metadata()
        .is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of a local user, read from `/etc/passwd`.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let error = binary(
            "redis",
            "durabledict-no-such-program",
            "redis-server redis-tools",
        )
        .expect_err("no such program");
        let message = error.to_string();
        assert!(
            message.contains("`durabledict-no-such-program`"),
            "{message}"
        );
        assert!(
            message.contains("apt-get install -y redis-server redis-tools"),
            "{message}"
        );
    }

    #[test]
    fn finds_programs_on_the_path() {
        assert!(binary("test", "sh", "dash").is_ok());
    }

    #[test]
    fn reads_user_ids() {
        assert_eq!(user_ids("root"), Some((0, 0)));
        assert_eq!(user_ids("durabledict-no-such-user"), None);
    }
}

//! The backends, and what each needs on the machine to build and run its tests.

use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One backend: its name on the command line (also the prefix of its bench files), the root
/// package's feature that enables it, the things its tests need, and the bench files of other
/// names that measure it (`benches/<name>.rs`).
#[derive(Debug)]
pub struct Backend {
    pub name: &'static str,
    pub feature: Option<&'static str>,
    pub needs: &'static [Need],
    pub benches: &'static [&'static str],
}

/// Something that must exist, and the Debian package that provides it.
#[derive(Debug)]
pub struct Need {
    pub what: Probe,
    pub package: &'static str,
}

#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// A program on `PATH` (or in an sbin directory).
    Program(&'static str),
    /// A program in Debian's `/usr/lib/postgresql/<version>/bin`, or on `PATH`.
    PostgresProgram(&'static str),
    /// A file.
    File(&'static str),
}

const fn program(name: &'static str, package: &'static str) -> Need {
    Need {
        what: Probe::Program(name),
        package,
    }
}

const fn postgres(name: &'static str) -> Need {
    Need {
        what: Probe::PostgresProgram(name),
        package: "postgresql",
    }
}

const fn file(path: &'static str, package: &'static str) -> Need {
    Need {
        what: Probe::File(path),
        package,
    }
}

/// Every backend, in the order the matrix lists them.
pub const BACKENDS: &[Backend] = &[
    Backend {
        name: "memory",
        feature: None,
        needs: &[],
        benches: &[],
    },
    Backend {
        name: "redis",
        feature: Some("redis"),
        needs: &[
            program("redis-server", "redis-server"),
            program("redis-cli", "redis-tools"),
        ],
        benches: &[],
    },
    Backend {
        name: "sqlite",
        feature: Some("sqlite"),
        needs: &[
            file("/usr/include/sqlite3.h", "libsqlite3-dev"),
            program("pkg-config", "pkgconf"),
        ],
        benches: &["sql"],
    },
    Backend {
        name: "postgres",
        feature: Some("postgres"),
        needs: &[
            postgres("initdb"),
            postgres("postgres"),
            postgres("pg_isready"),
            postgres("createdb"),
            program("psql", "postgresql-client"),
            program("runuser", "util-linux"),
            // Building diesel's postgres backend (pq-sys) links libpq.
            file("/usr/include/postgresql/libpq-fe.h", "libpq-dev"),
            program("pkg-config", "pkgconf"),
        ],
        benches: &["sql"],
    },
    Backend {
        name: "mysql",
        feature: Some("mysql"),
        needs: &[
            program("mariadbd", "mariadb-server"),
            program("mariadb-install-db", "mariadb-server"),
            program("mariadb", "mariadb-client"),
            // Building diesel's mysql backend (mysqlclient-sys) links libmariadb as
            // libmysqlclient.
            program("mysql_config", "libmariadb-dev-compat"),
            program("pkg-config", "pkgconf"),
        ],
        benches: &[],
    },
    Backend {
        name: "memcache",
        feature: Some("memcache"),
        needs: &[program("memcached", "memcached")],
        benches: &[],
    },
    Backend {
        name: "zookeeper",
        feature: Some("zookeeper"),
        needs: &[
            program("java", "default-jre-headless"),
            file("/usr/share/java/zookeeper.jar", "zookeeper"),
            file("/usr/share/java/slf4j-simple.jar", "libslf4j-java"),
        ],
        benches: &[],
    },
];

pub fn find(name: &str) -> Option<&'static Backend> {
    BACKENDS.iter().find(|b| b.name == name)
}

pub fn names() -> String {
    BACKENDS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Probe {
    pub fn is_present(self) -> bool {
        match self {
            Probe::Program(name) => on_path(name),
            Probe::PostgresProgram(name) => postgres_program(name),
            Probe::File(path) => Path::new(path).is_file(),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Probe::Program(name) | Probe::PostgresProgram(name) => format!("`{name}`"),
            Probe::File(path) => path.to_string(),
        }
    }
}

fn on_path(name: &str) -> bool {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|dir| is_executable(&dir.join(name)))
}

fn postgres_program(name: &str) -> bool {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten();
    versions
        .map(|version| version.path().join("bin").join(name))
        .any(|path| is_executable(&path))
        || on_path(name)
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

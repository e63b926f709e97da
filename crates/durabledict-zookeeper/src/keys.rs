//! Keys as znode names: which keys ZooKeeper can hold, and the path of each key's znode.

/// The longest key accepted, in UTF-8 bytes. ZooKeeper has no limit of its own on a name, but a
/// whole request must fit in the server's `jute.maxbuffer`; bounding keys lets the value limit
/// be one number that holds for every key ([`Store::max_value_len`](durabledict_core::Store::max_value_len)).
pub const MAX_KEY_LEN: usize = 4096;

/// The keyspace: the znode whose children are the keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keyspace {
    /// The keyspace znode's path as the client names it (below the chroot, if any).
    path: String,
    /// Whether the keyspace is the server's real root, where `/zookeeper` lives.
    at_server_root: bool,
}

impl Keyspace {
    /// Checks `path` (absolute, no trailing `/`, every segment a valid name). `chrooted` says
    /// whether the connect string has a chroot, so that `/` is not the server's root.
    pub(crate) fn new(path: &str, chrooted: bool) -> Result<Self, String> {
        if !path.starts_with('/') {
            return Err(format!("keyspace path {path:?} must start with '/'"));
        }
        if path != "/" {
            for segment in path[1..].split('/') {
                validate_name(segment)
                    .map_err(|reason| format!("keyspace path {path:?}: {reason}"))?;
            }
        }
        let first = path[1..].split('/').next().unwrap_or("");
        if !chrooted && first == "zookeeper" {
            return Err(format!(
                "keyspace path {path:?} is inside /zookeeper, which the server reserves"
            ));
        }
        Ok(Keyspace {
            path: path.to_owned(),
            at_server_root: !chrooted && path == "/",
        })
    }

    /// The keyspace znode's path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The path of `key`'s znode. `key` must have passed [`validate_key`](Self::validate_key).
    pub(crate) fn node(&self, key: &str) -> String {
        if self.path == "/" {
            format!("/{key}")
        } else {
            format!("{}/{key}", self.path)
        }
    }

    /// The key whose znode is at `path`, if `path` is a direct child of the keyspace that can
    /// be a key (deeper znodes and the server's own `/zookeeper` are not keys).
    pub(crate) fn key_of<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = if self.path == "/" {
            path.strip_prefix('/')?
        } else {
            path.strip_prefix(self.path.as_str())?.strip_prefix('/')?
        };
        (!rest.is_empty() && !rest.contains('/') && self.is_key_name(rest)).then_some(rest)
    }

    /// Whether a child named `name` (as listed by the server) is a key.
    pub(crate) fn is_key_name(&self, name: &str) -> bool {
        !(self.at_server_root && name == "zookeeper")
    }

    /// Checks that `key` can name a znode in this keyspace.
    pub(crate) fn validate_key(&self, key: &str) -> Result<(), String> {
        validate_name(key)?;
        if key.len() > MAX_KEY_LEN {
            return Err(format!(
                "is {} bytes long, over the limit of {MAX_KEY_LEN}",
                key.len()
            ));
        }
        if !self.is_key_name(key) {
            return Err("\"zookeeper\" is reserved by the server at its root".to_owned());
        }
        Ok(())
    }
}

/// ZooKeeper's rules for one path segment (its `PathUtils.validatePath`): not empty, no `/`,
/// not `.` or `..`, no NUL, none of the characters it forbids. Java checks UTF-16 code units,
/// so every character outside the Basic Multilingual Plane (emoji among them) is refused too:
/// it is written with surrogates, which fall in a forbidden range.
fn validate_name(name: &str) -> Result<(), String> {
    match name {
        "" => return Err("must not be empty".to_owned()),
        "." | ".." => return Err(format!("{name:?} is a relative path element")),
        _ => {}
    }
    for c in name.chars() {
        let reason = match c {
            '/' => "contains '/', the path separator",
            '\0' => "contains a NUL character",
            '\u{1}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => "contains a control character",
            '\u{e000}'..='\u{f8ff}' => "contains a private-use character, which ZooKeeper refuses",
            '\u{fff0}'..='\u{ffff}' => "contains a character ZooKeeper refuses (U+FFF0-U+FFFF)",
            '\u{10000}'.. => {
                "contains a character outside the Basic Multilingual Plane, which ZooKeeper refuses"
            }
            _ => continue,
        };
        return Err(format!("{reason} ({c:?})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(path: &str) -> Keyspace {
        Keyspace::new(path, false).expect("valid keyspace")
    }

    #[test]
    fn keys_become_children() {
        let k = ks("/app/settings");
        assert_eq!(k.node("flag"), "/app/settings/flag");
        assert_eq!(k.key_of("/app/settings/flag"), Some("flag"));
        assert_eq!(k.key_of("/app/settings"), None);
        assert_eq!(k.key_of("/app/settings/a/b"), None);
        assert_eq!(k.key_of("/app/settingsx/a"), None);
        assert_eq!(k.key_of("/other/a"), None);
    }

    #[test]
    fn root_keyspace_skips_the_reserved_node() {
        let root = ks("/");
        assert_eq!(root.node("a"), "/a");
        assert_eq!(root.key_of("/a"), Some("a"));
        assert_eq!(root.key_of("/zookeeper"), None);
        assert!(root.validate_key("zookeeper").is_err());
        let chrooted = Keyspace::new("/", true).expect("valid");
        assert!(chrooted.validate_key("zookeeper").is_ok());
        assert!(ks("/a").validate_key("zookeeper").is_ok());
    }

    #[test]
    fn invalid_keys_are_refused() {
        let k = ks("/ks");
        for key in [
            "",
            ".",
            "..",
            "a/b",
            "/",
            "nul\0",
            "bell\u{7}",
            "c1\u{85}",
            "private\u{e000}",
            "emoji 🚀",
            "\u{fffe}",
        ] {
            assert!(k.validate_key(key).is_err(), "{key:?} must be refused");
        }
        assert!(k.validate_key(&"x".repeat(MAX_KEY_LEN + 1)).is_err());
        for key in [
            "☃",
            "clé",
            "键",
            "with space",
            "a.b:c",
            "...",
            ".hidden",
            "zookeeper",
            "%s {}",
        ] {
            assert_eq!(k.validate_key(key), Ok(()), "{key:?} must be accepted");
        }
        assert_eq!(k.validate_key(&"x".repeat(MAX_KEY_LEN)), Ok(()));
    }

    #[test]
    fn invalid_keyspaces_are_refused() {
        for path in [
            "",
            "ks",
            "/ks/",
            "/a//b",
            "/a/./b",
            "/zookeeper",
            "/zookeeper/x",
        ] {
            assert!(Keyspace::new(path, false).is_err(), "{path:?}");
        }
        assert!(Keyspace::new("/zookeeper", true).is_ok());
    }
}

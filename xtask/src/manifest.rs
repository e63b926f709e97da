//! What xtask reads from the root `Cargo.toml` at run time, so that a backend added later needs
//! no change here: the facade's features and the workspace crates each feature pulls in.

use std::collections::BTreeMap;

/// The root package's `[features]`: name → the entries it enables.
#[derive(Debug, Default, PartialEq)]
pub struct Features(pub BTreeMap<String, Vec<String>>);

impl Features {
    /// Parses the `[features]` table of a manifest. Just enough TOML for a features table: keys
    /// at the start of a line, values that are (possibly multi-line) arrays of strings.
    pub fn parse(manifest: &str) -> Features {
        let mut features = BTreeMap::new();
        let mut in_table = false;
        let mut current: Option<String> = None;
        for line in manifest.lines() {
            let line = strip_comment(line).trim();
            if line.starts_with('[')
                && !line.starts_with("[\"")
                && line.ends_with(']')
                && !line.contains('=')
            {
                in_table = line == "[features]";
                current = None;
                continue;
            }
            if !in_table || line.is_empty() {
                continue;
            }
            let value = match key_of(line) {
                Some((key, value)) => {
                    features.insert(key.to_string(), Vec::new());
                    current = Some(key.to_string());
                    value
                }
                None => line,
            };
            if let Some(entries) = current.as_ref().and_then(|key| features.get_mut(key)) {
                entries.extend(quoted_strings(value));
            }
        }
        Features(features)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The packages a feature enables: `dep:x` and `x/feature` name package `x`.
    pub fn packages_of(&self, name: &str) -> Vec<String> {
        let mut packages: Vec<String> = self
            .0
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                if let Some(dep) = entry.strip_prefix("dep:") {
                    Some(dep.to_string())
                } else {
                    entry
                        .split_once('/')
                        .map(|(dep, _)| dep.trim_end_matches('?').to_string())
                }
            })
            .collect();
        packages.sort();
        packages.dedup();
        packages
    }
}

/// The `required-features` of each `[[bench]]` of a manifest, by bench name (a bench without
/// them maps to nothing). The same little TOML as [`Features::parse`], one-line arrays.
pub fn bench_required_features(manifest: &str) -> BTreeMap<String, Vec<String>> {
    let mut benches = BTreeMap::new();
    let mut in_bench = false;
    let mut name: Option<String> = None;
    let mut required = Vec::new();
    let mut flush = |name: &mut Option<String>, required: &mut Vec<String>| {
        if let Some(name) = name.take() {
            benches.insert(name, std::mem::take(required));
        }
        required.clear();
    };
    for line in manifest.lines() {
        let line = strip_comment(line).trim();
        if line.starts_with('[') && !line.contains('=') {
            flush(&mut name, &mut required);
            in_bench = line == "[[bench]]";
            continue;
        }
        if !in_bench {
            continue;
        }
        match key_of(line) {
            Some(("name", value)) => name = quoted_strings(value).into_iter().next(),
            Some(("required-features", value)) => required = quoted_strings(value),
            _ => {}
        }
    }
    flush(&mut name, &mut required);
    benches
}

fn strip_comment(line: &str) -> &str {
    // Good enough: feature names and package names never contain '#'.
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// `name = rest` where name is a bare (or quoted) key.
fn key_of(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    bare.then_some((key, value))
}

fn quoted_strings(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[package]
name = "durabledict"

[features]
default = []
## Redis store.
redis = ["dep:durabledict-redis"]
sqlite = ["dep:durabledict-diesel", "durabledict-diesel/sqlite"]
postgres = [
    "dep:durabledict-diesel",   # the SQL crate
    "durabledict-diesel/postgres",
]
zookeeper = ["durabledict-zookeeper?/serde"]

[dependencies]
durabledict-core.workspace = true

[[bench]]
name = "sql"
harness = false
required-features = ["sqlite"]

[[bench]]
name = "memory"
harness = false
"#;

    #[test]
    fn reads_the_features_table_only() {
        let features = Features::parse(MANIFEST);
        let names: Vec<&str> = features.0.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["default", "postgres", "redis", "sqlite", "zookeeper"]
        );
        assert!(features.has("redis"));
        assert!(!features.has("durabledict-core"));
    }

    #[test]
    fn finds_the_packages_a_feature_enables() {
        let features = Features::parse(MANIFEST);
        assert_eq!(features.packages_of("redis"), ["durabledict-redis"]);
        assert_eq!(features.packages_of("postgres"), ["durabledict-diesel"]);
        assert_eq!(features.packages_of("zookeeper"), ["durabledict-zookeeper"]);
        assert!(features.packages_of("default").is_empty());
        assert!(features.packages_of("nope").is_empty());
    }

    #[test]
    fn reads_the_benches_required_features() {
        let benches = bench_required_features(MANIFEST);
        assert_eq!(
            benches.get("sql").map(Vec::as_slice),
            Some(&["sqlite".to_string()][..])
        );
        assert_eq!(benches.get("memory").map(Vec::len), Some(0));
        assert_eq!(benches.len(), 2);
    }
}

//! A lone surrogate stored by Python is printed as the JSON escape Python writes for it (a review finding).
#![allow(clippy::unwrap_used)]

mod common;

use common::{command, python, run, run_with};

/// CPython stores a str holding a lone surrogate (`'x\ud800y'`, written with surrogatepass as
/// Python does). `get` prints it with the decoder's stand-in code point U+10F800 as raw UTF-8,
/// so any JSON reader (Python's `json.loads`, jq) reads `'x\U0010f800y'`, another string than
/// the one stored; the JSON for it is `"x\ud800y"`, as `json.dumps` writes it (and as
/// `DynamicJson` writes it).
#[test]
fn a_lone_surrogate_is_printed_as_the_json_escape_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("py.db");
    let url = format!("sqlite:{}", db.display());
    run_with(
        command(d),
        &["--store", &url, "--keyspace", "settings", "import", "-"],
        Some("{}"),
    )
    .ok();
    python(
        r#"
import base64, pickle, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute('INSERT INTO "settings" ("key", "value") VALUES (?, ?)',
            ('t', base64.encodebytes(pickle.dumps('x\ud800y', 3)).decode()))
con.commit()
"#,
        &[db.to_str().unwrap()],
    );
    let printed = run(d, &["--store", &url, "--keyspace", "settings", "get", "t"])
        .ok()
        .to_owned();
    let read_back = python(
        "import json, sys; print(json.loads(sys.argv[1]) == 'x\\ud800y', ascii(json.loads(sys.argv[1])))",
        &[&printed],
    );
    assert!(
        read_back.starts_with("True"),
        "`get` printed {printed:?}, which JSON reads as {}",
        read_back.trim()
    );
}

//! Review: `SqlUrl`'s `Display` and `Debug` never show a password, even one holding an
//! unencoded `/`, `?` or `#`, which the URL's own form cannot delimit (the parse succeeds:
//! libpq and MySQL read it their own way when connecting).
#![allow(clippy::unwrap_used)]

use durabledict_diesel::SqlUrl;

#[test]
fn an_unencoded_password_is_masked() {
    for url in [
        "postgres://app:Zq9/Wv7@127.0.0.1:5432/db",
        "postgres://app:Zq9/Wv7#Kx4@127.0.0.1/db?sslmode=disable",
        "postgresql://app:Zq9/Wv7@127.0.0.1/db?password=Pm2",
        "mysql://app:Zq9/Wv7@127.0.0.1/db",
    ] {
        let parsed = SqlUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        for shown in [parsed.to_string(), format!("{parsed:?}")] {
            for piece in ["Zq9", "Wv7", "Kx4", "Pm2"] {
                assert!(!shown.contains(piece), "{url}: {piece} in {shown}");
            }
            assert!(shown.contains("app:***@127.0.0.1"), "{url}: {shown}");
        }
    }
    // The usual forms are masked as they were.
    let parsed = SqlUrl::parse("postgres://app:s3cret@h/db?sslmode=require").unwrap();
    assert_eq!(
        parsed.to_string(),
        "postgres://app:***@h/db?sslmode=require"
    );
}

mod common;

use common::{is_closed, talk, timed};
use durabledict_test_servers::Memcached;

#[test]
fn memcached_starts_restarts_and_stops() {
    let mut memcached = timed("memcached start", Memcached::start).expect("start memcached");
    let port = memcached.port();
    assert_eq!(memcached.url(), format!("memcache://127.0.0.1:{port}"));
    assert_eq!(memcached.addr().port(), port);
    assert_eq!(talk(port, "set k 0 0 1\r\nv\r\n", "\r\n"), "STORED\r\n");
    assert_eq!(
        talk(port, "get k\r\n", "END\r\n"),
        "VALUE k 0 1\r\nv\r\nEND\r\n"
    );

    timed("memcached stop", || memcached.stop());
    assert!(is_closed(port));
    timed("memcached restart", || memcached.restart()).expect("restart memcached");
    assert_eq!(talk(port, "get k\r\n", "END\r\n"), "END\r\n");

    timed("memcached drop", || drop(memcached));
    assert!(is_closed(port));
}

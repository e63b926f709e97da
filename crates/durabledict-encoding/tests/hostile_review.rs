//! Reproductions of adversarial review findings against the pickle decoder and `DynamicJson`,
//! fixed: each test failed on the code it was written against and passes now.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use durabledict_encoding::{DecodeError, HashableValue, Pickle, Python2Str, Value};

/// The process's peak resident memory in kB (`VmHWM`), after resetting it.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn peak_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn value() -> Pickle<Value> {
    Pickle::<Value>::new()
}

/// `set(list)` (and `frozenset(list)`) copies the list's items into a new vector at every
/// REDUCE, outside the size accounting, and a POPped result is kept (in `garbage`) until the
/// end: a 17 kB pickle allocates ~150 MB (about 100x the pickle per REDUCE), so a few hundred
/// kB reach gigabytes, whatever `with_max_decoded_size` says, before the cap is looked at.
/// Here the cap is 16 MiB; the peak must stay within a few times that, whether the results are
/// popped (CPython frees them; the value is `None`) or kept in a list (then refused).
#[test]
fn set_of_a_memoized_list_called_again_and_again_stays_within_the_cap() {
    let items = 10_000usize;
    let calls = 1_000usize;
    for (what, per_call, end) in [
        ("popped", &b"h\x01h\x00\x85R0"[..], &b"N."[..]),
        ("kept", &b"h\x01h\x00\x85Ra"[..], &b"."[..]),
    ] {
        // [None] * items memoized as 0, builtins.set memoized as 1, then an empty list that
        // keeps the results (when they are appended).
        let mut pickle = b"\x80\x02](".to_vec();
        pickle.extend(std::iter::repeat_n(b'N', items));
        pickle.extend(b"eq\x00c__builtin__\nset\nq\x010]");
        for _ in 0..calls {
            pickle.extend(per_call);
        }
        pickle.extend(end);
        reset_peak();
        let before = rss_kb();
        let decoded = value().with_max_decoded_size(16 << 20).from_pickle(&pickle);
        let peak = peak_kb().saturating_sub(before);
        drop(decoded);
        assert!(
            peak < 64 << 10,
            "results {what}: a {}-byte pickle decoded under a 16 MiB cap raised the resident \
             peak by {} MB",
            pickle.len(),
            peak >> 10
        );
    }
}

/// Python 2.7's `OrderedDict.__reduce__` is `(OrderedDict, ([[k, v], ...],))`: every Python 2
/// OrderedDict pickle calls the class with one argument, which is refused.
#[test]
fn python2_ordered_dict_is_read_as_a_dict() {
    let expected = Value::Dict(BTreeMap::from([(
        HashableValue::String("a".into()),
        Value::I64(1),
    )]));
    // python2.7: pickle.dumps(collections.OrderedDict([("a", 1)]), 2) and protocol 0.
    let p2 =
        b"\x80\x02ccollections\nOrderedDict\nq\x00]q\x01]q\x02(U\x01aq\x03K\x01ea\x85q\x04Rq\x05.";
    let p0 = b"ccollections\nOrderedDict\np0\n((lp1\n(lp2\nS'a'\np3\naI1\naatp4\nRp5\n.";
    assert_eq!(value().from_pickle(p2).unwrap(), expected);
    assert_eq!(value().from_pickle(p0).unwrap(), expected);
}

/// Python 2's protocol 0 writes `unicode` with raw-unicode-escape and escapes only `\` and
/// `\n`: `pickle.dumps(u"abc\r")` is `Vabc\r\n...`, and CPython (2 and 3) reads `u'abc\r'`.
/// The line reader strips the `\r`.
#[test]
fn python2_protocol0_unicode_ending_in_carriage_return_keeps_it() {
    assert_eq!(
        value().from_pickle(b"Vabc\r\np0\n.").unwrap(),
        Value::String("abc\r".into())
    );
}

/// Python 2.7 pickles a bytearray as `bytearray(u'...', 'latin-1')`, the codec a Python 2
/// `str`: with `Python2Str::Bytes` the codec is bytes and the call is refused.
#[test]
fn python2_bytearray_is_read_with_python2_str_bytes() {
    // python2.7: pickle.dumps(bytearray(b"ab\xff"), 2)
    let raw = b"\x80\x02c__builtin__\nbytearray\nq\x00X\x04\x00\x00\x00ab\xc3\xbfq\x01U\x07latin-1q\x02\x86q\x03Rq\x04.";
    let pickle = Pickle::<Value>::new().with_python2_str(Python2Str::Bytes);
    assert_eq!(
        pickle.from_pickle(raw).unwrap(),
        Value::Bytes(b"ab\xff".to_vec())
    );
}

/// CPython reads a FRAME's bytes when it meets it ("pickle data was truncated" when they are
/// not there); the decoder skips the length and accepts the pickle.
#[test]
fn a_frame_longer_than_the_pickle_is_refused_as_cpython_does() {
    let raw = b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N.";
    assert!(matches!(
        value().from_pickle(raw),
        Err(DecodeError::Malformed { .. })
    ));
}

/// DynamicJson refuses U+10F800..U+10FFFF written as an escape (`\udbfe\udc00`, the code
/// points it uses for lone surrogates) but accepts the same code point written as raw UTF-8
/// (what `json.dumps(..., ensure_ascii=False)` writes), and then writes it back as the lone
/// surrogate `\ud800`: the value changes on a read-modify-write.
#[test]
fn dynamic_json_raw_private_use_code_point_is_not_turned_into_a_surrogate() {
    use durabledict_encoding::{DynamicJson, Encoding};
    let json = DynamicJson::new();
    let raw = "[\"\u{10F800}\"]".as_bytes();
    if let Ok(value) = json.decode(raw) {
        let written = json.encode(&value).unwrap();
        let written = String::from_utf8(written).unwrap();
        assert!(
            !written.contains("\\ud800"),
            "U+10F800 read from raw UTF-8 is written back as a lone surrogate: {written}"
        );
    }
}

//! The allowed standard library types admit nothing else (durabledict issue 10): pickles that
//! try to smuggle a call, a state or an out-of-range value through `datetime`, `Decimal`,
//! `UUID`, `timezone`, `complex` and `copyreg._reconstructor` are refused, each with the error
//! that says why.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use durabledict_encoding::{DecodeError, EncodeError, HashableValue, Pickle, Value};

fn decode(pickle: &[u8]) -> Result<Value, DecodeError> {
    Pickle::<Value>::new().from_pickle(pickle)
}

/// `(opcode, reason)` of a refusal, or a panic showing what came instead.
fn refused(pickle: &[u8]) -> (&'static str, String) {
    match decode(pickle) {
        Err(DecodeError::Refused { opcode, reason, .. }) => (opcode, reason),
        other => panic!("{pickle:?}: expected a refusal, got {other:?}"),
    }
}

fn malformed(pickle: &[u8]) -> String {
    match decode(pickle) {
        Err(DecodeError::Malformed { reason, .. }) => reason,
        other => panic!("{pickle:?}: expected a malformed pickle, got {other:?}"),
    }
}

/// A protocol 2 pickle calling `module.name` with the pickled arguments `args` (a tuple).
fn call(module: &str, name: &str, args: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02c".to_vec();
    p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    p.extend_from_slice(args);
    p.extend_from_slice(b"R.");
    p
}

/// A datetime state of 10 bytes, as SHORT_BINBYTES in a 1-tuple.
fn state(bytes: &[u8]) -> Vec<u8> {
    let mut p = vec![b'C', u8::try_from(bytes.len()).unwrap()];
    p.extend_from_slice(bytes);
    p.push(0x85);
    p
}

#[test]
fn other_globals_of_the_same_modules_are_refused() {
    for (module, name) in [
        ("datetime", "sys"),
        ("datetime", "tzinfo"),
        ("decimal", "getcontext"),
        ("decimal", "Context"),
        ("uuid", "_uuid"),
        ("uuid", "uuid1"),
        ("uuid", "SafeUUID"),
        ("copyreg", "__newobj__"),
        ("copyreg", "_reduce_ex"),
        ("builtins", "getattr"),
        ("zoneinfo", "ZoneInfo"),
    ] {
        let (opcode, reason) = refused(&call(module, name, b")"));
        assert_eq!(opcode, "GLOBAL");
        assert!(reason.contains(&format!("{module}.{name}")), "{reason}");
    }
}

#[test]
fn a_datetime_is_built_only_from_a_state_of_bytes() {
    // datetime(1): not a state.
    assert!(malformed(&call("datetime", "datetime", b"K\x01\x85")).contains("datetime"));
    // datetime(2020, 1, 2): Python accepts it, CPython never pickles it; refused.
    malformed(&call("datetime", "datetime", b"M\xe4\x07K\x01K\x02\x87"));
    // A state of the wrong length, a list, a dict.
    malformed(&call("datetime", "datetime", &state(b"\x07\xe4\x01\x02")));
    malformed(&call("datetime", "date", &state(b"\x07\xe4\x01\x02\x00")));
    malformed(&call("datetime", "datetime", b"]\x85"));
    malformed(&call("datetime", "time", b"}\x85"));
    // A zone that is not a datetime.timezone: a string, an int, a date.
    let mut with_str_zone = state(b"\x07\xe4\x01\x02\x03\x04\x05\x00\x00\x06");
    with_str_zone.pop();
    with_str_zone.extend_from_slice(b"X\x03\x00\x00\x00UTC\x86");
    malformed(&call("datetime", "datetime", &with_str_zone));
    let mut with_date_zone = state(b"\x07\xe4\x01\x02\x03\x04\x05\x00\x00\x06");
    with_date_zone.pop();
    with_date_zone.extend_from_slice(b"cdatetime\ndate\nC\x04\x07\xe4\x01\x02\x85R\x86");
    malformed(&call("datetime", "datetime", &with_date_zone));
    // A date takes no zone at all.
    let mut date_zone = state(b"\x07\xe4\x01\x02");
    date_zone.pop();
    date_zone.extend_from_slice(
        b"cdatetime\ntimezone\ncdatetime\ntimedelta\nK\x00K\x00K\x00\x87R\x85R\x86",
    );
    malformed(&call("datetime", "date", &date_zone));
    // A zone that is a global which is never called.
    let mut global_zone = state(b"\x07\xe4\x01\x02\x03\x04\x05\x00\x00\x06");
    global_zone.pop();
    global_zone.extend_from_slice(b"cdatetime\ntimezone\n\x86");
    malformed(&call("datetime", "datetime", &global_zone));
}

#[test]
fn out_of_range_fields_are_refused() {
    for (name, bytes, what) in [
        (
            "datetime",
            &b"\x07\xe4\x0d\x02\x03\x04\x05\x00\x00\x06"[..],
            "month 13",
        ),
        (
            "datetime",
            b"\x07\xe4\x01\x20\x03\x04\x05\x00\x00\x06",
            "day 32",
        ),
        (
            "datetime",
            b"\x07\xe4\x01\x02\x18\x04\x05\x00\x00\x06",
            "hour 24",
        ),
        (
            "datetime",
            b"\x07\xe4\x01\x02\x03\x3c\x05\x00\x00\x06",
            "minute 60",
        ),
        (
            "datetime",
            b"\x07\xe4\x01\x02\x03\x04\x3c\x00\x00\x06",
            "second 60",
        ),
        (
            "datetime",
            b"\x07\xe4\x01\x02\x03\x04\x05\x0f\x42\x40",
            "microsecond 1000000",
        ),
        (
            "datetime",
            b"\x00\x00\x01\x02\x03\x04\x05\x00\x00\x06",
            "year 0",
        ),
        (
            "datetime",
            b"\x27\x10\x01\x02\x03\x04\x05\x00\x00\x06",
            "year 10000",
        ),
        ("date", b"\x07\xe3\x02\x1d", "day 29"),
        ("date", b"\x07\xe4\x00\x01", "month 0"),
        ("time", b"\x19\x00\x00\x00\x00\x00", "hour 25"),
        ("time", b"\x00\x00\x00\xff\xff\xff", "microsecond"),
    ] {
        let reason = malformed(&call("datetime", name, &state(bytes)));
        assert!(reason.contains(what), "{name} {bytes:?}: {reason}");
    }
    // timedelta(days=1_000_000_000)
    let reason = malformed(&call("datetime", "timedelta", b"J\x00\xca\x9a\x3b\x85"));
    assert!(reason.contains("days"), "{reason}");
    // timedelta(1.5): floats are not taken (CPython never pickles them).
    malformed(&call(
        "datetime",
        "timedelta",
        b"G?\xf8\x00\x00\x00\x00\x00\x00\x85",
    ));
}

#[test]
fn a_timezone_takes_only_a_timedelta_within_a_day_and_a_str() {
    // timezone(5), timezone("UTC"), timezone(date)
    malformed(&call("datetime", "timezone", b"K\x05\x85"));
    malformed(&call("datetime", "timezone", b"X\x03\x00\x00\x00UTC\x85"));
    malformed(&call(
        "datetime",
        "timezone",
        b"cdatetime\ndate\nC\x04\x07\xe4\x01\x02\x85R\x85",
    ));
    // timezone(timedelta(days=1)) and timezone(timedelta(days=-1)): Python refuses both.
    for days in [&b"K\x01"[..], b"J\xff\xff\xff\xff"] {
        let mut args = b"cdatetime\ntimedelta\n".to_vec();
        args.extend_from_slice(days);
        args.extend_from_slice(b"K\x00K\x00\x87R\x85");
        let reason = malformed(&call("datetime", "timezone", &args));
        assert!(reason.contains("24 hours"), "{reason}");
    }
    // timezone(timedelta(0), 5): the name must be a str.
    malformed(&call(
        "datetime",
        "timezone",
        b"cdatetime\ntimedelta\nK\x00K\x00K\x00\x87RK\x05\x86",
    ));
}

#[test]
fn a_decimal_takes_only_decimal_text_of_bounded_length() {
    // Decimal of a 10 MB string: refused as a limit, before anything is parsed.
    let mut args = b"X".to_vec();
    args.extend_from_slice(&10_000_000u32.to_le_bytes());
    args.extend(std::iter::repeat_n(b'1', 10_000_000));
    args.push(0x85);
    assert!(matches!(
        decode(&call("decimal", "Decimal", &args)),
        Err(DecodeError::Limit(m)) if m.contains("digits")
    ));
    // Text that is not a number, an int, a float, a tuple (all of which Python accepts or
    // rejects; CPython never pickles them).
    for args in [
        &b"X\x0a\x00\x00\x00__import__\x85"[..],
        b"X\x03\x00\x00\x001,5\x85",
        b"X\x02\x00\x00\x001e\x85",
        b"X\x02\x00\x00\x00\xd9\xa1\x85",
        b"K\x01\x85",
        b"G?\xf8\x00\x00\x00\x00\x00\x00\x85",
        b"K\x00)K\x00\x87\x85",
        b")",
    ] {
        malformed(&call("decimal", "Decimal", args));
    }
    // An exponent beyond what a Decimal holds.
    malformed(&call(
        "decimal",
        "Decimal",
        b"X\x18\x00\x00\x001E+9999999999999999999999\x85",
    ));
}

#[test]
fn a_uuid_is_only_created_empty_and_given_exactly_its_state() {
    let uuid_with = |state: &[u8]| {
        let mut p = b"\x80\x02cuuid\nUUID\n)\x81}(".to_vec();
        p.extend_from_slice(state);
        p.extend_from_slice(b"ub.");
        p
    };
    assert!(decode(&uuid_with(b"X\x03\x00\x00\x00intK\x05")).is_ok());
    // Extra attributes: refused at BUILD.
    for extra in [
        &b"X\x03\x00\x00\x00intK\x05X\x01\x00\x00\x00xK\x01"[..],
        b"X\x03\x00\x00\x00intK\x05X\x09\x00\x00\x00__class__N",
        b"X\x03\x00\x00\x00intK\x05X\x08\x00\x00\x00__dict__}",
        b"K\x01K\x05",
    ] {
        let (opcode, reason) = refused(&uuid_with(extra));
        assert_eq!(opcode, "BUILD");
        assert!(reason.contains("only int and is_safe"), "{reason}");
    }
    // An int out of range, of the wrong type; an is_safe that is not -1, 0 or None; no int.
    for bad in [
        &b"X\x03\x00\x00\x00intJ\xff\xff\xff\xff"[..],
        b"X\x03\x00\x00\x00int\x8a\x11\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
        b"X\x03\x00\x00\x00intX\x01\x00\x00\x005",
        b"X\x03\x00\x00\x00intK\x05X\x07\x00\x00\x00is_safeK\x01",
        b"X\x07\x00\x00\x00is_safeK\x00",
    ] {
        malformed(&uuid_with(bad));
    }
    // A state that is not a dict (the (dict, slots) form Python also takes).
    let (opcode, _) = refused(b"\x80\x02cuuid\nUUID\n)\x81N}\x86b.");
    assert_eq!(opcode, "BUILD");
    // A second BUILD on a built UUID.
    let (opcode, _) = refused(
        b"\x80\x02cuuid\nUUID\n)\x81}X\x03\x00\x00\x00intK\x05sb}X\x03\x00\x00\x00intK\x06sb.",
    );
    assert_eq!(opcode, "BUILD");
    // Created but never given its state.
    assert!(malformed(b"\x80\x02cuuid\nUUID\n)\x81.").contains("without its state"));
    // NEWOBJ with arguments, of another allowed class; REDUCE of the class itself.
    assert_eq!(refused(b"\x80\x02cuuid\nUUID\nK\x05\x85\x81.").0, "NEWOBJ");
    assert_eq!(refused(b"\x80\x02cdatetime\ndate\n)\x81.").0, "NEWOBJ");
    assert_eq!(
        refused(b"\x80\x02cuuid\nUUID\nX\x01\x00\x00\x005\x85R.").0,
        "REDUCE"
    );
    assert_eq!(refused(b"\x80\x04cuuid\nUUID\n)}\x92.").0, "NEWOBJ_EX");
}

#[test]
fn build_stays_refused_on_everything_but_a_new_uuid() {
    for pickle in [
        &b"\x80\x02]}b."[..],
        b"\x80\x02}}b.",
        b"\x80\x02cdatetime\ntimedelta\n)R}b.",
        b"\x80\x02cdecimal\nDecimal\nX\x01\x00\x00\x001\x85R}X\x03\x00\x00\x00intK\x05sb.",
    ] {
        assert_eq!(refused(pickle).0, "BUILD");
    }
}

#[test]
fn copyreg_reconstructor_makes_nothing_but_an_empty_uuid() {
    for args in [
        // _reconstructor(datetime.date, object, None)
        &b"cdatetime\ndate\nc__builtin__\nobject\nN\x87"[..],
        // _reconstructor(uuid.UUID, object, 5)
        b"cuuid\nUUID\nc__builtin__\nobject\nK\x05\x87",
        // _reconstructor(uuid.UUID, set, None)
        b"cuuid\nUUID\nc__builtin__\nset\nN\x87",
    ] {
        assert_eq!(
            refused(&call("copy_reg", "_reconstructor", args)).0,
            "REDUCE"
        );
    }
    // object() itself is never called.
    assert_eq!(refused(&call("builtins", "object", b")")).0, "REDUCE");
    // object as a value.
    malformed(b"\x80\x02c__builtin__\nobject\n.");
}

#[test]
fn complex_takes_only_numbers() {
    malformed(&call("builtins", "complex", b"X\x04\x00\x00\x001+2j\x85"));
    malformed(&call("builtins", "complex", b"NN\x86"));
    malformed(&call("builtins", "complex", b"K\x01K\x02K\x03\x87"));
    assert!(decode(&call("builtins", "complex", b"K\x01K\x02\x86")).is_ok());
}

#[test]
fn a_signaling_nan_decimal_is_no_dict_key_or_set_member_as_in_python() {
    // {Decimal("sNaN"): 1} cannot exist in Python ("Cannot hash a signaling NaN value").
    let key = b"\x80\x02}cdecimal\nDecimal\nX\x04\x00\x00\x00sNaN\x85RK\x01s.";
    assert!(matches!(decode(key), Err(DecodeError::Pickle(_))));
    let quiet = b"\x80\x02}cdecimal\nDecimal\nX\x03\x00\x00\x00NaN\x85RK\x01s.";
    assert!(decode(quiet).is_ok());
    assert!(
        Value::Decimal("sNaN".parse().unwrap())
            .into_hashable()
            .is_err()
    );
    // Built by hand, it is not written either.
    let set = Value::Set(BTreeSet::from([HashableValue::Decimal(
        "-sNaN1".parse().unwrap(),
    )]));
    assert!(matches!(
        Pickle::<Value>::new().to_pickle(&set),
        Err(EncodeError::Unreadable(_))
    ));
}

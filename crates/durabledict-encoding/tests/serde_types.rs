//! `Pickle<V>` reads Python's `datetime`, `Decimal`, `UUID` and `complex` into the Rust types
//! of `chrono`, `time`, `rust_decimal`, `bigdecimal` and `uuid` through their serde forms
//! (durabledict issue 10, item 2), from pickles CPython makes (`python3` must be installed), and
//! writes them back as text, as the crate README says.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Utc};
use durabledict_encoding::{DecodeError, Encoding, Pickle, Value};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// CPython's pickles (protocol 5) of each expression.
fn cpython(exprs: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let script = "import base64, datetime as dt, decimal, pickle, sys, uuid\n\
                  D = decimal.Decimal\n\
                  for line in sys.stdin:\n    \
                  v = eval(line)\n    \
                  sys.stdout.write(base64.b64encode(pickle.dumps(v, 5)).decode() + '\\n')";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run these tests (apt-get install python3)");
    let input: String = exprs.iter().map(|e| format!("{e}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exprs
        .iter()
        .zip(String::from_utf8(out.stdout).unwrap().lines())
        .map(|(e, l)| ((*e).to_owned(), STANDARD.decode(l).unwrap()))
        .collect()
}

fn read<V: DeserializeOwned>(raw: &[u8]) -> Result<V, DecodeError> {
    Pickle::<V>::new().from_pickle(raw)
}

const EXPRS: &[&str] = &[
    "dt.datetime(2024, 3, 1, 9, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))",
    "dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.timezone.utc)",
    "dt.datetime(2024, 3, 1, 9, 30, 0, 5)",
    "dt.datetime(2024, 3, 1, 9, 30)",
    "dt.date(2024, 2, 29)",
    "dt.time(23, 59, 59, 999999)",
    "dt.time(7, 0)",
    "dt.timedelta(days=-1, seconds=86399, microseconds=1)",
    "dt.timedelta(days=2, microseconds=7)",
    "D('-1.50')",
    "D('-1.50E+3')",
    "D('NaN')",
    "uuid.UUID('6f0e2a1c-0000-4000-8000-000000000001')",
    "complex(1.5, -2)",
    "{'until': dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), 'price': D('9.99'), \
     'id': uuid.UUID(int=1)}",
];

#[test]
fn chrono_types_read_pythons_datetimes() {
    let p = cpython(EXPRS);
    let plus_one = FixedOffset::east_opt(3600).unwrap();
    let at = NaiveDate::from_ymd_opt(2024, 3, 1)
        .unwrap()
        .and_hms_micro_opt(9, 30, 0, 123_456)
        .unwrap();
    assert_eq!(
        read::<chrono::DateTime<FixedOffset>>(&p[EXPRS[0]]).unwrap(),
        plus_one.from_local_datetime(&at).unwrap()
    );
    // DateTime<Utc> reads any aware datetime, converted to UTC.
    assert_eq!(
        read::<chrono::DateTime<Utc>>(&p[EXPRS[0]]).unwrap(),
        plus_one
            .from_local_datetime(&at)
            .unwrap()
            .with_timezone(&Utc)
    );
    assert_eq!(
        read::<chrono::DateTime<Utc>>(&p[EXPRS[1]]).unwrap(),
        Utc.with_ymd_and_hms(2024, 3, 1, 9, 30, 0).unwrap()
    );
    let naive = |us| {
        NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_micro_opt(9, 30, 0, us)
            .unwrap()
    };
    assert_eq!(read::<NaiveDateTime>(&p[EXPRS[2]]).unwrap(), naive(5));
    assert_eq!(read::<NaiveDateTime>(&p[EXPRS[3]]).unwrap(), naive(0));
    // A naive datetime has no instant: DateTime<Utc> refuses it rather than guess a zone.
    assert!(read::<chrono::DateTime<Utc>>(&p[EXPRS[3]]).is_err());
    assert_eq!(
        read::<NaiveDate>(&p[EXPRS[4]]).unwrap(),
        NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
    );
    assert_eq!(
        read::<NaiveTime>(&p[EXPRS[5]]).unwrap(),
        NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap()
    );
    assert_eq!(
        read::<NaiveTime>(&p[EXPRS[6]]).unwrap(),
        NaiveTime::from_hms_opt(7, 0, 0).unwrap()
    );
}

time::serde::format_description!(
    python_naive,
    PrimitiveDateTime,
    "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
);
time::serde::format_description!(
    python_time,
    Time,
    "[hour]:[minute]:[second][optional [.[subsecond]]]"
);

#[test]
fn time_types_read_pythons_datetimes() {
    let p = cpython(EXPRS);
    #[derive(Deserialize)]
    struct Rfc3339(#[serde(with = "time::serde::rfc3339")] time::OffsetDateTime);
    #[derive(Deserialize)]
    struct Naive(#[serde(with = "python_naive")] time::PrimitiveDateTime);
    #[derive(Deserialize)]
    struct Clock(#[serde(with = "python_time")] time::Time);

    assert_eq!(
        read::<Rfc3339>(&p[EXPRS[0]]).unwrap().0,
        time::macros::datetime!(2024-03-01 09:30:00.123456 +01:00)
    );
    assert_eq!(
        read::<Rfc3339>(&p[EXPRS[1]]).unwrap().0,
        time::macros::datetime!(2024-03-01 09:30:00 UTC)
    );
    assert_eq!(
        read::<Naive>(&p[EXPRS[2]]).unwrap().0,
        time::macros::datetime!(2024-03-01 09:30:00.000005)
    );
    assert_eq!(
        read::<Naive>(&p[EXPRS[3]]).unwrap().0,
        time::macros::datetime!(2024-03-01 09:30:00)
    );
    // time::Date's own serde form is Python's isoformat().
    assert_eq!(
        read::<time::Date>(&p[EXPRS[4]]).unwrap(),
        time::macros::date!(2024 - 02 - 29)
    );
    assert_eq!(
        read::<Clock>(&p[EXPRS[5]]).unwrap().0,
        time::macros::time!(23:59:59.999999)
    );
    assert_eq!(
        read::<Clock>(&p[EXPRS[6]]).unwrap().0,
        time::macros::time!(7:00)
    );
    // time::Duration's own serde form is "seconds.fraction", which a timedelta is read as.
    assert_eq!(
        read::<time::Duration>(&p[EXPRS[7]]).unwrap(),
        time::Duration::microseconds(-999_999)
    );
    assert_eq!(
        read::<time::Duration>(&p[EXPRS[8]]).unwrap(),
        time::Duration::days(2) + time::Duration::microseconds(7)
    );
}

#[test]
fn decimals_and_uuids_read_pythons() {
    let p = cpython(EXPRS);
    assert_eq!(
        read::<rust_decimal::Decimal>(&p[EXPRS[9]]).unwrap(),
        rust_decimal::Decimal::new(-150, 2)
    );
    assert_eq!(
        read::<rust_decimal::Decimal>(&p[EXPRS[10]])
            .unwrap()
            .to_string(),
        "-1500"
    );
    // rust_decimal has no NaN.
    assert!(read::<rust_decimal::Decimal>(&p[EXPRS[11]]).is_err());
    let big: bigdecimal::BigDecimal = read(&p[EXPRS[9]]).unwrap();
    assert_eq!(big, "-1.50".parse::<bigdecimal::BigDecimal>().unwrap());
    assert_eq!(big.fractional_digit_count(), 2);
    assert_eq!(
        read::<bigdecimal::BigDecimal>(&p[EXPRS[10]]).unwrap(),
        bigdecimal::BigDecimal::from(-1500)
    );
    assert_eq!(
        read::<uuid::Uuid>(&p[EXPRS[12]]).unwrap(),
        uuid::Uuid::from_u128(0x6f0e_2a1c_0000_4000_8000_0000_0000_0001)
    );
    // complex reads as (re, im).
    assert_eq!(read::<(f64, f64)>(&p[EXPRS[13]]).unwrap(), (1.5, -2.0));
}

#[test]
fn a_struct_of_them_reads_a_python_dict_and_writes_them_as_text() {
    #[derive(Debug, PartialEq, Deserialize, serde::Serialize)]
    struct Offer {
        until: chrono::DateTime<Utc>,
        price: rust_decimal::Decimal,
        id: uuid::Uuid,
    }
    let p = cpython(EXPRS);
    let stored = STANDARD.encode(&p[EXPRS[14]]);
    let offer = Pickle::<Offer>::new().decode(stored.as_bytes()).unwrap();
    assert_eq!(
        offer,
        Offer {
            until: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
            price: rust_decimal::Decimal::new(999, 2),
            id: uuid::Uuid::from_u128(1),
        }
    );
    // Through serde, these types are written as text (serde has no date, decimal or UUID),
    // and read back from that text too.
    let stored = Pickle::<Offer>::new().encode(&offer).unwrap();
    let Value::Dict(fields) = Pickle::<Value>::new().decode(&stored).unwrap() else {
        panic!("not a dict");
    };
    let text = |name: &str| match &fields[&durabledict_encoding::HashableValue::String(name.into())]
    {
        Value::String(s) => s.clone(),
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(text("until"), "2030-01-01T00:00:00Z");
    assert_eq!(text("price"), "9.99");
    assert_eq!(text("id"), "00000000-0000-0000-0000-000000000001");
    assert_eq!(Pickle::<Offer>::new().decode(&stored).unwrap(), offer);
}

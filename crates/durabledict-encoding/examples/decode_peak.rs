//! Decodes one stored value (base64 of a pickle, as Python durabledict stores it) read from a
//! file, and prints how long that took. Run it under `/usr/bin/time -v` to see the peak memory
//! of a `get` of that value: `cargo run --release --example decode_peak -- FILE`.
//!
//! The figures in the durabledict repository's `docs/PERFORMANCE.md` ("Pickle decoding") come
//! from this and from `benches/pickle.rs`.

use std::time::Instant;

use durabledict_encoding::{BoxError, DynamicPickle, Encoding, PickleValue};

fn main() -> Result<(), BoxError> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: decode_peak FILE (base64 of a pickle)")?;
    let stored = std::fs::read(path)?;
    let start = Instant::now();
    let value = DynamicPickle::new().decode(&stored)?;
    let took = start.elapsed();
    let shape = match &value {
        PickleValue::Bytes(b) => format!("bytes of {}", b.len()),
        PickleValue::List(items) => format!("list of {}", items.len()),
        _ => "other".to_string(),
    };
    println!(
        "decoded {} stored bytes into {shape} in {took:?}",
        stored.len()
    );
    Ok(())
}

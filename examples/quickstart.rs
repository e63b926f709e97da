//! Two handles on one SQLite file, as two processes would share it: a write through one is
//! read through the other.
//!
//! ```sh
//! cargo run --example quickstart --features sqlite
//! ```

use durabledict::{OpenOptions, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path =
        std::env::temp_dir().join(format!("durabledict-quickstart-{}.db", std::process::id()));
    let url = format!("sqlite:{}", path.display());
    let options = OpenOptions::new().keyspace("settings");

    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let writer = durabledict::open(&url, &options)?;
        let reader = durabledict::open(&url, &options)?;

        writer.insert("greeting", Value::String("hello".into()))?;
        writer.insert(
            "limits",
            Value::Tuple(vec![Value::I64(10), Value::F64(0.5)]),
        )?;

        // The reader checks the stamp before each read and reloads once it changed.
        let greeting = reader.get("greeting")?;
        println!("greeting = {greeting:?}");
        assert_eq!(greeting.as_deref(), Some(&Value::String("hello".into())));
        println!("limits = {:?}", reader.get("limits")?);
        println!("last_updated = {:?}", reader.last_updated()?);
        Ok(())
    })();

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    result
}

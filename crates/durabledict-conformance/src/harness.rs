//! The pieces every property uses: a random keyspace cleaned up on drop, a counting store
//! wrapper, test value types with their encodings, and waiting for eventual visibility.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use durabledict_core::{
    BoxError, Call, DurableDict, Encoding, Layer, Layered, Raw, Store, StoreError, SyncPolicy,
};
use rand::Rng;

use crate::fixture::{Capabilities, Fixture, Visibility};

/// A random keyspace for one test, cleaned up when dropped (also when the test panics).
pub struct Keyspace<'f> {
    fixture: &'f dyn Fixture,
    name: String,
    caps: Capabilities,
}

impl std::fmt::Debug for Keyspace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace")
            .field("name", &self.name)
            .finish()
    }
}

impl<'f> Keyspace<'f> {
    /// A fresh random keyspace on `fixture`.
    pub fn new(fixture: &'f dyn Fixture) -> Self {
        let suffix: u64 = rand::rng().random();
        Keyspace {
            fixture,
            name: format!("ddconf{suffix:016x}"),
            caps: fixture.capabilities(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fixture's capabilities.
    pub fn caps(&self) -> &Capabilities {
        &self.caps
    }

    /// A new store handle on this keyspace.
    pub fn store(&self) -> Box<dyn Store> {
        self.fixture
            .store(&self.name)
            .unwrap_or_else(|e| panic!("fixture could not open keyspace {}: {e}", self.name))
    }

    /// A new store handle wrapped so that loads are counted.
    pub fn counting_store(&self) -> (CountingStore, Arc<AtomicUsize>) {
        let loads = Arc::new(AtomicUsize::new(0));
        (
            Layered::new(CountLoads(Arc::clone(&loads)), self.store()),
            loads,
        )
    }

    /// A string dict (values stored as UTF-8) on a new store handle.
    pub fn dict(&self, policy: SyncPolicy) -> DurableDict<String> {
        DurableDict::builder(self.store(), Raw)
            .policy(policy)
            .build()
            .unwrap_or_else(|e| panic!("building a dict on {}: {e}", self.name))
    }

    /// Loses the stamp; `false` when the backend cannot.
    pub fn lose_stamp(&self) -> bool {
        self.fixture
            .lose_stamp(&self.name)
            .unwrap_or_else(|e| panic!("losing the stamp of {}: {e}", self.name))
    }

    /// Writes without a stamp bump; `false` when the backend cannot.
    pub fn write_unstamped(&self, key: &str, value: &[u8]) -> bool {
        self.fixture
            .write_unstamped(&self.name, key, value)
            .unwrap_or_else(|e| panic!("writing {key:?} unstamped in {}: {e}", self.name))
    }

    /// Waits until `check` holds: at once for immediate visibility, within the bound otherwise.
    /// Panics with `what` when it never holds.
    pub fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let bound = match self.caps.visibility {
            Visibility::Immediate => Duration::ZERO,
            Visibility::Within(bound) => bound,
        };
        let deadline = Instant::now() + bound;
        loop {
            if check() {
                return;
            }
            assert!(Instant::now() < deadline, "{what} (within {bound:?})");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Keyspace<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.fixture.cleanup(&self.name)
            && !std::thread::panicking()
        {
            panic!("cleanup of keyspace {} failed: {e}", self.name);
        }
    }
}

/// A store wrapper that counts full loads ([`Store::durables`]) and forwards everything else
/// (through [`Layered`], so methods added to `Store` later are forwarded too).
pub type CountingStore = Layered<CountLoads, Box<dyn Store>>;

/// The [`Layer`] of a [`CountingStore`]: counts [`Store::durables`] calls.
#[derive(Debug)]
pub struct CountLoads(Arc<AtomicUsize>);

impl Layer for CountLoads {
    fn around<T>(
        &self,
        call: Call<'_>,
        run: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if call == Call::Durables {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        run()
    }
}

/// A structured value, like the reference suite's tuple of strings, a float, a list of ints
/// and "☃".
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// Some text.
    pub name: String,
    /// A float.
    pub weight: f64,
    /// A list of integers.
    pub counts: Vec<i64>,
}

impl Typed {
    /// The reference suite's complex value.
    pub fn sample() -> Self {
        Typed {
            name: "☃ snowman".to_string(),
            weight: 2.5e-3,
            counts: vec![1, -2, 3, i64::MAX],
        }
    }
}

/// A line-based encoding for [`Typed`]: name, weight bits, comma-separated counts. Decoding
/// refuses anything else, so it doubles as the "custom encoding" of the reference suite.
#[derive(Debug, Clone, Copy, Default)]
pub struct TypedEncoding;

/// Prefix marking values written by [`TypedEncoding`].
pub const TYPED_MAGIC: &str = "typed/v1\n";

impl Encoding<Typed> for TypedEncoding {
    fn encode(&self, value: &Typed) -> Result<Vec<u8>, BoxError> {
        if value.name.contains('\n') {
            return Err("name contains a newline".into());
        }
        let counts: Vec<String> = value.counts.iter().map(i64::to_string).collect();
        Ok(format!(
            "{TYPED_MAGIC}{}\n{:016x}\n{}",
            value.name,
            value.weight.to_bits(),
            counts.join(",")
        )
        .into_bytes())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Typed, BoxError> {
        let text = std::str::from_utf8(bytes)?;
        let body = text
            .strip_prefix(TYPED_MAGIC)
            .ok_or("not a typed/v1 value")?;
        let mut lines = body.split('\n');
        let name = lines.next().ok_or("missing name")?.to_owned();
        let weight = f64::from_bits(u64::from_str_radix(
            lines.next().ok_or("missing weight")?,
            16,
        )?);
        let counts = match lines.next().ok_or("missing counts")? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<i64>, _>>()?,
        };
        if lines.next().is_some() {
            return Err("trailing data".into());
        }
        Ok(Typed {
            name,
            weight,
            counts,
        })
    }
}

/// Reads `key` from `dict` as an owned `String`, panicking on errors.
pub fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key)
        .unwrap_or_else(|e| panic!("get {key:?}: {e}"))
        .map(|v| (*v).clone())
}

/// The dict's whole contents as a sorted list, panicking on errors.
pub fn contents(dict: &DurableDict<String>) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = dict
        .iter()
        .unwrap_or_else(|e| panic!("iter: {e}"))
        .map(|(k, v)| (k, (*v).clone()))
        .collect();
    all.sort();
    all
}

/// The store's whole contents as a sorted list of UTF-8 strings, panicking on errors.
pub fn store_contents(store: &dyn Store) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = store
        .durables()
        .unwrap_or_else(|e| panic!("durables: {e}"))
        .entries
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    all.sort();
    all
}

/// `s` as owned pairs, sorted.
pub fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = s
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
// The suite reports failures by panicking, as tests do.
#![allow(clippy::unwrap_used)]

mod basic;
mod concurrency;
mod fixture;
mod harness;
mod memory;
mod model;
mod sync;

pub use basic::{
    clear, contains_key, encoding_is_used, get_default, invalid_input, loads_existing, overwrite,
    pop, remove, set_and_get, setdefault, shared_through_arc, stamp_changes_on_writes,
    typed_values, unusual_keys, update_batch, views_and_snapshots, writes_reach_store,
};
pub use concurrency::concurrent_writers_converge;
pub use fixture::{Capabilities, Fixture, Visibility};
pub use harness::{CountingStore, Keyspace, TYPED_MAGIC, Typed, TypedEncoding};
pub use memory::MemoryFixture;
pub use model::model;
pub use sync::{
    always_follows_the_stamp, bounded_staleness, instances_converge, keyspaces_are_isolated,
    manual_waits_for_sync, own_writes_do_not_reload, stamp_loss_recovery,
};

/// Expands to one `#[test]` per property of the suite, in a module named `$module`, each
/// running the property against the fixture `$fixture` (an expression evaluated once per
/// test; share expensive servers through a `static`).
///
/// Name the module `conformance_<backend>`: `cargo xtask test` builds its conformance matrix
/// from test names of that shape.
///
/// ```
/// durabledict_conformance::suite!(conformance_memory, durabledict_conformance::MemoryFixture::new());
/// ```
#[macro_export]
macro_rules! suite {
    ($module:ident, $fixture:expr) => {
        $crate::suite!(@module $module, $fixture;
            set_and_get, overwrite, remove, writes_reach_store, typed_values, setdefault,
            loads_existing, stamp_changes_on_writes, pop, get_default, contains_key,
            encoding_is_used, update_batch, clear, views_and_snapshots, unusual_keys,
            invalid_input, shared_through_arc, always_follows_the_stamp, manual_waits_for_sync,
            bounded_staleness, keyspaces_are_isolated, instances_converge, stamp_loss_recovery,
            own_writes_do_not_reload, concurrent_writers_converge, model,
        );
    };
    (@module $module:ident, $fixture:expr; $($property:ident),* $(,)?) => {
        #[cfg(test)]
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $property() {
                    let fixture = $fixture;
                    $crate::$property(&fixture);
                }
            )*
        }
    };
}

/// The names of every property, in the order [`suite!`] runs them.
pub const PROPERTIES: &[&str] = &[
    "set_and_get",
    "overwrite",
    "remove",
    "writes_reach_store",
    "typed_values",
    "setdefault",
    "loads_existing",
    "stamp_changes_on_writes",
    "pop",
    "get_default",
    "contains_key",
    "encoding_is_used",
    "update_batch",
    "clear",
    "views_and_snapshots",
    "unusual_keys",
    "invalid_input",
    "shared_through_arc",
    "always_follows_the_stamp",
    "manual_waits_for_sync",
    "bounded_staleness",
    "keyspaces_are_isolated",
    "instances_converge",
    "stamp_loss_recovery",
    "own_writes_do_not_reload",
    "concurrent_writers_converge",
    "model",
];

#[cfg(test)]
mod tests {
    crate::suite!(conformance_memory, crate::MemoryFixture::new());
    crate::suite!(
        conformance_memory_limited,
        crate::MemoryFixture::with_max_value_len(64)
    );
}

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
mod push;
mod sync;

pub use basic::{
    clear, contains_key, encoding_is_used, get_default, invalid_input, loads_existing, overwrite,
    pop, remove, set_and_get, setdefault, shared_through_arc, stamp_changes_on_writes,
    typed_values, undecodable_value_poisons_only_its_key, unusual_keys, update_batch,
    views_and_snapshots, writes_reach_store,
};
pub use concurrency::concurrent_writers_converge;
pub use fixture::{Capabilities, Fixture, Visibility};
pub use harness::{CountLoads, CountingStore, Keyspace, TYPED_MAGIC, Typed, TypedEncoding};
pub use memory::MemoryFixture;
pub use model::model;
pub use push::{listeners_converge, watch_hears_changes, watch_is_never_stale_without_its_feed};
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
        $crate::__properties!(suite $module, $fixture);
    };
}

/// The one list of properties, handed to what needs it (the list is written once, here).
#[doc(hidden)]
#[macro_export]
macro_rules! __properties {
    ($($selector:tt)*) => {
        $crate::__with_properties! {
            [
                set_and_get, overwrite, remove, writes_reach_store, typed_values, setdefault,
                loads_existing, stamp_changes_on_writes, pop, get_default, contains_key,
                encoding_is_used, undecodable_value_poisons_only_its_key, update_batch, clear,
                views_and_snapshots, unusual_keys, invalid_input, shared_through_arc, always_follows_the_stamp,
                manual_waits_for_sync, bounded_staleness, keyspaces_are_isolated,
                instances_converge, stamp_loss_recovery, own_writes_do_not_reload,
                concurrent_writers_converge, watch_hears_changes,
                watch_is_never_stale_without_its_feed, listeners_converge, model
            ]
            $($selector)*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __with_properties {
    ([$($property:ident),*] suite $module:ident, $fixture:expr) => {
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
    ([$($property:ident),*] all) => {
        vec![$((stringify!($property), $crate::$property as $crate::Property)),*]
    };
}

/// A property: panics when the fixture's backend does not have it.
pub type Property = fn(&dyn Fixture);

/// Every property with its name, in the order [`suite!`] runs them.
pub fn all() -> Vec<(&'static str, Property)> {
    __properties!(all)
}

/// Runs every property against `fixture`, in order, panicking at the first failure. The
/// [`suite!`] macro is usually better: it reports each property as its own test.
pub fn run_all(fixture: &dyn Fixture) {
    for (name, property) in all() {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| property(fixture)));
        if let Err(panic) = result {
            eprintln!("conformance property {name} failed");
            std::panic::resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    crate::suite!(conformance_memory, crate::MemoryFixture::new());
    crate::suite!(
        conformance_memory_limited,
        crate::MemoryFixture::with_max_value_len(64)
    );
    crate::suite!(conformance_memory_feed, crate::MemoryFixture::with_feed());
}

//! [`ConfigurationChanges`]: the dict's change feed as OpenFeature configuration-changed events.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use durabledict_aio::Changes;
use durabledict_core::Event;
use futures_core::Stream;

use crate::provider::DurableDictProvider;
use crate::value::FlagValue;

/// OpenFeature's `PROVIDER_CONFIGURATION_CHANGED` event: which flags changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigurationChanged {
    /// The keys of the flags that changed; empty when changes were missed (the stream fell
    /// behind) and any flag may have changed.
    pub flags_changed: Vec<String>,
}

/// A stream of [`ConfigurationChanged`], one per changed flag, from the dict's change feed;
/// made by [`DurableDictProvider::configuration_changes`].
pub struct ConfigurationChanges<V> {
    changes: Changes<V>,
}

impl<V> fmt::Debug for ConfigurationChanges<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigurationChanges")
            .finish_non_exhaustive()
    }
}

impl<V: FlagValue + PartialEq> DurableDictProvider<V> {
    /// The configuration-changed events, once the dict is built (`None` before). Returns once
    /// subscribed, waiting off the executor (see [`AsyncDict::changes`](durabledict_aio::AsyncDict::changes)).
    pub async fn configuration_changes(&self) -> Option<ConfigurationChanges<V>> {
        let dict = self.dict()?;
        Some(ConfigurationChanges {
            changes: dict.changes().await,
        })
    }
}

impl<V> Stream for ConfigurationChanges<V> {
    type Item = ConfigurationChanged;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.changes).poll_next(cx).map(|event| {
            event.map(|event| ConfigurationChanged {
                flags_changed: match event {
                    Event::Changed(change) => vec![change.key.to_string()],
                    _ => Vec::new(),
                },
            })
        })
    }
}

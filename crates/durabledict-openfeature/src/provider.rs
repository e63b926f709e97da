//! [`DurableDictProvider`]: the OpenFeature provider over a dict.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use durabledict_aio::{AsyncDict, Builder};
use durabledict_core::{BoxError, Error, Report};
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationError, EvaluationErrorCode, EvaluationReason, EvaluationResult,
    StructValue, async_trait,
};

use crate::value::FlagValue;

/// How long the provider waits between attempts to reach the store after a failed start.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);

const NOT_READY: u8 = 0;
const READY: u8 = 1;
const ERROR: u8 = 2;

type Connect<V> = dyn Fn() -> Result<Builder<V>, BoxError> + Send + Sync;

/// An OpenFeature provider whose flags are the entries of a dict: flag key = dict key, flag
/// value = the stored value, read through [`FlagValue`].
///
/// - **Reasons**: `CACHED` when the read answered from the cache with no I/O (`Manual`,
///   `Watch` with a healthy feed, `AtMostEvery` within its window), `STATIC` when it checked
///   the store first (`Always`); errors come back as OpenFeature errors, which the client
///   reports with reason `ERROR` and the caller's default.
/// - **Errors**: an absent key is `FLAG_NOT_FOUND`; a value of another type `TYPE_MISMATCH`; a
///   stored value that does not decode `PARSE_ERROR` (it poisons only its own flag); no dict
///   yet (the store could not be reached at start) `PROVIDER_NOT_READY`; a store failure
///   during a read `GENERAL`.
/// - **Status**: `NOT_READY` until the dict is built; `READY` after; `ERROR` after a failed
///   start (it keeps trying every [`DEFAULT_RETRY`]) or while reads fail on the store, and
///   `READY` again with the next good read.
/// - **Events**: open-feature 0.3 has no provider events;
///   [`configuration_changes`](Self::configuration_changes) is the dict's change feed as a
///   stream of [`ConfigurationChanged`](crate::ConfigurationChanged).
///
/// Cheap to clone: keep a clone to watch its changes after handing one to OpenFeature.
pub struct DurableDictProvider<V> {
    inner: Arc<Inner<V>>,
    metadata: ProviderMetadata,
}

struct Inner<V> {
    dict: OnceLock<AsyncDict<V>>,
    status: AtomicU8,
    connect: Option<Box<Connect<V>>>,
    retry: Duration,
}

impl<V> Clone for DurableDictProvider<V> {
    fn clone(&self) -> Self {
        DurableDictProvider {
            inner: Arc::clone(&self.inner),
            metadata: self.metadata.clone(),
        }
    }
}

impl<V> fmt::Debug for DurableDictProvider<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableDictProvider")
            .field("metadata", &self.metadata)
            .field("ready", &self.inner.dict.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<V: FlagValue> DurableDictProvider<V> {
    /// A provider over a dict already built: ready at once.
    pub fn new(dict: AsyncDict<V>) -> Self {
        let inner = Inner {
            dict: OnceLock::from(dict),
            status: AtomicU8::new(READY),
            connect: None,
            retry: DEFAULT_RETRY,
        };
        Self::with_inner(inner)
    }

    /// A provider that builds its dict when OpenFeature initializes it, from the builder
    /// `connect` returns. While the store cannot be reached it is not ready (evaluations fail
    /// with `PROVIDER_NOT_READY`) and it tries again every [`DEFAULT_RETRY`].
    pub fn connect(
        connect: impl Fn() -> Result<Builder<V>, BoxError> + Send + Sync + 'static,
    ) -> Self {
        Self::connect_retrying(connect, DEFAULT_RETRY)
    }

    /// [`connect`](Self::connect), trying again every `retry`.
    pub fn connect_retrying(
        connect: impl Fn() -> Result<Builder<V>, BoxError> + Send + Sync + 'static,
        retry: Duration,
    ) -> Self {
        let inner = Inner {
            dict: OnceLock::new(),
            status: AtomicU8::new(NOT_READY),
            connect: Some(Box::new(connect)),
            retry,
        };
        Self::with_inner(inner)
    }

    fn with_inner(inner: Inner<V>) -> Self {
        DurableDictProvider {
            inner: Arc::new(inner),
            metadata: ProviderMetadata::new("durabledict"),
        }
    }

    /// The dict, once built.
    pub fn dict(&self) -> Option<&AsyncDict<V>> {
        self.inner.dict.get()
    }

    /// One flag: the stored value converted by `read`, with its reason; an error mapped to
    /// OpenFeature's codes.
    async fn resolve<T>(
        &self,
        key: &str,
        expected: &str,
        read: impl FnOnce(&V) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let Some(dict) = self.inner.dict.get() else {
            return Err(error(
                EvaluationErrorCode::ProviderNotReady,
                "the store has not been reached yet",
            ));
        };
        // The cache answers with no I/O, or the read checks the store first (on the task with
        // a stamp source, else off the executor): one decision for both the path and the
        // reason, taken by the dict itself, so a local answer never turns into I/O here.
        let (reason, looked_up) = match dict.sync_dict().try_get_local(key) {
            Some(local) => (EvaluationReason::Cached, local),
            None => (EvaluationReason::Static, dict.get(key).await),
        };
        let value = match looked_up {
            Ok(value) => {
                self.inner.set_status(READY);
                value
            }
            Err(e) => return Err(self.inner.failed(e)),
        };
        let Some(value) = value else {
            return Err(error(
                EvaluationErrorCode::FlagNotFound,
                format!("no flag {key:?}"),
            ));
        };
        match read(&value) {
            Some(v) => Ok(ResolutionDetails {
                value: v,
                variant: None,
                reason: Some(reason),
                flag_metadata: None,
            }),
            None => Err(error(
                EvaluationErrorCode::TypeMismatch,
                format!("flag {key:?} holds a {}, not a {expected}", value.kind()),
            )),
        }
    }
}

impl<V> Inner<V> {
    fn set_status(&self, status: u8) {
        // Read first: evaluations on many threads do not write the shared line for nothing.
        if self.status.load(Ordering::Relaxed) != status {
            self.status.store(status, Ordering::Relaxed);
        }
    }

    fn failed(&self, e: Error) -> EvaluationError {
        // The message says the whole chain: the error's own text names no cause.
        let message = Report(&e).to_string();
        match e {
            Error::Decode { .. } => error(EvaluationErrorCode::ParseError, message),
            Error::Store { .. } => {
                self.set_status(ERROR);
                error(EvaluationErrorCode::General(message.clone()), message)
            }
            _ => error(EvaluationErrorCode::General(message.clone()), message),
        }
    }
}

impl<V: FlagValue> Inner<V> {
    /// Builds the dict; `false` when the store could not be reached (or there is no way to
    /// build one).
    async fn try_build(&self) -> bool {
        let Some(connect) = &self.connect else {
            return false;
        };
        let built = match connect() {
            Ok(builder) => builder.build().await.map_err(BoxError::from),
            Err(e) => Err(e),
        };
        match built {
            Ok(dict) => {
                // A concurrent attempt may have won; both dicts are equal, keep the first.
                let _ = self.dict.set(dict);
                self.set_status(READY);
                true
            }
            Err(_) => {
                self.set_status(ERROR);
                false
            }
        }
    }

    /// Tries again every `retry` until the dict is built or the provider is dropped.
    async fn keep_trying(inner: Weak<Self>, retry: Duration) {
        loop {
            tokio::time::sleep(retry).await;
            let Some(inner) = inner.upgrade() else { return };
            if inner.dict.get().is_some() || inner.try_build().await {
                return;
            }
        }
    }
}

fn error(code: EvaluationErrorCode, message: impl Into<String>) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message.into()),
    }
}

#[async_trait]
impl<V: FlagValue> FeatureProvider for DurableDictProvider<V> {
    async fn initialize(&mut self, _context: &EvaluationContext) {
        if self.inner.dict.get().is_some() || self.inner.try_build().await {
            return;
        }
        tokio::spawn(Inner::keep_trying(
            Arc::downgrade(&self.inner),
            self.inner.retry,
        ));
    }

    fn status(&self) -> ProviderStatus {
        match self.inner.status.load(Ordering::Relaxed) {
            READY => ProviderStatus::Ready,
            ERROR => ProviderStatus::Error,
            _ => ProviderStatus::NotReady,
        }
    }

    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, "boolean", FlagValue::as_bool).await
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(flag_key, "integer", FlagValue::as_int).await
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(flag_key, "float", FlagValue::as_float).await
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(flag_key, "string", FlagValue::as_string).await
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve(flag_key, "structure", FlagValue::as_struct)
            .await
    }
}

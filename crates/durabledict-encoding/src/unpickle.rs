//! The pickle decoder: a small stack machine that runs a pickle's opcodes without ever calling
//! anything, and builds a [`Value`].
//!
//! A pickle is a program; Python's unpickler runs it, and a pickle that names a global
//! (`os.system`, `builtins.eval` ...) and REDUCEs it calls that global. This machine knows only
//! the few globals CPython uses for builtin data types (`set`, `frozenset`, `bytearray`, `bytes`,
//! `_codecs.encode`, `collections.OrderedDict`) and for the allowed standard library types
//! (`datetime`'s five, `decimal.Decimal`, `uuid.UUID`, `complex`), and computes their results
//! itself from arguments of exactly the types and ranges CPython's own pickles hold; any other
//! global, call, class instance, state, extension or persistent id is refused when its opcode
//! is met.
//!
//! # Memory
//!
//! While the opcodes run, a memoized value is shared, not copied: a GET pushes a reference
//! (every heap object is an `Rc`), as CPython does. The result type, [`Value`], cannot share,
//! so a value referenced `n` times is copied `n - 1` times into the result (the last reference
//! takes the original). Before anything is copied, one pass over the finished graph computes the
//! size of the result, copies included, and its nesting depth; a pickle whose result would be
//! larger than the configured cap or nest deeper than [`MAX_DEPTH`] is refused then. So memory
//! is bounded by what is built: the graph (a small constant per opcode, plus payloads that
//! come from the input) and a result no larger than the cap. The few calls that copy or
//! compute a vector of items (`set(list)`, `frozenset(list)`, a Python 2 `OrderedDict`'s
//! pairs, REDUCE's arguments, latin-1 text to bytes) charge it to a running budget checked
//! against the same cap as they run, so a memoized list called again and again cannot grow
//! the graph beyond it; and whatever POP lets go of is released at once.
//!
//! Objects are never dropped recursively (a hostile pickle can nest millions deep, and can make
//! a list contain itself): everything the machine lets go of is released through a work list,
//! and containers that may sit in a cycle are emptied at the end (see [`Machine::sweep`]).
//!
//! # Text
//!
//! CPython writes text with `surrogatepass`, so a `str` may hold lone surrogates, which a Rust
//! `String` cannot. [`Surrogates`] says what happens to them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem;
use std::rc::{Rc, Weak};

use num_bigint::{BigInt, Sign};

use crate::datetime::{Date, DateTime, RangeError, Time, TimeDelta, TimeZone};
use crate::decimal::Decimal;
use crate::error::DecodeError;
use crate::mime_base64::Base64Chunks;
use crate::pickle::{Python2Str, Surrogates};
use crate::value::{Complex, HashableValue, SafeUuid, Uuid, Value};
use serde_pickle::{HashableValue as SerdeHashable, Value as SerdeValue};

/// How deeply containers may nest in a decoded pickle; `serde_json` uses the same limit.
pub(crate) const MAX_DEPTH: u32 = 128;

/// The longest decimal integer read from a protocol 0 line, as CPython 3.11+ (`sys.int_info`'s
/// default `str_digits_check_threshold` is 640, its default limit 4300): parsing is quadratic.
pub(crate) const MAX_DECIMAL_DIGITS: usize = 4300;

/// The first of the 2048 code points a lone surrogate U+D800 + k is read as, with
/// [`Surrogates::PrivateUse`]: U+10F800 + k, the end of Supplementary Private Use Area-B.
pub(crate) const SURROGATE_BASE: u32 = 0x10_F800;

/// What the decoder is asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) python2_str: Python2Str,
    pub(crate) surrogates: Surrogates,
    pub(crate) max_size: u64,
}

/// Decodes a raw pickle.
pub(crate) fn from_slice<B: Build>(pickle: &[u8], options: Options) -> Result<B::Out, DecodeError> {
    Machine::new(Input::raw(pickle), options).decode::<B>()
}

/// Decodes a pickle stored as base64 text, decoding the base64 as it goes.
pub(crate) fn from_base64<B: Build>(text: &[u8], options: Options) -> Result<B::Out, DecodeError> {
    Machine::new(Input::base64(text), options).decode::<B>()
}

/// What the decoder builds the result as, directly (a second pass converting a large value
/// costs as much as a third of decoding it).
pub(crate) trait Build {
    type Out;
    type Key: Ord;
    fn none() -> Self::Out;
    fn bool(b: bool) -> Self::Out;
    fn i64(n: i64) -> Self::Out;
    fn int(n: BigInt) -> Self::Out;
    fn f64(f: f64) -> Self::Out;
    fn bytes(b: Vec<u8>) -> Self::Out;
    fn string(s: String) -> Self::Out;
    fn list(items: Vec<Self::Out>) -> Self::Out;
    fn tuple(items: Vec<Self::Out>) -> Self::Out;
    fn set(items: BTreeSet<Self::Key>) -> Self::Out;
    fn frozenset(items: BTreeSet<Self::Key>) -> Self::Out;
    fn dict(entries: BTreeMap<Self::Key, Self::Out>) -> Self::Out;
    /// A dict key or set member; an error for what Python cannot hash.
    fn key(value: Self::Out) -> Result<Self::Key, DecodeError>;
    /// A value of an allowed standard library type.
    fn stdlib(value: &Value) -> Result<Self::Out, DecodeError>;
}

fn unhashable() -> DecodeError {
    DecodeError::Pickle(serde_pickle::Error::Syntax(
        serde_pickle::ErrorCode::ValueNotHashable,
    ))
}

/// Builds [`Value`]s.
pub(crate) enum Keep {}

impl Build for Keep {
    type Out = Value;
    type Key = HashableValue;
    fn none() -> Value {
        Value::None
    }
    fn bool(b: bool) -> Value {
        Value::Bool(b)
    }
    fn i64(n: i64) -> Value {
        Value::I64(n)
    }
    fn int(n: BigInt) -> Value {
        Value::Int(n)
    }
    fn f64(f: f64) -> Value {
        Value::F64(f)
    }
    fn bytes(b: Vec<u8>) -> Value {
        Value::Bytes(b)
    }
    fn string(s: String) -> Value {
        Value::String(s)
    }
    fn list(items: Vec<Value>) -> Value {
        Value::List(items)
    }
    fn tuple(items: Vec<Value>) -> Value {
        Value::Tuple(items)
    }
    fn set(items: BTreeSet<HashableValue>) -> Value {
        Value::Set(items)
    }
    fn frozenset(items: BTreeSet<HashableValue>) -> Value {
        Value::FrozenSet(items)
    }
    fn dict(entries: BTreeMap<HashableValue, Value>) -> Value {
        Value::Dict(entries)
    }
    fn key(value: Value) -> Result<HashableValue, DecodeError> {
        value.into_hashable().map_err(|_| unhashable())
    }
    fn stdlib(value: &Value) -> Result<Value, DecodeError> {
        Ok(value.clone())
    }
}

/// Builds `serde_pickle::Value`s: with `TEXT`, the standard library types in the text forms
/// serde types read (`Pickle<V>`); without, they are an error (`DynamicPickle`).
pub(crate) enum Serde<const TEXT: bool> {}

impl<const TEXT: bool> Build for Serde<TEXT> {
    type Out = SerdeValue;
    type Key = SerdeHashable;
    fn none() -> SerdeValue {
        SerdeValue::None
    }
    fn bool(b: bool) -> SerdeValue {
        SerdeValue::Bool(b)
    }
    fn i64(n: i64) -> SerdeValue {
        SerdeValue::I64(n)
    }
    fn int(n: BigInt) -> SerdeValue {
        SerdeValue::Int(n)
    }
    fn f64(f: f64) -> SerdeValue {
        SerdeValue::F64(f)
    }
    fn bytes(b: Vec<u8>) -> SerdeValue {
        SerdeValue::Bytes(b)
    }
    fn string(s: String) -> SerdeValue {
        SerdeValue::String(s)
    }
    fn list(items: Vec<SerdeValue>) -> SerdeValue {
        SerdeValue::List(items)
    }
    fn tuple(items: Vec<SerdeValue>) -> SerdeValue {
        SerdeValue::Tuple(items)
    }
    fn set(items: BTreeSet<SerdeHashable>) -> SerdeValue {
        SerdeValue::Set(items)
    }
    fn frozenset(items: BTreeSet<SerdeHashable>) -> SerdeValue {
        SerdeValue::FrozenSet(items)
    }
    fn dict(entries: BTreeMap<SerdeHashable, SerdeValue>) -> SerdeValue {
        SerdeValue::Dict(entries)
    }
    fn key(value: SerdeValue) -> Result<SerdeHashable, DecodeError> {
        value.into_hashable().map_err(DecodeError::Pickle)
    }
    fn stdlib(value: &Value) -> Result<SerdeValue, DecodeError> {
        if TEXT {
            return Ok(value.clone().into_serde());
        }
        Err(DecodeError::Pickle(serde_pickle::Error::Syntax(
            serde_pickle::ErrorCode::Structure(format!(
                "the pickle holds a {}, which a PickleValue cannot hold (decode it with \
                 Pickle<Value>)",
                value.type_name()
            )),
        )))
    }
}

/// The size in bytes a [`Value`] is assumed to occupy, on top of its payload.
pub(crate) fn value_cost() -> u64 {
    mem::size_of::<Value>() as u64
}

/// The size a dict entry or set member is assumed to occupy beyond its value.
pub(crate) fn key_cost() -> u64 {
    mem::size_of::<HashableValue>() as u64 + 16
}

// --- the input ---

enum InputError {
    Truncated,
    Base64(DecodeError),
}

/// The pickle's bytes, either a slice or decoded from base64 one chunk at a time.
struct Input<'a> {
    chunk: std::borrow::Cow<'a, [u8]>,
    pos: usize,
    /// Bytes of the pickle before `chunk`.
    before: usize,
    base64: Option<Base64Chunks<'a>>,
}

impl<'a> Input<'a> {
    fn raw(pickle: &'a [u8]) -> Self {
        Input {
            chunk: std::borrow::Cow::Borrowed(pickle),
            pos: 0,
            before: 0,
            base64: None,
        }
    }

    fn base64(text: &'a [u8]) -> Self {
        Input {
            chunk: std::borrow::Cow::Owned(Vec::new()),
            pos: 0,
            before: 0,
            base64: Some(Base64Chunks::new(text)),
        }
    }

    fn offset(&self) -> usize {
        self.before + self.pos
    }

    /// Whether nothing at all is left.
    fn at_end(&mut self) -> Result<bool, InputError> {
        Ok(self.pos >= self.chunk.len() && !self.refill()?)
    }

    /// Reads the next chunk; `false` when there is none.
    fn refill(&mut self) -> Result<bool, InputError> {
        let Some(base64) = &mut self.base64 else {
            return Ok(false);
        };
        self.before += self.chunk.len();
        self.pos = 0;
        let buf = self.chunk.to_mut();
        loop {
            if !base64.next_into(buf).map_err(InputError::Base64)? {
                return Ok(false);
            }
            if !buf.is_empty() {
                return Ok(true);
            }
        }
    }

    fn remaining_at_most(&self) -> usize {
        let here = self.chunk.len() - self.pos;
        here.saturating_add(
            self.base64
                .as_ref()
                .map_or(0, Base64Chunks::remaining_at_most),
        )
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, InputError> {
        if let Some(&b) = self.chunk.get(self.pos) {
            self.pos += 1;
            return Ok(b);
        }
        if !self.refill()? {
            return Err(InputError::Truncated);
        }
        self.byte()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], InputError> {
        let mut out = [0u8; N];
        if let Some(bytes) = self.chunk.get(self.pos..self.pos + N) {
            out.copy_from_slice(bytes);
            self.pos += N;
        } else {
            for b in &mut out {
                *b = self.byte()?;
            }
        }
        Ok(out)
    }

    /// The next `n` bytes, in a vector of their own (never allocated beyond what the input can
    /// still hold, so a hostile length cannot reserve gigabytes).
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, InputError> {
        if n > self.remaining_at_most() {
            return Err(InputError::Truncated);
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.pos >= self.chunk.len() && !self.refill()? {
                return Err(InputError::Truncated);
            }
            let take = (n - out.len()).min(self.chunk.len() - self.pos);
            out.extend_from_slice(&self.chunk[self.pos..self.pos + take]);
            self.pos += take;
        }
        Ok(out)
    }

    /// Skips `n` bytes.
    fn skip(&mut self, mut n: usize) -> Result<(), InputError> {
        while n > 0 {
            if self.pos >= self.chunk.len() && !self.refill()? {
                return Err(InputError::Truncated);
            }
            let take = n.min(self.chunk.len() - self.pos);
            self.pos += take;
            n -= take;
        }
        Ok(())
    }

    /// A newline-terminated argument, without the newline (only: as CPython, a `\r` before it
    /// is kept, and only the opcodes whose argument CPython parses as a number trim it).
    fn line(&mut self) -> Result<Vec<u8>, InputError> {
        let mut out = Vec::new();
        loop {
            let rest = &self.chunk[self.pos..];
            if let Some(end) = rest.iter().position(|&b| b == b'\n') {
                out.extend_from_slice(&rest[..end]);
                self.pos += end + 1;
                return Ok(out);
            }
            out.extend_from_slice(rest);
            self.pos = self.chunk.len();
            if !self.refill()? {
                return Err(InputError::Truncated);
            }
        }
    }
}

// --- the objects the machine builds ---

type Shared<T> = Rc<RefCell<T>>;

fn shared<T>(value: T) -> Shared<T> {
    Rc::new(RefCell::new(value))
}

/// The globals a pickle may name: those CPython uses to pickle builtin data types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowed {
    /// `set(list)`, protocols 0-3.
    Set,
    /// `frozenset(list)`, protocols 0-3.
    FrozenSet,
    /// `bytearray(bytes)`, protocols 0-4.
    ByteArray,
    /// `_codecs.encode(text, "latin1")`: non-empty bytes, protocols 0-2.
    CodecsEncode,
    /// `bytes()`: empty bytes, protocols 0-2.
    Bytes,
    /// `collections.OrderedDict()`, then its items set like a dict's; or Python 2.7's
    /// `collections.OrderedDict([[k, v], ...])`.
    OrderedDict,
    /// `datetime.datetime(state[, tzinfo])`, the state 10 bytes.
    DateTime,
    /// `datetime.date(state)`, 4 bytes.
    Date,
    /// `datetime.time(state[, tzinfo])`, 6 bytes.
    Time,
    /// `datetime.timedelta(days, seconds, microseconds)`.
    TimeDelta,
    /// `datetime.timezone(offset[, name])`.
    TimeZone,
    /// `decimal.Decimal(text)`.
    Decimal,
    /// `complex(real, imag)`.
    Complex,
    /// `uuid.UUID`: only created empty (NEWOBJ, or `copyreg._reconstructor`), then given its
    /// state by BUILD.
    Uuid,
    /// `copyreg._reconstructor(uuid.UUID, object, None)`: protocols 0 and 1 create a UUID so.
    Reconstructor,
    /// `builtins.object`, only as `_reconstructor`'s second argument.
    Object,
}

const ALLOWED_NAMES: &str = "builtins.set, builtins.frozenset, builtins.bytearray, \
     builtins.bytes, _codecs.encode, collections.OrderedDict, datetime.datetime, datetime.date, \
     datetime.time, datetime.timedelta, datetime.timezone, decimal.Decimal, uuid.UUID, \
     builtins.complex, copyreg._reconstructor and builtins.object";

fn allowed(module: &[u8], name: &[u8]) -> Option<Allowed> {
    Some(match (module, name) {
        (b"builtins" | b"__builtin__", b"set") => Allowed::Set,
        (b"builtins" | b"__builtin__", b"frozenset") => Allowed::FrozenSet,
        (b"builtins" | b"__builtin__", b"bytearray") => Allowed::ByteArray,
        (b"builtins" | b"__builtin__", b"bytes") => Allowed::Bytes,
        (b"_codecs", b"encode") => Allowed::CodecsEncode,
        (b"collections", b"OrderedDict") => Allowed::OrderedDict,
        (b"datetime", b"datetime") => Allowed::DateTime,
        (b"datetime", b"date") => Allowed::Date,
        (b"datetime", b"time") => Allowed::Time,
        (b"datetime", b"timedelta") => Allowed::TimeDelta,
        (b"datetime", b"timezone") => Allowed::TimeZone,
        (b"decimal", b"Decimal") => Allowed::Decimal,
        (b"builtins" | b"__builtin__", b"complex") => Allowed::Complex,
        (b"uuid", b"UUID") => Allowed::Uuid,
        (b"copyreg" | b"copy_reg", b"_reconstructor") => Allowed::Reconstructor,
        (b"builtins" | b"__builtin__", b"object") => Allowed::Object,
        _ => return None,
    })
}

/// A stack or memo entry. Heap objects are shared, so that a memo GET costs one reference.
#[derive(Clone, Debug)]
enum Obj {
    None,
    Bool(bool),
    I64(i64),
    F64(f64),
    Int(Rc<BigInt>),
    Bytes(Shared<Vec<u8>>),
    Str(Shared<String>),
    List(Shared<Vec<Obj>>),
    Tuple(Shared<Vec<Obj>>),
    Set(Shared<Vec<Obj>>),
    FrozenSet(Shared<Vec<Obj>>),
    Dict(Shared<Vec<(Obj, Obj)>>),
    Global(Allowed),
    /// A finished value of an allowed standard library type (it holds no other object).
    Py(Rc<Value>),
    /// A `uuid.UUID` created empty, given its state (once) by BUILD.
    Uuid(Shared<Option<Uuid>>),
    /// A Python 2 `str` of non-ASCII bytes read with [`Python2Str::Text`]: its bytes are kept
    /// for a `datetime` state, and it becomes text (or its error) only in the result.
    Str2(Rc<Str2>),
}

/// See [`Obj::Str2`].
#[derive(Debug)]
struct Str2 {
    bytes: Vec<u8>,
    /// Why it is not text: its opcode's offset and the reason.
    not_text: Option<(usize, String)>,
}

/// A heap object's identity and how many references it has, for the objects that can be
/// shared.
impl Obj {
    fn identity(&self) -> Option<(usize, usize)> {
        fn of<T>(rc: &Rc<T>) -> Option<(usize, usize)> {
            Some((Rc::as_ptr(rc).cast::<()>() as usize, Rc::strong_count(rc)))
        }
        match self {
            Obj::Bytes(b) => of(b),
            Obj::Str(s) => of(s),
            Obj::List(v) | Obj::Tuple(v) | Obj::Set(v) | Obj::FrozenSet(v) => of(v),
            Obj::Dict(d) => of(d),
            Obj::Py(v) => of(v),
            Obj::Uuid(u) => of(u),
            Obj::Str2(s) => of(s),
            _ => None,
        }
    }

    /// Whether this object can hold other objects (and so be part of a cycle).
    fn is_container(&self) -> bool {
        matches!(
            self,
            Obj::List(_) | Obj::Tuple(_) | Obj::Set(_) | Obj::FrozenSet(_) | Obj::Dict(_)
        )
    }

    /// Moves this container's items to `out`, leaving it empty.
    fn take_items(&self, out: &mut Vec<Obj>) {
        match self {
            Obj::List(v) | Obj::Tuple(v) | Obj::Set(v) | Obj::FrozenSet(v) => {
                out.append(&mut v.borrow_mut());
            }
            Obj::Dict(d) => {
                for (k, v) in mem::take(&mut *d.borrow_mut()) {
                    out.push(k);
                    out.push(v);
                }
            }
            _ => {}
        }
    }

    fn weak(&self) -> Option<WeakObj> {
        Some(match self {
            Obj::List(v) => WeakObj::Items(Rc::downgrade(v)),
            Obj::Set(v) => WeakObj::Items(Rc::downgrade(v)),
            Obj::Tuple(v) => WeakObj::Items(Rc::downgrade(v)),
            Obj::FrozenSet(v) => WeakObj::Items(Rc::downgrade(v)),
            Obj::Dict(d) => WeakObj::Dict(Rc::downgrade(d)),
            _ => return None,
        })
    }

    fn type_name(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "bool",
            Obj::I64(_) | Obj::Int(_) => "int",
            Obj::F64(_) => "float",
            Obj::Bytes(_) => "bytes",
            Obj::Str(_) | Obj::Str2(_) => "str",
            Obj::Py(v) => v.type_name(),
            Obj::Uuid(_) => "uuid.UUID",
            Obj::List(_) => "list",
            Obj::Tuple(_) => "tuple",
            Obj::Set(_) => "set",
            Obj::FrozenSet(_) => "frozenset",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "a global",
        }
    }
}

/// A container that may end up in a cycle, kept to empty it at the end.
enum WeakObj {
    Items(Weak<RefCell<Vec<Obj>>>),
    Dict(Weak<RefCell<Vec<(Obj, Obj)>>>),
}

impl WeakObj {
    fn upgrade(&self) -> Option<Obj> {
        match self {
            WeakObj::Items(w) => w.upgrade().map(Obj::List),
            WeakObj::Dict(w) => w.upgrade().map(Obj::Dict),
        }
    }
}

// --- the machine ---

struct Machine<'a> {
    input: Input<'a>,
    options: Options,
    /// Where the current opcode starts.
    op: usize,
    stack: Vec<Obj>,
    /// The stack segments below each MARK.
    marks: Vec<Vec<Obj>>,
    /// Memo entries by id, for ids given in order from 0, as CPython gives them.
    memo: Vec<Option<Obj>>,
    /// Memo entries given other ids.
    sparse_memo: HashMap<u32, Obj>,
    /// What the objects the machine built so far cost beyond the input's own bytes (item
    /// vectors copied by calls), charged against the size cap as they are made.
    allocated: std::cell::Cell<u64>,
    /// Containers referenced more than once by the machine (memoized or DUPed): the only ones
    /// that can be in a cycle.
    maybe_cyclic: Vec<WeakObj>,
    /// Where the last FRAME met ends.
    frame_end: usize,
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        self.release_all();
        self.sweep();
    }
}

/// Drops `pending` without recursion: an object held only here is emptied into the work list
/// before it is dropped. Objects still referenced elsewhere are left untouched.
fn release(pending: Vec<Obj>) {
    release_each(pending, &mut Vec::new());
}

/// [`release`] of each of `objects`, with `work` as the work list.
fn release_each(objects: impl IntoIterator<Item = Obj>, work: &mut Vec<Obj>) {
    for obj in objects {
        if !obj.is_container() {
            continue;
        }
        work.push(obj);
        while let Some(obj) = work.pop() {
            if let Some((_, 1)) = obj.identity() {
                obj.take_items(work);
            }
        }
    }
}

impl<'a> Machine<'a> {
    fn new(input: Input<'a>, options: Options) -> Self {
        Machine {
            input,
            options,
            op: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Vec::new(),
            sparse_memo: HashMap::new(),
            allocated: std::cell::Cell::new(0),
            maybe_cyclic: Vec::new(),
            frame_end: 0,
        }
    }

    /// Lets go of objects at once (without recursion), as CPython does.
    fn discard(&mut self, objects: impl IntoIterator<Item = Obj>) {
        release_each(objects, &mut Vec::new());
    }

    /// Charges `items` new object slots (a copied or computed vector) to the size cap.
    fn charge(&self, items: usize) -> Result<(), DecodeError> {
        let cost = (items as u64).saturating_mul(mem::size_of::<Obj>() as u64);
        let total = self.allocated.get().saturating_add(cost);
        self.allocated.set(total);
        if total > self.options.max_size {
            return Err(DecodeError::Limit(format!(
                "the pickle's calls copy about {total} bytes of items (set(list) and the like); \
                 at most {} are allowed (Pickle::with_max_decoded_size)",
                self.options.max_size
            )));
        }
        Ok(())
    }

    /// Lets go of everything the machine holds.
    fn release_all(&mut self) {
        let mut work = Vec::new();
        release_each(self.stack.drain(..), &mut work);
        for below in self.marks.drain(..) {
            release_each(below, &mut work);
        }
        release_each(self.memo.drain(..).flatten(), &mut work);
        release_each(self.sparse_memo.drain().map(|(_, obj)| obj), &mut work);
    }

    /// Empties every container still alive once everything else is released: what is left
    /// can only be kept alive by a cycle.
    fn sweep(&mut self) {
        let mut pending = Vec::new();
        for weak in self.maybe_cyclic.drain(..) {
            if let Some(obj) = weak.upgrade() {
                obj.take_items(&mut pending);
                release(mem::take(&mut pending));
            }
        }
    }

    fn decode<B: Build>(mut self) -> Result<B::Out, DecodeError> {
        let root = self.run()?;
        // Let go of everything but the result, so that reference counts say what the result
        // shares.
        self.release_all();

        let mut shared = HashMap::new();
        let measured = measure(&root, 0, &mut shared);
        let result = match measured {
            Ok((size, _)) if size > self.options.max_size => Err(DecodeError::Limit(format!(
                "the pickle would decode to about {size} bytes (a value referenced more than \
                 once, a shared reference, is copied into the result each time); at most {} are \
                 allowed (Pickle::with_max_decoded_size)",
                self.options.max_size
            ))),
            Ok(_) => materialize::<B>(&root, true, &mut shared),
            Err(e) => Err(e),
        };
        self.discard([root]);
        result
    }

    /// Runs the opcodes up to STOP and returns what STOP returns.
    fn run(&mut self) -> Result<Obj, DecodeError> {
        if self.input.at_end().map_err(|e| self.input_error(e))? {
            return Err(self.malformed("empty pickle"));
        }
        loop {
            self.op = self.input.offset();
            let opcode = self.byte()?;
            match opcode {
                b'.' => {
                    // Base64 input only knows an upper bound of what is left: the rest of the
                    // last frame must be there.
                    let missing = self.frame_end.saturating_sub(self.input.offset());
                    if missing > 0 && self.input.skip(missing).is_err() {
                        return Err(self.frame_truncated());
                    }
                    return self.pop();
                }
                b'(' => {
                    let below = mem::take(&mut self.stack);
                    self.marks.push(below);
                }
                b'0' => {
                    if self.stack.is_empty() {
                        let items = self.pop_mark()?;
                        self.discard(items);
                    } else {
                        let item = self.pop()?;
                        self.discard([item]);
                    }
                }
                b'1' => {
                    let items = self.pop_mark()?;
                    self.discard(items);
                }
                b'2' => {
                    let top = self.top()?.clone();
                    if let Some(weak) = top.weak() {
                        self.maybe_cyclic.push(weak);
                    }
                    self.stack.push(top);
                }
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return Err(self.malformed(format!("unsupported protocol {proto}")));
                    }
                }
                0x95 => {
                    // CPython reads the whole frame when it meets FRAME.
                    let n = u64::from_le_bytes(self.array()?);
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= self.input.remaining_at_most())
                        .ok_or_else(|| self.frame_truncated())?;
                    self.frame_end = self.frame_end.max(self.input.offset() + n);
                }

                // Numbers.
                b'N' => self.stack.push(Obj::None),
                0x88 => self.stack.push(Obj::Bool(true)),
                0x89 => self.stack.push(Obj::Bool(false)),
                b'K' => {
                    let n = self.byte()?;
                    self.stack.push(Obj::I64(n.into()));
                }
                b'M' => {
                    let n = u16::from_le_bytes(self.array()?);
                    self.stack.push(Obj::I64(n.into()));
                }
                b'J' => {
                    let n = i32::from_le_bytes(self.array()?);
                    self.stack.push(Obj::I64(n.into()));
                }
                b'G' => {
                    let f = f64::from_be_bytes(self.array()?);
                    self.stack.push(Obj::F64(f));
                }
                b'I' => {
                    let line = self.line()?;
                    let obj = match &line[..] {
                        b"00" => Obj::Bool(false),
                        b"01" => Obj::Bool(true),
                        digits => self.decimal(digits)?,
                    };
                    self.stack.push(obj);
                }
                b'L' => {
                    let line = self.line()?;
                    let digits = line.strip_suffix(b"L").unwrap_or(&line);
                    let obj = self.decimal(digits)?;
                    self.stack.push(obj);
                }
                b'F' => {
                    let line = self.line()?;
                    let f = std::str::from_utf8(&line)
                        .ok()
                        .and_then(|text| text.trim().parse::<f64>().ok())
                        .ok_or_else(|| self.malformed("a FLOAT argument is not a float"))?;
                    self.stack.push(Obj::F64(f));
                }
                0x8a => {
                    let n = usize::from(self.byte()?);
                    let bytes = self.bytes(n)?;
                    self.stack.push(long(&bytes));
                }
                0x8b => {
                    let n = self.i32_len()?;
                    let bytes = self.bytes(n)?;
                    self.stack.push(long(&bytes));
                }

                // Python 2 str.
                b'S' => {
                    let line = self.line()?;
                    let bytes = self.quoted(&line)?;
                    let obj = self.python2_str(bytes)?;
                    self.stack.push(obj);
                }
                b'T' => {
                    let n = self.i32_len()?;
                    let bytes = self.bytes(n)?;
                    let obj = self.python2_str(bytes)?;
                    self.stack.push(obj);
                }
                b'U' => {
                    let n = usize::from(self.byte()?);
                    let bytes = self.bytes(n)?;
                    let obj = self.python2_str(bytes)?;
                    self.stack.push(obj);
                }

                // Bytes.
                b'B' => {
                    let n = self.u32_len()?;
                    self.push_bytes(n)?;
                }
                b'C' => {
                    let n = usize::from(self.byte()?);
                    self.push_bytes(n)?;
                }
                0x8e | 0x96 => {
                    let n = self.u64_len()?;
                    self.push_bytes(n)?;
                }

                // Text.
                b'V' => {
                    let line = self.line()?;
                    let text = self.raw_unicode_escape(&line)?;
                    self.stack.push(Obj::Str(shared(text)));
                }
                0x8c => {
                    let n = usize::from(self.byte()?);
                    self.push_text(n)?;
                }
                b'X' => {
                    let n = self.u32_len()?;
                    self.push_text(n)?;
                }
                0x8d => {
                    let n = self.u64_len()?;
                    self.push_text(n)?;
                }

                // Containers.
                b']' => self.stack.push(Obj::List(shared(Vec::new()))),
                b'}' => self.stack.push(Obj::Dict(shared(Vec::new()))),
                0x8f => self.stack.push(Obj::Set(shared(Vec::new()))),
                b')' => self.stack.push(Obj::Tuple(shared(Vec::new()))),
                0x85..=0x87 => {
                    let n = usize::from(opcode - 0x84);
                    let at = self
                        .stack
                        .len()
                        .checked_sub(n)
                        .ok_or_else(|| self.underflow())?;
                    let items = self.stack.split_off(at);
                    self.stack.push(Obj::Tuple(shared(items)));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::Tuple(shared(items)));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::List(shared(items)));
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(Obj::FrozenSet(shared(items)));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.stack.push(Obj::Dict(shared(pairs)));
                }
                b'a' => {
                    let item = self.pop()?;
                    self.extend_top(vec![item], "APPEND")?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, "APPENDS")?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, "ADDITEMS")?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.extend_top(vec![key, value], "SETITEM")?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, "SETITEMS")?;
                }

                // The memo.
                b'p' => {
                    let id = self.decimal_id()?;
                    self.put(id)?;
                }
                b'q' => {
                    let id = u32::from(self.byte()?);
                    self.put(id)?;
                }
                b'r' => {
                    let id = u32::from_le_bytes(self.array()?);
                    self.put(id)?;
                }
                0x94 => {
                    let id = u32::try_from(self.memo.len() + self.sparse_memo.len())
                        .map_err(|_| self.malformed("memo overflow"))?;
                    self.put(id)?;
                }
                b'g' => {
                    let id = self.decimal_id()?;
                    self.get(id)?;
                }
                b'h' => {
                    let id = u32::from(self.byte()?);
                    self.get(id)?;
                }
                b'j' => {
                    let id = u32::from_le_bytes(self.array()?);
                    self.get(id)?;
                }

                // Globals and calls: the dangerous part.
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global("GLOBAL", &module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let names = match (&module, &name) {
                        (Obj::Str(m), Obj::Str(n)) => Some((
                            m.borrow().as_bytes().to_vec(),
                            n.borrow().as_bytes().to_vec(),
                        )),
                        _ => None,
                    };
                    self.discard([module, name]);
                    let Some((module, name)) = names else {
                        return Err(self.refused(
                            "STACK_GLOBAL",
                            "globals are not allowed, and this one is not even named by strings",
                        ));
                    };
                    self.global("STACK_GLOBAL", &module, &name)?;
                }
                b'R' => self.reduce()?,
                b'i' => return Err(self.refused("INST", "class instances are not allowed")),
                b'o' => return Err(self.refused("OBJ", "class instances are not allowed")),
                0x81 => self.new_object()?,
                0x92 => return Err(self.refused("NEWOBJ_EX", "class instances are not allowed")),
                b'b' => self.build()?,
                0x82..=0x84 => {
                    let name = ["EXT1", "EXT2", "EXT4"][usize::from(opcode - 0x82)];
                    return Err(self.refused(name, "extension registry lookups are not allowed"));
                }
                b'P' => return Err(self.refused("PERSID", "persistent ids are not allowed")),
                b'Q' => return Err(self.refused("BINPERSID", "persistent ids are not allowed")),
                0x97 => {
                    return Err(
                        self.refused("NEXT_BUFFER", "out-of-band buffers are not supported")
                    );
                }
                0x98 => {
                    return Err(
                        self.refused("READONLY_BUFFER", "out-of-band buffers are not supported")
                    );
                }
                other => {
                    return Err(self.malformed(format!("unknown opcode 0x{other:02x}")));
                }
            }
        }
    }

    fn global(
        &mut self,
        opcode: &'static str,
        module: &[u8],
        name: &[u8],
    ) -> Result<(), DecodeError> {
        match allowed(module, name) {
            Some(global) => {
                self.stack.push(Obj::Global(global));
                Ok(())
            }
            None => Err(self.refused(
                opcode,
                format!(
                    "globals are not allowed: {}.{} (only {ALLOWED_NAMES} are)",
                    String::from_utf8_lossy(module),
                    String::from_utf8_lossy(name)
                ),
            )),
        }
    }

    /// Computes what CPython's call of an allowed global returns, without calling anything.
    fn reduce(&mut self) -> Result<(), DecodeError> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Obj::Global(global) = callable else {
            self.discard([args, callable]);
            return Err(self.refused("REDUCE", "only an allowed global may be called"));
        };
        let arg_items = match &args {
            Obj::Tuple(items) => {
                let len = items.borrow().len();
                if let Err(e) = self.charge(len) {
                    self.discard([args]);
                    return Err(e);
                }
                items.borrow().clone()
            }
            _ => {
                self.discard([args]);
                return Err(self.malformed("REDUCE arguments are not a tuple"));
            }
        };
        self.discard([args]);
        let result = self.call(global, &arg_items);
        self.discard(arg_items);
        let result = result?;
        self.stack.push(result);
        Ok(())
    }

    fn call(&self, global: Allowed, args: &[Obj]) -> Result<Obj, DecodeError> {
        let bad = |what: &str| {
            self.malformed(format!(
                "{what} called with ({})",
                args.iter()
                    .map(Obj::type_name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        Ok(match (global, args) {
            (Allowed::Set, []) => Obj::Set(shared(Vec::new())),
            (Allowed::Set, [Obj::List(items)]) => {
                self.charge(items.borrow().len())?;
                Obj::Set(shared(items.borrow().clone()))
            }
            (Allowed::Set, _) => return Err(bad("set")),
            (Allowed::FrozenSet, []) => Obj::FrozenSet(shared(Vec::new())),
            (Allowed::FrozenSet, [Obj::List(items)]) => {
                self.charge(items.borrow().len())?;
                Obj::FrozenSet(shared(items.borrow().clone()))
            }
            (Allowed::FrozenSet, _) => return Err(bad("frozenset")),
            (Allowed::ByteArray, []) => Obj::Bytes(shared(Vec::new())),
            (Allowed::ByteArray, [Obj::Bytes(bytes)]) => Obj::Bytes(bytes.clone()),
            // The codec is a Python 2 `str` in Python 2's `bytearray(u'...', 'latin-1')`, so
            // bytes with `Python2Str::Bytes`.
            (Allowed::ByteArray | Allowed::CodecsEncode, [Obj::Str(text), codec])
                if is_latin1_codec(codec) =>
            {
                let len = text.borrow().len();
                self.charge(len.div_ceil(mem::size_of::<Obj>()))?;
                let bytes = latin1_bytes(&text.borrow())
                    .ok_or_else(|| bad("an encode to latin-1 of text beyond U+00FF"))?;
                Obj::Bytes(shared(bytes))
            }
            (Allowed::ByteArray, _) => return Err(bad("bytearray")),
            (Allowed::CodecsEncode, _) => return Err(bad("_codecs.encode")),
            (Allowed::Bytes, []) => Obj::Bytes(shared(Vec::new())),
            (Allowed::OrderedDict, []) => Obj::Dict(shared(Vec::new())),
            // Python 2.7's `OrderedDict.__reduce__`: `(OrderedDict, ([[k, v], ...],))`.
            (Allowed::OrderedDict, [Obj::List(items)]) => {
                let items = items.borrow();
                self.charge(items.len().saturating_mul(2))?;
                let mut pairs = Vec::with_capacity(items.len());
                for item in items.iter() {
                    let (Obj::List(pair) | Obj::Tuple(pair)) = item else {
                        return Err(bad("collections.OrderedDict"));
                    };
                    match &pair.borrow()[..] {
                        [k, v] => pairs.push((k.clone(), v.clone())),
                        _ => return Err(bad("collections.OrderedDict")),
                    }
                }
                Obj::Dict(shared(pairs))
            }
            (Allowed::Bytes | Allowed::OrderedDict, _) => {
                return Err(self.refused(
                    "REDUCE",
                    "builtins.bytes may only be called without arguments, and \
                     collections.OrderedDict without or with one list of key, value pairs",
                ));
            }
            (Allowed::DateTime | Allowed::Date | Allowed::Time, _) => {
                let name = match global {
                    Allowed::DateTime => "datetime.datetime",
                    Allowed::Date => "datetime.date",
                    _ => "datetime.time",
                };
                return self
                    .call_datetime(global, args)
                    .map_err(|e| e.unwrap_or_else(|| bad(name)));
            }
            (Allowed::TimeDelta, _) => {
                let mut parts = [0i64; 3];
                if args.len() > 3 {
                    return Err(bad("datetime.timedelta"));
                }
                for (part, arg) in parts.iter_mut().zip(args) {
                    match arg {
                        Obj::I64(n) => *part = *n,
                        _ => return Err(bad("datetime.timedelta")),
                    }
                }
                let [days, seconds, micros] = parts;
                let delta = TimeDelta::new(days, seconds, micros).map_err(|e| self.range(e))?;
                py(Value::TimeDelta(delta))
            }
            (Allowed::TimeZone, [offset, rest @ ..]) if rest.len() <= 1 => {
                let Obj::Py(offset) = offset else {
                    return Err(bad("datetime.timezone"));
                };
                let Value::TimeDelta(offset) = **offset else {
                    return Err(bad("datetime.timezone"));
                };
                let name = match rest {
                    [] => None,
                    [Obj::Str(name)] => {
                        self.charge(name.borrow().len().div_ceil(mem::size_of::<Obj>()))?;
                        Some(name.borrow().clone())
                    }
                    _ => return Err(bad("datetime.timezone")),
                };
                let zone = TimeZone::new(offset, name).map_err(|e| self.range(e))?;
                py(Value::TimeZone(zone))
            }
            (Allowed::TimeZone, _) => return Err(bad("datetime.timezone")),
            (Allowed::Decimal, [arg]) => {
                let text = match arg {
                    Obj::Str(text) => text.borrow().clone(),
                    // A Python 2 str read as bytes.
                    Obj::Bytes(b) if b.borrow().is_ascii() => {
                        String::from_utf8_lossy(&b.borrow()).into_owned()
                    }
                    _ => return Err(bad("decimal.Decimal")),
                };
                let decimal = text.parse::<Decimal>().map_err(|e| {
                    if text.len() > crate::decimal::MAX_DECIMAL_DIGITS {
                        DecodeError::Limit(e.to_string())
                    } else {
                        self.range(e)
                    }
                })?;
                py(Value::Decimal(decimal))
            }
            (Allowed::Decimal, _) => return Err(bad("decimal.Decimal")),
            (Allowed::Complex, _) if args.len() <= 2 => {
                let mut parts = [0.0f64; 2];
                for (part, arg) in parts.iter_mut().zip(args) {
                    *part = match arg {
                        Obj::F64(f) => *f,
                        // complex(1, 2): Python converts ints as float() does.
                        Obj::I64(n) => *n as f64,
                        _ => return Err(bad("complex")),
                    };
                }
                let [re, im] = parts;
                py(Value::Complex(Complex { re, im }))
            }
            (Allowed::Complex, _) => return Err(bad("complex")),
            (
                Allowed::Reconstructor,
                [
                    Obj::Global(Allowed::Uuid),
                    Obj::Global(Allowed::Object),
                    Obj::None,
                ],
            ) => Obj::Uuid(shared(None)),
            (Allowed::Uuid | Allowed::Reconstructor | Allowed::Object, _) => {
                return Err(self.refused(
                    "REDUCE",
                    "uuid.UUID is only created as CPython pickles it (NEWOBJ with no \
                     arguments, or copyreg._reconstructor(uuid.UUID, object, None)), and \
                     builtins.object is never called",
                ));
            }
        })
    }

    /// `datetime`, `date` or `time` from CPython's pickled state: bytes (Python 3), a Python
    /// 2 `str`, or text that encodes to latin-1 (what CPython accepts), then an optional
    /// `datetime.timezone`. `None` for arguments of the wrong kind.
    fn call_datetime(&self, global: Allowed, args: &[Obj]) -> Result<Obj, Option<DecodeError>> {
        let (state, tzinfo) = match args {
            [state] => (state, None),
            [state, Obj::None] => (state, None),
            [state, Obj::Py(zone)] if global != Allowed::Date => match &**zone {
                Value::TimeZone(zone) => (state, Some(zone.clone())),
                _ => return Err(None),
            },
            _ => return Err(None),
        };
        let bytes = match state {
            Obj::Bytes(b) => b.borrow().clone(),
            Obj::Str2(s) => s.bytes.clone(),
            Obj::Str(text) => latin1_bytes(&text.borrow()).ok_or(None)?,
            _ => return Err(None),
        };
        let range = |e: RangeError| Some(self.range(e));
        let value = match (global, <[u8; 10]>::try_from(&bytes[..])) {
            (Allowed::DateTime, Ok(state)) => Value::DateTime(
                DateTime::from_state(state)
                    .map_err(range)?
                    .with_tzinfo(tzinfo),
            ),
            (Allowed::Time, _) => match <[u8; 6]>::try_from(&bytes[..]) {
                Ok(state) => {
                    let fold = state[0] & 0x80 != 0;
                    let mut state = state;
                    state[0] &= 0x7F;
                    Value::Time(
                        Time::from_state(state, fold)
                            .map_err(range)?
                            .with_tzinfo(tzinfo),
                    )
                }
                Err(_) => return Err(None),
            },
            (Allowed::Date, _) if bytes.len() == 4 => {
                Value::Date(Date::from_state(&bytes).map_err(range)?)
            }
            _ => return Err(None),
        };
        Ok(py(value))
    }

    /// NEWOBJ: only `uuid.UUID()`, as CPython pickles a UUID with protocols 2 to 5.
    fn new_object(&mut self) -> Result<(), DecodeError> {
        let args = self.pop()?;
        let class = self.pop()?;
        let empty = matches!(&args, Obj::Tuple(items) if items.borrow().is_empty());
        let is_uuid = matches!(class, Obj::Global(Allowed::Uuid));
        self.discard([args, class]);
        if !(is_uuid && empty) {
            return Err(self.refused(
                "NEWOBJ",
                "class instances are not allowed (but uuid.UUID created with no arguments)",
            ));
        }
        self.stack.push(Obj::Uuid(shared(None)));
        Ok(())
    }

    /// BUILD: only a new `uuid.UUID`'s state, `{'int': n}` and optionally `'is_safe'`.
    fn build(&mut self) -> Result<(), DecodeError> {
        let state = self.pop()?;
        let uuid = match self.top()? {
            Obj::Uuid(cell) if cell.borrow().is_none() => Some(cell.clone()),
            _ => None,
        };
        let result = match uuid {
            None => Err(self.refused(
                "BUILD",
                "setting an object's state is not allowed (but a new uuid.UUID's)",
            )),
            Some(cell) => self.uuid_state(&state).map(|uuid| {
                *cell.borrow_mut() = Some(uuid);
            }),
        };
        self.discard([state]);
        result
    }

    fn uuid_state(&self, state: &Obj) -> Result<Uuid, DecodeError> {
        let Obj::Dict(pairs) = state else {
            return Err(self.refused("BUILD", "a uuid.UUID state that is not a dict"));
        };
        let mut int = None;
        let mut is_safe = SafeUuid::Unknown;
        for (key, value) in pairs.borrow().iter() {
            // A Python 2 `str` key is bytes when read with `Python2Str::Bytes`.
            let name = match key {
                Obj::Str(s) => s.borrow().clone(),
                Obj::Bytes(b) => String::from_utf8_lossy(&b.borrow()).into_owned(),
                other => format!("a key of type {}", other.type_name()),
            };
            match (name.as_str(), value) {
                ("int", Obj::I64(n)) => int = u128::try_from(*n).ok(),
                ("int", Obj::Int(n)) => int = u128::try_from(&**n).ok(),
                ("is_safe", Obj::I64(0)) => is_safe = SafeUuid::Safe,
                ("is_safe", Obj::I64(-1)) => is_safe = SafeUuid::Unsafe,
                ("is_safe", Obj::None) => is_safe = SafeUuid::Unknown,
                ("int" | "is_safe", other) => {
                    return Err(self.malformed(format!(
                        "a uuid.UUID state's {name} is out of range or a {}",
                        other.type_name()
                    )));
                }
                _ => {
                    return Err(self.refused(
                        "BUILD",
                        format!(
                            "a uuid.UUID state may set only int and is_safe, not {:?}",
                            name.chars().take(40).collect::<String>()
                        ),
                    ));
                }
            }
        }
        let int =
            int.ok_or_else(|| self.malformed("a uuid.UUID state without an int in 0..2**128"))?;
        Ok(Uuid::new(int).with_is_safe(is_safe))
    }

    // --- the stack ---

    fn top(&self) -> Result<&Obj, DecodeError> {
        self.stack.last().ok_or_else(|| self.underflow())
    }

    fn pop(&mut self) -> Result<Obj, DecodeError> {
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn pop_mark(&mut self) -> Result<Vec<Obj>, DecodeError> {
        let below = self.marks.pop().ok_or_else(|| self.underflow())?;
        Ok(mem::replace(&mut self.stack, below))
    }

    fn pairs(&mut self, items: Vec<Obj>) -> Result<Vec<(Obj, Obj)>, DecodeError> {
        if !items.len().is_multiple_of(2) {
            self.discard(items);
            return Err(self.malformed("a dict's items are not key, value pairs"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            pairs.push((k, v));
        }
        Ok(pairs)
    }

    /// APPEND(S), SETITEM(S), ADDITEMS: adds `items` to the container on top of the stack.
    fn extend_top(&mut self, items: Vec<Obj>, opcode: &'static str) -> Result<(), DecodeError> {
        let target = match (opcode, self.stack.last()) {
            ("APPEND" | "APPENDS", Some(Obj::List(v))) | ("ADDITEMS", Some(Obj::Set(v))) => {
                Ok(v.clone())
            }
            ("SETITEM" | "SETITEMS", Some(Obj::Dict(d))) => {
                let d = d.clone();
                let pairs = self.pairs(items)?;
                d.borrow_mut().extend(pairs);
                return Ok(());
            }
            (_, Some(other)) => Err(self.malformed(format!(
                "{opcode} on {}, not a {}",
                other.type_name(),
                match opcode {
                    "ADDITEMS" => "set",
                    "SETITEM" | "SETITEMS" => "dict",
                    _ => "list",
                }
            ))),
            (_, None) => Err(self.underflow()),
        };
        match target {
            Ok(v) => {
                let mut v = v.borrow_mut();
                if v.is_empty() {
                    // The usual case (one APPENDS per 1000 items, or all at once): no copy.
                    *v = items;
                } else {
                    v.extend(items);
                }
                Ok(())
            }
            Err(e) => {
                self.discard(items);
                Err(e)
            }
        }
    }

    fn put(&mut self, id: u32) -> Result<(), DecodeError> {
        let top = self.top()?.clone();
        if let Some(weak) = top.weak() {
            self.maybe_cyclic.push(weak);
        }
        let index = id as usize;
        let old = if index < self.memo.len() {
            self.memo[index].replace(top)
        } else if index == self.memo.len() {
            self.memo.push(Some(top));
            // The same id may have been given out of order before.
            self.sparse_memo.remove(&id)
        } else {
            // Not CPython's numbering: ids far apart must not size a vector.
            self.sparse_memo.insert(id, top)
        };
        self.discard(old);
        Ok(())
    }

    fn get(&mut self, id: u32) -> Result<(), DecodeError> {
        let found = match self.memo.get(id as usize) {
            Some(Some(obj)) => Some(obj.clone()),
            _ => self.sparse_memo.get(&id).cloned(),
        };
        let obj = found
            .ok_or_else(|| self.malformed(format!("memo entry {id} is read before it is set")))?;
        self.stack.push(obj);
        Ok(())
    }

    // --- values ---

    fn push_bytes(&mut self, n: usize) -> Result<(), DecodeError> {
        let bytes = self.bytes(n)?;
        self.stack.push(Obj::Bytes(shared(bytes)));
        Ok(())
    }

    /// BINUNICODE and friends: UTF-8, where CPython also accepts encoded surrogates.
    fn push_text(&mut self, n: usize) -> Result<(), DecodeError> {
        let bytes = self.bytes(n)?;
        let text = self.utf8_surrogatepass(bytes)?;
        self.stack.push(Obj::Str(shared(text)));
        Ok(())
    }

    fn decimal(&self, digits: &[u8]) -> Result<Obj, DecodeError> {
        let text = std::str::from_utf8(digits)
            .map_err(|_| self.malformed("an integer argument is not ASCII"))?
            .trim();
        if let Ok(n) = text.parse::<i64>() {
            return Ok(Obj::I64(n));
        }
        if text.len() > MAX_DECIMAL_DIGITS {
            return Err(DecodeError::Limit(format!(
                "a decimal integer of {} digits (CPython reads at most {MAX_DECIMAL_DIGITS})",
                text.len()
            )));
        }
        text.parse::<BigInt>()
            .map(|n| Obj::Int(Rc::new(n)))
            .map_err(|_| self.malformed("an integer argument is not a number"))
    }

    /// A Python 2 `str`, as [`Python2Str`] says.
    fn python2_str(&self, bytes: Vec<u8>) -> Result<Obj, DecodeError> {
        Ok(match self.options.python2_str {
            Python2Str::Bytes => Obj::Bytes(shared(bytes)),
            Python2Str::Latin1 => Obj::Str(shared(bytes.iter().map(|&b| char::from(b)).collect())),
            Python2Str::Text if !bytes.is_ascii() => {
                let not_text = match std::str::from_utf8(&bytes) {
                    Ok(text) => self.check_text(text).err(),
                    Err(_) => Some(self.unrepresentable(
                        "a Python 2 str is not UTF-8 (read it with Python2Str::Bytes or \
                         Python2Str::Latin1)",
                    )),
                };
                let not_text = not_text.map(|e| match e {
                    DecodeError::Unrepresentable { offset, reason } => (offset, reason),
                    other => (self.op, other.to_string()),
                });
                Obj::Str2(Rc::new(Str2 { bytes, not_text }))
            }
            Python2Str::Text => match String::from_utf8(bytes) {
                Ok(text) => {
                    self.check_text(&text)?;
                    Obj::Str(shared(text))
                }
                Err(_) => {
                    return Err(self.unrepresentable(
                        "a Python 2 str is not UTF-8 (read it with Python2Str::Bytes or \
                         Python2Str::Latin1)",
                    ));
                }
            },
        })
    }

    /// The argument of STRING: a Python 2 `repr` of a `str`, quotes and escapes included.
    fn quoted(&self, line: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let inner = match line {
            [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
            _ => return Err(self.malformed("the STRING opcode argument must be quoted")),
        };
        escape_decode(inner).map_err(|reason| self.malformed(reason))
    }

    /// UNICODE's argument: `raw-unicode-escape`, as CPython decodes it.
    fn raw_unicode_escape(&self, line: &[u8]) -> Result<String, DecodeError> {
        let mut out = String::with_capacity(line.len());
        let mut i = 0;
        while i < line.len() {
            if line[i] != b'\\' {
                out.push(char::from(line[i]));
                i += 1;
                continue;
            }
            // In a run of backslashes only the last one of an odd-length run can start an
            // escape (CPython's rule).
            let run = line[i..].iter().take_while(|&&b| b == b'\\').count();
            let after = i + run;
            let digits = match line.get(after) {
                Some(b'u') if run % 2 == 1 => 4,
                Some(b'U') if run % 2 == 1 => 8,
                _ => {
                    out.extend(std::iter::repeat_n('\\', run));
                    i = after;
                    continue;
                }
            };
            out.extend(std::iter::repeat_n('\\', run - 1));
            let hex = line
                .get(after + 1..after + 1 + digits)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| self.malformed("a truncated \\uXXXX escape in UNICODE"))?;
            self.push_code_point(&mut out, hex)?;
            i = after + 1 + digits;
        }
        Ok(out)
    }

    /// Text as CPython's UTF-8 decoder with `surrogatepass` reads it.
    fn utf8_surrogatepass(&self, bytes: Vec<u8>) -> Result<String, DecodeError> {
        let bytes = match String::from_utf8(bytes) {
            Ok(text) => {
                self.check_text(&text)?;
                return Ok(text);
            }
            Err(e) => e.into_bytes(),
        };
        let mut out = String::with_capacity(bytes.len() + 4);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.check_text(text)?;
                    out.push_str(text);
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    let good = std::str::from_utf8(good).unwrap_or_default();
                    self.check_text(good)?;
                    out.push_str(good);
                    match bad {
                        [0xED, b1 @ 0xA0..=0xBF, b2 @ 0x80..=0xBF, ..] => {
                            let unit = 0xD000 | (u32::from(b1 & 0x3F) << 6) | u32::from(b2 & 0x3F);
                            self.push_code_point(&mut out, unit)?;
                            rest = &bad[3..];
                        }
                        _ => return Err(self.malformed("text is not UTF-8")),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Appends a code point, which may be a lone surrogate.
    fn push_code_point(&self, out: &mut String, code: u32) -> Result<(), DecodeError> {
        if let Some(c) = char::from_u32(code) {
            self.check_text(c.encode_utf8(&mut [0; 4]))?;
            out.push(c);
            return Ok(());
        }
        if !(0xD800..0xE000).contains(&code) {
            return Err(self.malformed(format!("code point 0x{code:x} is beyond Unicode")));
        }
        match self.options.surrogates {
            Surrogates::PrivateUse => {
                out.push(char::from_u32(SURROGATE_BASE + (code - 0xD800)).unwrap_or('\u{FFFD}'));
                Ok(())
            }
            Surrogates::Refuse => Err(self.unrepresentable(format!(
                "text holds the lone surrogate U+{code:04X} (read it with \
                 Surrogates::PrivateUse)"
            ))),
        }
    }

    /// Refuses text that holds the code points lone surrogates are read as, when they are:
    /// it would be written back as surrogates.
    fn check_text(&self, text: &str) -> Result<(), DecodeError> {
        if self.options.surrogates == Surrogates::PrivateUse
            && text.as_bytes().contains(&0xF4)
            && text.chars().any(|c| u32::from(c) >= SURROGATE_BASE)
        {
            return Err(self.unrepresentable(
                "text holds a code point in U+10F800..U+10FFFF, which this decoder uses for lone \
                 surrogates (read it with Surrogates::Refuse)",
            ));
        }
        Ok(())
    }

    // --- reading arguments ---

    fn input_error(&self, e: InputError) -> DecodeError {
        match e {
            InputError::Truncated => self.malformed("truncated (the pickle ends inside an opcode)"),
            InputError::Base64(e) => e,
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        self.input.byte().map_err(|e| self.input_error(e))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.input.array().map_err(|e| self.input_error(e))
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, DecodeError> {
        self.input.bytes(n).map_err(|e| self.input_error(e))
    }

    fn line(&mut self) -> Result<Vec<u8>, DecodeError> {
        self.input.line().map_err(|e| match e {
            InputError::Truncated => self.malformed("truncated (a text argument has no newline)"),
            other => self.input_error(other),
        })
    }

    fn decimal_id(&mut self) -> Result<u32, DecodeError> {
        let line = self.line()?;
        std::str::from_utf8(&line)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| self.malformed("a memo id is not a number"))
    }

    fn u32_len(&mut self) -> Result<usize, DecodeError> {
        let n = u32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| self.malformed("length out of range"))
    }

    fn i32_len(&mut self) -> Result<usize, DecodeError> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| self.malformed("negative length"))
    }

    fn u64_len(&mut self) -> Result<usize, DecodeError> {
        let n = u64::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| self.malformed("length out of range"))
    }

    // --- errors ---

    fn malformed(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Malformed {
            offset: self.op,
            reason: reason.into(),
        }
    }

    fn unrepresentable(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Unrepresentable {
            offset: self.op,
            reason: reason.into(),
        }
    }

    fn frame_truncated(&self) -> DecodeError {
        self.malformed("pickle data was truncated (a FRAME is longer than the rest of the pickle)")
    }

    fn underflow(&self) -> DecodeError {
        self.malformed("stack underflow")
    }

    /// A value of an allowed type out of its range (a month 13), which CPython's constructors
    /// refuse.
    fn range(&self, e: RangeError) -> DecodeError {
        self.malformed(e.to_string())
    }

    fn refused(&self, opcode: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError::Refused {
            opcode,
            offset: self.op,
            reason: reason.into(),
        }
    }
}

fn py(value: Value) -> Obj {
    Obj::Py(Rc::new(value))
}

fn is_latin1(codec: &str) -> bool {
    matches!(
        codec.to_ascii_lowercase().as_str(),
        "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" | "l1"
    )
}

/// Whether `codec` names latin-1: text, or a Python 2 `str` read as bytes.
fn is_latin1_codec(codec: &Obj) -> bool {
    match codec {
        Obj::Str(name) => is_latin1(&name.borrow()),
        Obj::Bytes(name) => std::str::from_utf8(&name.borrow()).is_ok_and(is_latin1),
        _ => false,
    }
}

fn latin1_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// LONG1 / LONG4: a little-endian two's complement integer.
fn long(bytes: &[u8]) -> Obj {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    if bytes.len() <= 8 {
        let fill = if negative { 0xFF } else { 0 };
        let mut le = [fill; 8];
        le[..bytes.len()].copy_from_slice(bytes);
        return Obj::I64(i64::from_le_bytes(le));
    }
    let mut n = BigInt::from_bytes_le(Sign::Plus, bytes);
    if negative {
        n -= BigInt::from(1) << (bytes.len() * 8);
    }
    match i64::try_from(&n) {
        Ok(small) => Obj::I64(small),
        Err(_) => Obj::Int(Rc::new(n)),
    }
}

/// Python 2's `string_escape` decoding (`codecs.escape_decode`), which CPython applies to the
/// argument of STRING.
fn escape_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = text.get(i) else {
            return Err("a STRING argument ends with a backslash".into());
        };
        i += 1;
        match c {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(c),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0C),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0B),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match text.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // CPython keeps the low byte of an octal escape above \377.
                out.push((value & 0xFF) as u8);
            }
            b'x' => {
                let hex = text
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid \\x escape at position {}", i - 2))?;
                out.push(hex);
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

// --- from the graph to the result ---

/// What [`measure`] learns about a heap object referenced more than once.
struct SharedInfo {
    /// `None` while it is being measured: meeting it again then means a cycle.
    size_height: Option<(u64, u32)>,
    /// References from the result not materialized yet; the last one takes the original.
    uses: u64,
}

/// The size of `obj` in the result (shared objects counted once per reference) and its height
/// (containers nested in it, itself included). Fails on cycles and on nesting deeper than
/// [`MAX_DEPTH`]; recursion is bounded by that depth.
fn measure(
    obj: &Obj,
    depth: u32,
    shared: &mut HashMap<usize, SharedInfo>,
) -> Result<(u64, u32), DecodeError> {
    let identity = obj.identity().filter(|&(_, count)| count > 1);
    if let Some((addr, _)) = identity
        && let Some(info) = shared.get_mut(&addr)
    {
        info.uses += 1;
        return match info.size_height {
            Some((_, height)) if depth + height > MAX_DEPTH => Err(too_deep()),
            Some(found) => Ok(found),
            None => Err(DecodeError::Malformed {
                offset: 0,
                reason: "a recursive structure (a container that holds itself), which cannot be \
                         decoded into a value"
                    .into(),
            }),
        };
    }
    if obj.is_container() && depth >= MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some((addr, _)) = identity {
        shared.insert(
            addr,
            SharedInfo {
                size_height: None,
                uses: 1,
            },
        );
    }
    let mut size = value_cost();
    let mut height = 0;
    let mut child = |item: &Obj, extra: u64| -> Result<(), DecodeError> {
        let (s, h) = match item {
            Obj::None | Obj::Bool(_) | Obj::I64(_) | Obj::F64(_) => (value_cost(), 0),
            _ => measure(item, depth + 1, shared)?,
        };
        size = size.saturating_add(s).saturating_add(extra);
        height = height.max(h);
        Ok(())
    };
    match obj {
        Obj::List(v) | Obj::Tuple(v) => {
            for item in v.borrow().iter() {
                child(item, 0)?;
            }
        }
        Obj::Set(v) | Obj::FrozenSet(v) => {
            for item in v.borrow().iter() {
                child(item, key_cost())?;
            }
        }
        Obj::Dict(d) => {
            for (k, v) in d.borrow().iter() {
                child(k, key_cost())?;
                child(v, 0)?;
            }
        }
        Obj::Bytes(b) => size = size.saturating_add(b.borrow().len() as u64),
        Obj::Str(s) => size = size.saturating_add(s.borrow().len() as u64),
        Obj::Int(n) => size = size.saturating_add(int_cost(n)),
        Obj::Str2(s) => size = size.saturating_add(s.bytes.len() as u64),
        Obj::Py(v) => size = size.saturating_add(leaf_payload(v)),
        _ => {}
    }
    if obj.is_container() {
        height += 1;
    }
    if let Some((addr, _)) = identity
        && let Some(info) = shared.get_mut(&addr)
    {
        info.size_height = Some((size, height));
    }
    Ok((size, height))
}

/// What a value of an allowed standard library type holds beyond its [`Value`]: a
/// `Decimal`'s digits, a zone's name.
pub(crate) fn leaf_payload(value: &Value) -> u64 {
    let zone = |tz: Option<&TimeZone>| tz.and_then(TimeZone::name).map_or(0, str::len);
    (match value {
        Value::Decimal(d) => d.digits_len(),
        Value::TimeZone(tz) => zone(Some(tz)),
        Value::DateTime(dt) => zone(dt.tzinfo()),
        Value::Time(t) => zone(t.tzinfo()),
        _ => 0,
    }) as u64
}

/// What an integer beyond `i64` occupies beside its [`Value`].
pub(crate) fn int_cost(n: &BigInt) -> u64 {
    n.bits() / 8 + 8
}

pub(crate) fn too_deep() -> DecodeError {
    DecodeError::Limit(format!("containers nest more than {MAX_DEPTH} deep"))
}

/// Builds the result from a graph that [`measure`] accepted (so it is acyclic and at most
/// [`MAX_DEPTH`] deep, and recursion here is bounded).
///
/// Each object gives up its contents to the result at its last reference (`uses` counts the
/// references still to come); references before that copy it. `take` says whether the caller
/// is giving up its own contents (so this reference counts); under a copy nothing is taken.
fn materialize<B: Build>(
    obj: &Obj,
    take: bool,
    shared: &mut HashMap<usize, SharedInfo>,
) -> Result<B::Out, DecodeError> {
    let take = take
        && match obj.identity() {
            Some((addr, count)) if count > 1 => shared.get_mut(&addr).is_none_or(|info| {
                info.uses = info.uses.saturating_sub(1);
                info.uses == 0
            }),
            _ => true,
        };
    fn contents<T: Default + Clone>(cell: &RefCell<T>, take: bool) -> T {
        if take {
            mem::take(&mut *cell.borrow_mut())
        } else {
            cell.borrow().clone()
        }
    }
    Ok(match obj {
        Obj::None => B::none(),
        Obj::Bool(b) => B::bool(*b),
        Obj::I64(n) => B::i64(*n),
        Obj::F64(f) => B::f64(*f),
        Obj::Int(n) => B::int((**n).clone()),
        Obj::Bytes(b) => B::bytes(contents(b, take)),
        Obj::Str(s) => B::string(contents(s, take)),
        Obj::List(v) | Obj::Tuple(v) | Obj::Set(v) | Obj::FrozenSet(v) => {
            if take {
                // Moved out first, so that the graph never holds them twice.
                let items = mem::take(&mut *v.borrow_mut());
                let out = container::<B>(obj, &items, true, shared);
                release(items);
                out?
            } else {
                container::<B>(obj, &v.borrow(), false, shared)?
            }
        }
        Obj::Dict(d) => {
            if take {
                let pairs = mem::take(&mut *d.borrow_mut());
                let out = dict::<B>(&pairs, true, shared);
                release_each(pairs.into_iter().flat_map(|(k, v)| [k, v]), &mut Vec::new());
                out?
            } else {
                dict::<B>(&d.borrow(), false, shared)?
            }
        }
        Obj::Global(_) => {
            return Err(DecodeError::Malformed {
                offset: 0,
                reason: "a global that is never called is part of the value".into(),
            });
        }
        Obj::Py(v) => B::stdlib(v)?,
        Obj::Str2(s) => match &s.not_text {
            None => B::string(String::from_utf8_lossy(&s.bytes).into_owned()),
            Some((offset, reason)) => {
                return Err(DecodeError::Unrepresentable {
                    offset: *offset,
                    reason: reason.clone(),
                });
            }
        },
        Obj::Uuid(cell) => match *cell.borrow() {
            Some(uuid) => B::stdlib(&Value::Uuid(uuid))?,
            None => {
                return Err(DecodeError::Malformed {
                    offset: 0,
                    reason: "a uuid.UUID is part of the value without its state (BUILD)".into(),
                });
            }
        },
    })
}

fn container<B: Build>(
    kind: &Obj,
    items: &[Obj],
    take: bool,
    shared: &mut HashMap<usize, SharedInfo>,
) -> Result<B::Out, DecodeError> {
    let mut values = items
        .iter()
        .map(|item| materialize::<B>(item, take, shared));
    let mut hashable = || {
        values
            .by_ref()
            .map(|value| B::key(value?))
            .collect::<Result<BTreeSet<_>, _>>()
    };
    Ok(match kind {
        Obj::Set(_) => B::set(hashable()?),
        Obj::FrozenSet(_) => B::frozenset(hashable()?),
        Obj::Tuple(_) => B::tuple(values.collect::<Result<_, _>>()?),
        _ => B::list(values.collect::<Result<_, _>>()?),
    })
}

fn dict<B: Build>(
    pairs: &[(Obj, Obj)],
    take: bool,
    shared: &mut HashMap<usize, SharedInfo>,
) -> Result<B::Out, DecodeError> {
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        let key = B::key(materialize::<B>(k, take, shared)?)?;
        map.insert(key, materialize::<B>(v, take, shared)?);
    }
    Ok(B::dict(map))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            python2_str: Python2Str::Text,
            surrogates: Surrogates::PrivateUse,
            max_size: crate::DEFAULT_MAX_DECODED_SIZE,
        }
    }

    fn decode(pickle: &[u8]) -> Result<Value, DecodeError> {
        from_slice::<Keep>(pickle, options())
    }

    fn refused_opcode(pickle: &[u8]) -> &'static str {
        match decode(pickle) {
            Err(DecodeError::Refused { opcode, .. }) => opcode,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn bytes_after_stop_are_ignored_as_python_does() {
        assert_eq!(
            decode(b"\x80\x03K\x01.K\x02.garbage").unwrap(),
            Value::I64(1)
        );
    }

    #[test]
    fn every_dangerous_opcode_is_refused() {
        assert_eq!(refused_opcode(b"cos\nsystem\n(S'x'\ntR."), "GLOBAL");
        assert_eq!(refused_opcode(b"(S'x'\nios\nsystem\n."), "INST");
        assert_eq!(refused_opcode(b"(cbuiltins\nset\no."), "OBJ");
        assert_eq!(refused_opcode(b"\x80\x02cbuiltins\nset\n)\x81."), "NEWOBJ");
        assert_eq!(
            refused_opcode(b"\x80\x04cbuiltins\nset\n)}\x92."),
            "NEWOBJ_EX"
        );
        assert_eq!(refused_opcode(b"]}b."), "BUILD");
        assert_eq!(refused_opcode(b"\x80\x02\x83\x01\x00."), "EXT2");
        assert_eq!(refused_opcode(b"\x80\x02\x84\x01\x00\x00\x00."), "EXT4");
        assert_eq!(refused_opcode(b"\x80\x05\x97."), "NEXT_BUFFER");
        assert_eq!(refused_opcode(b"\x80\x05C\x01a\x98."), "READONLY_BUFFER");
        assert_eq!(refused_opcode(b"\x80\x02N)R."), "REDUCE");
        assert_eq!(
            refused_opcode(b"\x80\x02c__builtin__\nbytes\nK\x01\x85R."),
            "REDUCE"
        );
    }

    #[test]
    fn stack_global_names_are_resolved_through_the_memo() {
        // builtins (memo 0) + set -> allowed; then memo 0 again + "getattr" -> refused.
        let pickle =
            b"\x80\x04\x8c\x08builtins\x94\x8c\x03set\x94\x93\x94h\x00\x8c\x07getattr\x93.";
        match decode(pickle) {
            Err(DecodeError::Refused {
                opcode,
                offset,
                reason,
            }) => {
                assert_eq!(opcode, "STACK_GLOBAL");
                assert_eq!(offset, pickle.len() - 2);
                assert!(reason.contains("builtins.getattr"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_bytes_and_ordered_dict_calls_are_computed() {
        let bytes = b"\x80\x02c__builtin__\nbytes\nq\x00)Rq\x01.";
        assert_eq!(decode(bytes).unwrap(), Value::Bytes(Vec::new()));
        let od = b"ccollections\nOrderedDict\np0\n(tRp1\nVb\np2\nI1\ns.";
        assert_eq!(
            decode(od).unwrap(),
            Value::Dict(BTreeMap::from([(
                HashableValue::String("b".into()),
                Value::I64(1)
            )]))
        );
    }

    #[test]
    fn malformed_pickles_are_reported_with_their_offset() {
        for (pickle, offset, what) in [
            (&b""[..], 0, "empty"),
            (b"\x80\x02K", 2, "truncated"),
            (b"\x80\x02X\xff\xff\x00\x00ab.", 2, "truncated"),
            (b"\x80\x06N.", 0, "unsupported protocol 6"),
            (b"\x80\x02a.", 2, "underflow"),
            (b"\x80\x02h\x05.", 2, "memo entry 5"),
            (b"\x80\x02\xff.", 2, "unknown opcode 0xff"),
            (b"\x80\x02N", 3, "truncated"),
            (b"\x80\x03]]K\x01K\x02s.", 8, "SETITEM on list, not a dict"),
            (b"S'abc\n.", 0, "must be quoted"),
        ] {
            match decode(pickle) {
                Err(DecodeError::Malformed { offset: o, reason }) => {
                    assert_eq!(o, offset, "{pickle:?}: {reason}");
                    assert!(reason.contains(what), "{pickle:?}: {reason}");
                }
                other => panic!("{pickle:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn memo_ids_far_apart_cost_one_entry_each() {
        // LONG_BINPUT with ids 0, 1000, 2000 ...: no vector of a million slots.
        let mut pickle = b"\x80\x02N".to_vec();
        for i in 0..1000u32 {
            pickle.push(b'r');
            pickle.extend((i * 1000).to_le_bytes());
        }
        pickle.push(b'j');
        pickle.extend(999_000u32.to_le_bytes());
        pickle.push(b'.');
        let mut machine = Machine::new(Input::raw(&pickle), options());
        let root = machine.run().unwrap();
        assert!(matches!(root, Obj::None));
        assert!(machine.memo.len() + machine.sparse_memo.len() <= 1000);
        assert!(
            machine.memo.capacity() < 10_000,
            "{}",
            machine.memo.capacity()
        );
    }

    #[test]
    fn memoize_numbers_entries_as_cpython_counts_them() {
        // Id 5 given out of order, then 0..=5 in order: six entries, so MEMOIZE gives id 6.
        let mut pickle = b"\x80\x04Nq\x05".to_vec();
        for i in 0..6u8 {
            pickle.extend([b'K', i, b'q', i]);
        }
        pickle.extend(b"K\x07\x940h\x06.");
        assert_eq!(decode(&pickle).unwrap(), Value::I64(7));
    }

    #[test]
    fn a_hostile_length_reserves_nothing() {
        // BINBYTES8 claiming 2^60 bytes in a 20-byte pickle.
        let pickle = b"\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x10.";
        assert!(matches!(decode(pickle), Err(DecodeError::Malformed { .. })));
    }

    fn nested(depth: usize) -> Vec<u8> {
        let mut pickle = b"\x80\x02".to_vec();
        pickle.extend(std::iter::repeat_n(b']', depth));
        pickle.extend(std::iter::repeat_n(b'a', depth - 1));
        pickle.push(b'.');
        pickle
    }

    #[test]
    fn deep_nesting_is_refused_and_dropped_without_recursion() {
        // A million levels: building and dropping them must not overflow the stack.
        let err = decode(&nested(1_000_000)).unwrap_err();
        assert!(matches!(err, DecodeError::Limit(m) if m.contains("nest")));
        assert!(decode(&nested(usize::try_from(MAX_DEPTH).unwrap())).is_ok());
        assert!(decode(&nested(usize::try_from(MAX_DEPTH).unwrap() + 1)).is_err());
    }

    #[test]
    fn deep_nesting_built_after_memoizing_is_refused_too() {
        // 200 lists memoized first, then each appended to the previous one through the memo:
        // no container is deep when it is created.
        let mut pickle = b"\x80\x02".to_vec();
        for i in 0..200u32 {
            pickle.push(b']');
            pickle.push(b'r');
            pickle.extend(i.to_le_bytes());
            pickle.push(b'0');
        }
        for i in 0..199u32 {
            pickle.push(b'j');
            pickle.extend(i.to_le_bytes());
            pickle.push(b'j');
            pickle.extend((i + 1).to_le_bytes());
            pickle.extend(b"a0");
        }
        pickle.extend(b"j\x00\x00\x00\x00.");
        let err = decode(&pickle).unwrap_err();
        assert!(matches!(err, DecodeError::Limit(m) if m.contains("nest")));
    }

    #[test]
    fn recursive_structures_are_errors() {
        // l = []; l.append(l), as CPython pickles it; and the same through DUP.
        for pickle in [&b"\x80\x04]\x94h\x00a."[..], b"\x80\x02]2a."] {
            match decode(pickle) {
                Err(DecodeError::Malformed { reason, .. }) => {
                    assert!(reason.contains("recursive"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
        // A cycle that is not part of the result is let go of (and emptied) as well.
        let cycle_then_popped = b"\x80\x04]\x94h\x00a0N.";
        assert_eq!(decode(cycle_then_popped).unwrap(), Value::None);
    }

    #[test]
    fn memo_expansion_bombs_are_refused_before_anything_is_copied() {
        // Each level is a list holding the previous level twice: 2^40 leaves from ~300 bytes.
        let mut pickle = b"\x80\x02K\x01q\x00".to_vec();
        for level in 1..=40u8 {
            pickle.extend([
                b']',
                b'(',
                b'h',
                level - 1,
                b'h',
                level - 1,
                b'e',
                b'q',
                level,
            ]);
        }
        pickle.push(b'.');
        assert!(matches!(decode(&pickle), Err(DecodeError::Limit(m)) if m.contains("shared")));
    }

    #[test]
    fn shared_values_are_copied_and_the_last_reference_takes_the_original() {
        // s = 'x' * 1000; [s, [s, s], (s,)]
        let s = "x".repeat(1000);
        let mut pickle = b"\x80\x04]\x94(X\xe8\x03\x00\x00".to_vec();
        pickle.extend(s.as_bytes());
        pickle.extend(b"\x94]\x94(h\x01h\x01eh\x01\x85\x94e.");
        let text = || Value::String(s.clone());
        assert_eq!(
            decode(&pickle).unwrap(),
            Value::List(vec![
                text(),
                Value::List(vec![text(), text()]),
                Value::Tuple(vec![text()]),
            ])
        );
        // A shared list inside a shared list: every copy is complete.
        let pickle = b"\x80\x04]\x94K\x01a]\x94(h\x00h\x00e]\x94(h\x01h\x00h\x01e.";
        let inner = Value::List(vec![Value::I64(1)]);
        let middle = Value::List(vec![inner.clone(), inner.clone()]);
        assert_eq!(
            decode(pickle).unwrap(),
            Value::List(vec![middle.clone(), inner, middle])
        );
    }

    #[test]
    fn the_size_cap_counts_copies() {
        // ['x' * 1000] * 1000: a 3 kB pickle, about 1 MB decoded.
        let mut pickle = b"\x80\x04]\x94(X\xe8\x03\x00\x00".to_vec();
        pickle.extend("x".repeat(1000).as_bytes());
        pickle.push(0x94);
        pickle.extend(std::iter::repeat_n(&b"h\x01"[..], 999).flatten());
        pickle.extend(b"e.");
        let capped = |max_size| {
            from_slice::<Keep>(
                &pickle,
                Options {
                    max_size,
                    ..options()
                },
            )
        };
        assert!(capped(1_000_000).is_err());
        assert!(capped(2_000_000).is_ok());
    }

    #[test]
    fn a_frame_must_be_all_there_in_base64_too() {
        let b64 = |text: &[u8]| from_base64::<Keep>(text, options());
        assert_eq!(b64(b"gASVAgAAAAAAAABOLg==").unwrap(), Value::None);
        for text in [&b"gASVAwAAAAAAAABOLg=="[..], b"gASV/wAAAAAAAABOLg=="] {
            assert!(
                matches!(b64(text), Err(DecodeError::Malformed { reason, .. }) if reason.contains("truncated")),
                "{text:?}"
            );
        }
        assert!(decode(b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00N.").is_err());
    }

    #[test]
    fn protocol0_lines_keep_a_carriage_return_but_numbers_trim_it() {
        assert_eq!(decode(b"I12\r\n.").unwrap(), Value::I64(12));
        assert_eq!(decode(b"F1.5\r\n.").unwrap(), Value::F64(1.5));
        assert_eq!(decode(b"I7\np0\r\ng0\r\n.").unwrap(), Value::I64(7));
        assert_eq!(decode(b"S'a\r'\n.").unwrap(), Value::String("a\r".into()));
        // CPython does not strip it from a global's name or a STRING's quotes.
        assert!(decode(b"c__builtin__\r\nset\n)R.").is_err());
        assert!(decode(b"S'a'\r\n.").is_err());
    }

    #[test]
    fn python2_ordered_dict_pairs_must_be_pairs() {
        // OrderedDict([[1, 2, 3]]) and OrderedDict([1]).
        assert!(decode(b"ccollections\nOrderedDict\n((lp1\n(lI1\naI2\naI3\naatR.").is_err());
        assert!(decode(b"ccollections\nOrderedDict\n((lp1\nI1\natR.").is_err());
        // A tuple pair, and an empty list.
        assert_eq!(
            decode(b"ccollections\nOrderedDict\n((l(I1\nI2\ntatR.").unwrap(),
            Value::Dict(BTreeMap::from([(HashableValue::I64(1), Value::I64(2))]))
        );
        assert_eq!(
            decode(b"ccollections\nOrderedDict\n((ltR.").unwrap(),
            Value::Dict(BTreeMap::new())
        );
    }

    #[test]
    fn string_escapes_are_python2s() {
        assert_eq!(
            escape_decode(
                br"a\nb\x00\'\\\101\7z\q\
end"
            )
            .unwrap(),
            b"a\nb\x00'\\A\x07z\\qend"
        );
        assert!(escape_decode(br"\x4").is_err());
    }
}

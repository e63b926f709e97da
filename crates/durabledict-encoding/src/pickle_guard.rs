//! The safety check every pickle passes before anything decodes it.
//!
//! A pickle is a program for a small stack machine; Python's unpickler runs it, and a pickle
//! that names a global (`os.system`, `builtins.eval` ...) and REDUCEs it calls that global.
//! `serde-pickle` never calls anything, but it is lenient in ways that hide such a pickle: it
//! turns class instances into empty dicts, and a REDUCE whose result is thrown away leaves no
//! trace. So this walks the opcodes first, simulating just enough of the stack machine to know
//! every global a pickle names, and refuses the pickle unless each one is on a short list of
//! the globals CPython itself uses for builtin data types.
//!
//! The walk also bounds what decoding would build: a few kilobytes of memo references can
//! expand into gigabytes (each GET copies a whole subtree), and deep nesting would overflow the
//! stack of the recursive decoder.
//!
//! Bytes after the STOP opcode are dropped, as Python's `pickle.loads` ignores them (and
//! `serde-pickle` would refuse them).
//!
//! One rewrite is made: CPython pickles `b""` with protocols 0-2, and an `OrderedDict` with any
//! protocol, as a call with no arguments (`bytes()`, `OrderedDict()`), which `serde-pickle` does
//! not know. Such a REDUCE is replaced by opcodes that drop the callable and its arguments and
//! push the empty value itself.

use std::borrow::Cow;
use std::collections::HashMap;
use std::mem;

use crate::error::DecodeError;

/// How deeply containers may nest in a decoded pickle; `serde_json` uses the same limit.
pub(crate) const MAX_DEPTH: u32 = 128;

/// What one decoded node is assumed to cost, in bytes, on top of its payload.
const NODE_COST: u64 = 64;

/// Decoded size allowed for any pickle, in the unit of [`NODE_COST`] and payload bytes.
const BASE_BUDGET: u64 = 64 << 20;

/// Extra decoded size allowed per byte of pickle. A pickle without shared references decodes
/// to about `NODE_COST` per opcode byte at most, so only sharing can exceed this.
const BUDGET_PER_BYTE: u64 = NODE_COST;

/// Longest string kept as a possible STACK_GLOBAL operand; allowed names are all shorter.
const MAX_NAME: usize = 64;

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
    /// `bytes()`: empty bytes, protocols 0-2. Rewritten.
    Bytes,
    /// `collections.OrderedDict()`, then its items set like a dict's. Rewritten.
    OrderedDict,
}

const ALLOWED_NAMES: &str = "builtins.set, builtins.frozenset, builtins.bytearray, \
     builtins.bytes, _codecs.encode and collections.OrderedDict";

fn allowed(module: &[u8], name: &[u8]) -> Option<Allowed> {
    Some(match (module, name) {
        (b"builtins" | b"__builtin__", b"set") => Allowed::Set,
        (b"builtins" | b"__builtin__", b"frozenset") => Allowed::FrozenSet,
        (b"builtins" | b"__builtin__", b"bytearray") => Allowed::ByteArray,
        (b"builtins" | b"__builtin__", b"bytes") => Allowed::Bytes,
        (b"_codecs", b"encode") => Allowed::CodecsEncode,
        (b"collections", b"OrderedDict") => Allowed::OrderedDict,
        _ => return None,
    })
}

/// A stack or memo entry. Scalars have no identity worth tracking; everything that can be
/// mutated, shared or named is a [`Node`].
#[derive(Clone, Copy, Debug)]
enum Item {
    /// A scalar, with its decoded cost.
    Leaf(u64),
    /// An index into [`Walker::nodes`].
    Node(usize),
}

#[derive(Debug)]
enum Kind {
    /// A short string: a possible STACK_GLOBAL operand.
    Name(String),
    Global(Allowed),
    EmptyTuple,
    Container,
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    children: Vec<Item>,
}

/// Checks `pickle` and returns it, rewritten where needed (see the module docs), ready for
/// `serde-pickle`.
pub(crate) fn check(pickle: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    let mut walker = Walker {
        data: pickle,
        pos: 0,
        op: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        patches: Vec::new(),
    };
    let root = walker.run()?;
    walker.check_limits(root)?;
    Ok(walker.rewritten())
}

struct Walker<'a> {
    data: &'a [u8],
    /// The next byte to read.
    pos: usize,
    /// Where the current opcode starts.
    op: usize,
    nodes: Vec<Node>,
    stack: Vec<Item>,
    /// The stack segments below each MARK.
    marks: Vec<Vec<Item>>,
    memo: HashMap<u32, Item>,
    /// REDUCE opcodes to replace: (offset, replacement).
    patches: Vec<(usize, &'static [u8])>,
}

impl<'a> Walker<'a> {
    /// Walks the opcodes up to STOP and returns the item STOP returns.
    fn run(&mut self) -> Result<Item, DecodeError> {
        if self.data.is_empty() {
            return Err(self.malformed("empty pickle"));
        }
        loop {
            self.op = self.pos;
            let opcode = self.byte()?;
            match opcode {
                b'.' => {
                    self.data = &self.data[..self.pos];
                    return self.pop();
                }
                b'(' => {
                    let below = mem::take(&mut self.stack);
                    self.marks.push(below);
                }
                b'0' => {
                    if self.stack.is_empty() {
                        self.pop_mark()?;
                    } else {
                        self.pop()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return Err(self.malformed(format!("unsupported protocol {proto}")));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }

                // Scalars.
                b'N' | 0x88 | 0x89 => self.leaf(0),
                b'K' => self.fixed_leaf(1)?,
                b'M' => self.fixed_leaf(2)?,
                b'J' => self.fixed_leaf(4)?,
                b'G' => self.fixed_leaf(8)?,
                b'I' | b'L' | b'F' | b'S' => {
                    let line = self.line()?;
                    self.leaf(line.len());
                }
                b'V' => {
                    let line = self.line()?;
                    // raw-unicode-escape: only a plain ASCII line can be read without decoding.
                    let plain = line.is_ascii() && !line.contains(&b'\\');
                    self.text(line, plain);
                }
                0x8a => {
                    let n = usize::from(self.byte()?);
                    self.take(n)?;
                    self.leaf(n);
                }
                0x8b | b'T' => {
                    let n = self.i32_len()?;
                    self.take(n)?;
                    self.leaf(n);
                }
                b'U' | b'C' => {
                    let n = usize::from(self.byte()?);
                    self.take(n)?;
                    self.leaf(n);
                }
                b'B' => {
                    let n = self.u32_len()?;
                    self.take(n)?;
                    self.leaf(n);
                }
                0x8e | 0x96 => {
                    let n = self.u64_len()?;
                    self.take(n)?;
                    self.leaf(n);
                }
                0x8c => {
                    let n = usize::from(self.byte()?);
                    let text = self.take(n)?;
                    self.text(text, true);
                }
                b'X' => {
                    let n = self.u32_len()?;
                    let text = self.take(n)?;
                    self.text(text, true);
                }
                0x8d => {
                    let n = self.u64_len()?;
                    let text = self.take(n)?;
                    self.text(text, true);
                }

                // Containers.
                b']' | b'}' | 0x8f => self.node(Kind::Container, Vec::new()),
                b')' => self.node(Kind::EmptyTuple, Vec::new()),
                0x85..=0x87 => {
                    let n = usize::from(opcode - 0x84);
                    let at = self
                        .stack
                        .len()
                        .checked_sub(n)
                        .ok_or_else(|| self.underflow())?;
                    let items = self.stack.split_off(at);
                    self.node(Kind::Container, items);
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let kind = if items.is_empty() {
                        Kind::EmptyTuple
                    } else {
                        Kind::Container
                    };
                    self.node(kind, items);
                }
                b'l' | b'd' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.node(Kind::Container, items);
                }
                b'a' => {
                    let item = self.pop()?;
                    self.add_to_top(vec![item])?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.add_to_top(vec![key, value])?;
                }
                b'e' | b'u' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.add_to_top(items)?;
                }

                // The memo.
                b'p' => {
                    let id = self.decimal_line()?;
                    self.put(id)?;
                }
                b'q' => {
                    let id = u32::from(self.byte()?);
                    self.put(id)?;
                }
                b'r' => {
                    let id = self.u32()?;
                    self.put(id)?;
                }
                0x94 => {
                    let id = u32::try_from(self.memo.len())
                        .map_err(|_| self.malformed("memo overflow"))?;
                    self.put(id)?;
                }
                b'g' => {
                    let id = self.decimal_line()?;
                    self.get(id)?;
                }
                b'h' => {
                    let id = u32::from(self.byte()?);
                    self.get(id)?;
                }
                b'j' => {
                    let id = self.u32()?;
                    self.get(id)?;
                }

                // Globals and calls: the dangerous part.
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global("GLOBAL", module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (module, name) = match (self.name_of(module), self.name_of(name)) {
                        (Some(m), Some(n)) => (m.as_bytes().to_vec(), n.as_bytes().to_vec()),
                        _ => {
                            return Err(self.refused(
                                "STACK_GLOBAL",
                                "globals are not allowed, and this one is not even named by \
                                 short strings",
                            ));
                        }
                    };
                    self.global("STACK_GLOBAL", &module, &name)?;
                }
                b'R' => self.reduce()?,
                b'i' => return Err(self.refused("INST", "class instances are not allowed")),
                b'o' => return Err(self.refused("OBJ", "class instances are not allowed")),
                0x81 => return Err(self.refused("NEWOBJ", "class instances are not allowed")),
                0x92 => return Err(self.refused("NEWOBJ_EX", "class instances are not allowed")),
                b'b' => {
                    return Err(self.refused("BUILD", "setting an object's state is not allowed"));
                }
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
                self.node(Kind::Global(global), Vec::new());
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

    fn reduce(&mut self) -> Result<(), DecodeError> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let global = match callable {
            Item::Node(i) => match self.nodes[i].kind {
                Kind::Global(global) => Some(global),
                _ => None,
            },
            Item::Leaf(_) => None,
        };
        let Some(global) = global else {
            return Err(self.refused("REDUCE", "only an allowed global may be called"));
        };
        let no_args =
            matches!(args, Item::Node(i) if matches!(self.nodes[i].kind, Kind::EmptyTuple));
        let patch: Option<&'static [u8]> = match global {
            // POP the arguments, POP the callable, push what the call returns.
            Allowed::Bytes => Some(b"00C\x00"),
            Allowed::OrderedDict => Some(b"00}"),
            _ => None,
        };
        match patch {
            Some(_) if !no_args => Err(self.refused(
                "REDUCE",
                "builtins.bytes and collections.OrderedDict may only be called without arguments",
            )),
            Some(replacement) => {
                self.patches.push((self.op, replacement));
                self.node(Kind::Container, Vec::new());
                Ok(())
            }
            None => {
                // The call builds its value from its arguments. (The argument tuple may be
                // memoized and read again, so it is referred to, not emptied.)
                self.node(Kind::Container, vec![args]);
                Ok(())
            }
        }
    }

    /// Refuses a pickle whose decoded value would be too large or too deeply nested.
    fn check_limits(&self, root: Item) -> Result<(), DecodeError> {
        let input = u64::try_from(self.data.len()).unwrap_or(u64::MAX);
        let budget = BASE_BUDGET.saturating_add(input.saturating_mul(BUDGET_PER_BYTE));
        let (size, depth) = self.measure(root);
        if depth > MAX_DEPTH {
            return Err(DecodeError::Limit(format!(
                "containers nest more than {MAX_DEPTH} deep"
            )));
        }
        if size > budget {
            return Err(DecodeError::Limit(format!(
                "a {input}-byte pickle would decode to about {size} bytes (shared references \
                 are copied when decoded); at most {budget} are allowed"
            )));
        }
        Ok(())
    }

    /// The decoded size and nesting depth of `root`, with shared nodes counted once per
    /// reference (decoding copies them). Iterative, so hostile nesting cannot overflow the
    /// stack here; a node met again while inside itself (a recursive structure) counts zero
    /// and `serde-pickle` reports it.
    fn measure(&self, root: Item) -> (u64, u32) {
        const WHITE: u8 = 0;
        const GREY: u8 = 1;
        const BLACK: u8 = 2;
        let mut colour = vec![WHITE; self.nodes.len()];
        let mut size = vec![0u64; self.nodes.len()];
        let mut depth = vec![0u32; self.nodes.len()];
        let leaf = |item: Item, size: &[u64], depth: &[u32], colour: &[u8]| match item {
            Item::Leaf(cost) => (cost, 1),
            Item::Node(i) if colour[i] == BLACK => (size[i], depth[i]),
            Item::Node(_) => (0, 0),
        };
        let Item::Node(start) = root else {
            return leaf(root, &size, &depth, &colour);
        };
        // (node, index of the next child to visit)
        let mut path = vec![(start, 0usize)];
        colour[start] = GREY;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&child) = self.nodes[node].children.get(*next) {
                *next += 1;
                if let Item::Node(c) = child
                    && colour[c] == WHITE
                {
                    colour[c] = GREY;
                    path.push((c, 0));
                }
                continue;
            }
            let mut total = NODE_COST;
            let mut deepest = 0;
            for &child in &self.nodes[node].children {
                let (s, d) = leaf(child, &size, &depth, &colour);
                total = total.saturating_add(s);
                deepest = deepest.max(d);
            }
            size[node] = total;
            depth[node] = deepest.saturating_add(1);
            colour[node] = BLACK;
            path.pop();
        }
        (size[start], depth[start])
    }

    /// The input with every patch applied.
    fn rewritten(self) -> Cow<'a, [u8]> {
        if self.patches.is_empty() {
            return Cow::Borrowed(self.data);
        }
        let mut out = Vec::with_capacity(self.data.len() + 3 * self.patches.len());
        let mut from = 0;
        for (at, replacement) in self.patches {
            out.extend_from_slice(&self.data[from..at]);
            out.extend_from_slice(replacement);
            from = at + 1; // the one-byte REDUCE opcode
        }
        out.extend_from_slice(&self.data[from..]);
        Cow::Owned(out)
    }

    // --- the simulated stack ---

    fn leaf(&mut self, payload: usize) {
        let payload = u64::try_from(payload).unwrap_or(u64::MAX);
        self.stack
            .push(Item::Leaf(NODE_COST.saturating_add(payload)));
    }

    fn fixed_leaf(&mut self, width: usize) -> Result<(), DecodeError> {
        self.take(width)?;
        self.leaf(0);
        Ok(())
    }

    /// A string; `readable` says whether its bytes are its text (no escapes to decode).
    fn text(&mut self, bytes: &[u8], readable: bool) {
        match std::str::from_utf8(bytes) {
            Ok(name) if readable && name.len() <= MAX_NAME => {
                self.node(Kind::Name(name.to_owned()), Vec::new());
            }
            _ => self.leaf(bytes.len()),
        }
    }

    fn node(&mut self, kind: Kind, children: Vec<Item>) {
        self.nodes.push(Node { kind, children });
        self.stack.push(Item::Node(self.nodes.len() - 1));
    }

    fn name_of(&self, item: Item) -> Option<&str> {
        match item {
            Item::Node(i) => match &self.nodes[i].kind {
                Kind::Name(name) => Some(name),
                _ => None,
            },
            Item::Leaf(_) => None,
        }
    }

    fn add_to_top(&mut self, items: Vec<Item>) -> Result<(), DecodeError> {
        match self.top()? {
            Item::Node(i) => {
                self.nodes[i].children.extend(items);
                Ok(())
            }
            Item::Leaf(_) => {
                Err(self.malformed("items added to something that is not a container"))
            }
        }
    }

    fn top(&self) -> Result<Item, DecodeError> {
        self.stack.last().copied().ok_or_else(|| self.underflow())
    }

    fn pop(&mut self) -> Result<Item, DecodeError> {
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    fn pop_mark(&mut self) -> Result<Vec<Item>, DecodeError> {
        let below = self.marks.pop().ok_or_else(|| self.underflow())?;
        Ok(mem::replace(&mut self.stack, below))
    }

    fn put(&mut self, id: u32) -> Result<(), DecodeError> {
        let top = self.top()?;
        self.memo.insert(id, top);
        Ok(())
    }

    fn get(&mut self, id: u32) -> Result<(), DecodeError> {
        let item = *self
            .memo
            .get(&id)
            .ok_or_else(|| self.malformed(format!("memo entry {id} is read before it is set")))?;
        self.stack.push(item);
        Ok(())
    }

    // --- reading arguments ---

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| self.malformed("truncated (the pickle ends inside an opcode)"))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// A newline-terminated argument, without the newline (and a `\r` before it).
    fn line(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = &self.data[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.malformed("truncated (a text argument has no newline)"))?;
        let line = self.take(len + 1)?;
        let line = &line[..len];
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn decimal_line(&mut self) -> Result<u32, DecodeError> {
        let line = self.line()?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| self.malformed("a memo id is not a number"))
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let mut one = [0u8; 1];
        one.copy_from_slice(self.take(1)?);
        Ok(u8::from_le_bytes(one))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut le = [0u8; 4];
        le.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(le))
    }

    fn u32_len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()?;
        usize::try_from(n).map_err(|_| self.malformed("length out of range"))
    }

    fn i32_len(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as i32;
        usize::try_from(n).map_err(|_| self.malformed("negative length"))
    }

    fn u64_len(&mut self) -> Result<usize, DecodeError> {
        let bytes = self.take(8)?;
        let mut le = [0u8; 8];
        le.copy_from_slice(bytes);
        usize::try_from(u64::from_le_bytes(le)).map_err(|_| self.malformed("length out of range"))
    }

    // --- errors ---

    fn malformed(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Malformed {
            offset: self.op,
            reason: reason.into(),
        }
    }

    fn underflow(&self) -> DecodeError {
        self.malformed("stack underflow")
    }

    fn refused(&self, opcode: &'static str, reason: impl Into<String>) -> DecodeError {
        DecodeError::Refused {
            opcode,
            offset: self.op,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refused_opcode(pickle: &[u8]) -> &'static str {
        match check(pickle) {
            Err(DecodeError::Refused { opcode, .. }) => opcode,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn plain_data_passes_unchanged() {
        let pickle = b"\x80\x03]q\x00(K\x01K\x02e.";
        assert!(matches!(check(pickle), Ok(Cow::Borrowed(p)) if p == pickle));
    }

    #[test]
    fn bytes_after_stop_are_ignored_as_python_does() {
        let pickle = b"\x80\x03K\x01.K\x02.garbage";
        assert!(matches!(
            check(pickle),
            Ok(Cow::Borrowed(b"\x80\x03K\x01."))
        ));
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
        // A call of something that is not a global at all.
        assert_eq!(refused_opcode(b"\x80\x02N)R."), "REDUCE");
        // An allowed global that must not get arguments.
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
        match check(pickle) {
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
    fn empty_bytes_and_ordered_dict_calls_are_rewritten() {
        let bytes = b"\x80\x02c__builtin__\nbytes\nq\x00)Rq\x01.";
        let out = check(bytes).unwrap();
        assert_eq!(
            &out[..],
            b"\x80\x02c__builtin__\nbytes\nq\x00)00C\x00q\x01."
        );
        let od = b"ccollections\nOrderedDict\np0\n(tRp1\nVb\np2\nI1\ns.";
        let out = check(od).unwrap();
        assert_eq!(
            &out[..],
            b"ccollections\nOrderedDict\np0\n(t00}p1\nVb\np2\nI1\ns."
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
        ] {
            match check(pickle) {
                Err(DecodeError::Malformed { offset: o, reason }) => {
                    assert_eq!(o, offset, "{pickle:?}: {reason}");
                    assert!(reason.contains(what), "{pickle:?}: {reason}");
                }
                other => panic!("{pickle:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_decoding() {
        let depth = 100_000;
        let mut pickle = b"\x80\x02".to_vec();
        pickle.extend(std::iter::repeat_n(b']', depth));
        pickle.extend(std::iter::repeat_n(b'a', depth - 1));
        pickle.push(b'.');
        assert!(matches!(check(&pickle), Err(DecodeError::Limit(m)) if m.contains("nest")));

        let ok_depth = usize::try_from(MAX_DEPTH).unwrap();
        let mut pickle = b"\x80\x02".to_vec();
        pickle.extend(std::iter::repeat_n(b']', ok_depth));
        pickle.extend(std::iter::repeat_n(b'a', ok_depth - 1));
        pickle.push(b'.');
        assert!(check(&pickle).is_ok());
    }

    #[test]
    fn memo_expansion_bombs_are_refused() {
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
        assert!(matches!(check(&pickle), Err(DecodeError::Limit(m)) if m.contains("shared")));
    }

    #[test]
    fn a_large_string_read_many_times_counts_its_length_each_time() {
        let mut pickle = b"\x80\x03B\x00\x00\x10\x00".to_vec(); // 1 MiB of bytes
        pickle.extend(std::iter::repeat_n(0u8, 1 << 20));
        pickle.extend(b"q\x00(");
        pickle.extend(std::iter::repeat_n(&b"h\x00"[..], 200).flatten());
        pickle.extend(b"l.");
        assert!(matches!(check(&pickle), Err(DecodeError::Limit(_))));
    }
}

//! The Lua scripts that change a keyspace: each write and its stamp bump run as one script,
//! so Redis applies them together or not at all, and the script returns the new stamp.
//!
//! Every script takes `KEYS[1]` = the hash of values and `KEYS[2]` = the stamp key, reads the
//! hash first (so a hash of the wrong type fails before anything changes), and bumps the stamp
//! **before** it writes: a bump that fails (the stamp holds something that is not an integer)
//! aborts the script with nothing written, since Redis does not roll back the commands a
//! failing script already ran.
//!
//! # Re-creating a lost stamp
//!
//! A stamp key can vanish while the hash lives on (someone deleted it, an eviction policy took
//! it, a replica promoted without it). The next write must not re-create it with `INCR` from
//! nothing (1, 2, ...): a dict that synced at stamp 1 or 2 earlier, with other contents, would
//! see the same number again and keep its stale cache. So a write that finds the stamp
//! missing (or at 0, where only a reset from outside leaves it) seeds it from the server clock
//! instead: `TIME` in microseconds since the epoch
//! (about 1.7e15 in 2024).
//!
//! Why that cannot repeat a stamp a dict synced at:
//! - Stamps counted up from 1 (a keyspace Python durabledict created) stay far below 1e15:
//!   that would take a million writes a second for thirty years.
//! - A seed taken at time `T1` grows by one per write. A later loss re-seeds at `T2 > T1`;
//!   the new seed equals an old stamp only if more than `T2 - T1` writes happened since `T1`,
//!   that is more than one write per microsecond sustained over the whole interval. One
//!   Redis key cannot take that rate (a single instance runs a few hundred thousand scripts
//!   a second at best).
//! - Seeds come from the server's clock, so the clocks of the many clients do not matter. The
//!   assumption left is that the server's clock does not step back by more than the time
//!   since the previous seed.
//!
//! Every write seeds this way, also when the hash is empty: a dict built on an empty keyspace
//! synced with no entries, so a write that re-created the stamp as 1 with one entry would go
//! unseen. [`INIT`] seeds a brand-new keyspace the same way, not at 1 as Python durabledict's
//! first `INCR` does: Python readers compare with `>`, so a large first stamp is compatible, and
//! a keyspace wiped whole (hash and stamp: `FLUSHALL`, a restart without persistence) is then
//! re-created far from any number a dict synced at.
//!
//! # What the stamp cannot tell: a server that restarts empty
//!
//! A writer that counts from nothing, Python durabledict's `INCR` above all, brings a wiped
//! keyspace back to 1, 2, …, and can reach exactly the stamp a live dict synced at, with other
//! values. Seeding cannot prevent that (the writer is not ours), so the store does not rely on
//! the stamp alone: its [epoch](durabledict_core::Store::epoch) changes when a request fails
//! without a reply or a new connection reaches a server with another `run_id`, and a dict under
//! any policy reloads once when it did (see the crate docs, "A server that restarts empty").
//! Without it every policy misses it, `Always` included: the first check after the restart is
//! sent again on a new connection and succeeds, so the dict sees no error, only the same
//! number.

use redis::Script;

/// Bumps the stamp, or seeds a missing one from the server clock; returns the new stamp.
/// Raises `DDCORRUPT` (nothing written yet) when the stamp is not an integer.
///
/// One `INCR` in the common case. `INCR` answering 1 means the stamp was missing (or 0, which
/// only a reset from outside leaves): then it is seeded from the clock instead. A Lua number
/// is a double, so a stamp at or above 2^53 is read back as a string to stay exact.
const BUMP: &str = r#"
local function bump()
  local n = redis.pcall('INCR', KEYS[2])
  if type(n) == 'table' and n.err then
    error({err = 'DDCORRUPT the stamp key ' .. KEYS[2] .. ' cannot be incremented: ' .. n.err})
  end
  if n == 1 then
    local t = redis.call('TIME')
    local seed = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', KEYS[2], seed)
    return seed
  end
  if n < 9007199254740992 then return n end
  return redis.call('GET', KEYS[2])
end
"#;

/// Creates a missing stamp without touching an existing one, seeded from the server clock like
/// every re-created stamp; returns the stamp. `HLEN` checks the hash's type first, so a
/// keyspace holding something else fails at creation.
pub(crate) const INIT: &str = r#"
redis.call('HLEN', KEYS[1])
local stamp = redis.call('GET', KEYS[2])
if stamp then return stamp end
return bump()
"#;

/// `ARGV[1]` = key, `ARGV[2]` = value. Returns the stamp.
const PERSIST: &str = r#"
redis.call('HLEN', KEYS[1])
local stamp = bump()
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return stamp
"#;

/// `ARGV` = key, value, key, value, ... (never empty). One bump for the batch. `HSET` takes
/// the pairs in slices, since Lua's `unpack` stops at a few thousand values.
const PERSIST_MANY: &str = r#"
redis.call('HLEN', KEYS[1])
local stamp = bump()
for i = 1, #ARGV, 2000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 1999, #ARGV)))
end
return stamp
"#;

/// `ARGV[1]` = key. Returns the stamp, or nil (no bump) when the key was absent.
const DEPERSIST: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
local stamp = bump()
redis.call('HDEL', KEYS[1], ARGV[1])
return stamp
"#;

/// `ARGV[1]` = key. Returns `{value, stamp}`, or nil (no bump) when the key was absent.
const POP: &str = r#"
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return false end
local stamp = bump()
redis.call('HDEL', KEYS[1], ARGV[1])
return {value, stamp}
"#;

/// `ARGV[1]` = key, `ARGV[2]` = value, `ARGV[3]` = `1` when this is the second send (the
/// connection of the first broke). Returns `{existing value}` when the key is present (nothing
/// written, no bump), else writes and returns the stamp. A second send that finds its own bytes
/// cannot tell whether its first send stored them or another client did, so it bumps and
/// returns the stamp: reported as an insert whose stamp is never one past what the dict had
/// seen (the first send, or the other client, bumped already), which makes the dict reload.
const SETDEFAULT: &str = r#"
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value then
  if ARGV[3] == '1' and value == ARGV[2] then return bump() end
  return {value}
end
local stamp = bump()
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return stamp
"#;

/// Returns the stamp, or nil (no bump) when the hash was already empty.
const CLEAR: &str = r#"
if redis.call('HLEN', KEYS[1]) == 0 then return false end
local stamp = bump()
redis.call('DEL', KEYS[1])
return stamp
"#;

/// The stamp and every entry in one atomic step, for connections that cannot send
/// `MULTI`/`EXEC` (the cluster client). Returns `{stamp or nil, {field, value, ...}}`.
const DURABLES: &str = r#"
return {redis.call('GET', KEYS[2]), redis.call('HGETALL', KEYS[1])}
"#;

/// Every script, compiled (hashed) once per store.
pub(crate) struct Scripts {
    pub(crate) init: Script,
    pub(crate) persist: Script,
    pub(crate) persist_many: Script,
    pub(crate) depersist: Script,
    pub(crate) pop: Script,
    pub(crate) setdefault: Script,
    pub(crate) clear: Script,
    pub(crate) durables: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with_bump = |body: &str| Script::new(&format!("{BUMP}{body}"));
        Scripts {
            init: with_bump(INIT),
            persist: with_bump(PERSIST),
            persist_many: with_bump(PERSIST_MANY),
            depersist: with_bump(DEPERSIST),
            pop: with_bump(POP),
            setdefault: with_bump(SETDEFAULT),
            clear: with_bump(CLEAR),
            durables: Script::new(DURABLES),
        }
    }
}

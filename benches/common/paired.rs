//! Paired ratios, shared by the benches that talk to a server: a baseline and a subject run in
//! alternating rounds, so that the machine's noise falls on both alike, and the median of the
//! per-round ratios is printed next to the target (`paired:` lines). On a shared machine this
//! is a steadier ratio than two criterion groups measured one after the other.

#![allow(dead_code)] // each bench uses the entry points it needs

use std::time::{Duration, Instant};

/// Runs `rounds` rounds of `baseline(batch)` then `subject(batch)`, each returning the time its
/// batch of `batch` operations took; prints the median time per operation of each and the
/// median of the per-round ratios, and returns that ratio.
pub fn paired(
    name: &str,
    target: f64,
    rounds: usize,
    batch: u32,
    mut baseline: impl FnMut(u32) -> Duration,
    mut subject: impl FnMut(u32) -> Duration,
) -> f64 {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (mut base, mut subj, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let b = baseline(batch).as_secs_f64();
        let s = subject(batch).as_secs_f64();
        base.push(b / f64::from(batch));
        subj.push(s / f64::from(batch));
        ratios.push(s / b);
    }
    let ratio = median(ratios);
    let verdict = if ratio <= target { "met" } else { "NOT met" };
    println!(
        "paired: {name}: baseline {:.3} µs, subject {:.3} µs, ratio {ratio:.3} (target <= {target}: {verdict})",
        median(base) * 1e6,
        median(subj) * 1e6,
    );
    ratio
}

/// [`paired`] for operations that time themselves (so per-operation set-up stays out of the
/// measure); fit for operations of microseconds, where a clock read is noise.
pub fn paired_each(
    name: &str,
    target: f64,
    rounds: usize,
    batch: u32,
    mut baseline: impl FnMut() -> Duration,
    mut subject: impl FnMut() -> Duration,
) -> f64 {
    paired(
        name,
        target,
        rounds,
        batch,
        |n| (0..n).map(|_| baseline()).sum(),
        |n| (0..n).map(|_| subject()).sum(),
    )
}

/// [`paired`] over 41 rounds for plain operations, each batch timed as a whole.
pub fn interleaved(
    name: &str,
    target: f64,
    batch: u32,
    mut baseline: impl FnMut(),
    mut candidate: impl FnMut(),
) -> f64 {
    paired(
        name,
        target,
        41,
        batch,
        |n| repeat(&mut baseline, n),
        |n| repeat(&mut candidate, n),
    )
}

/// Times `n` calls of `op` as a whole.
pub fn repeat(op: &mut impl FnMut(), n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed()
}

/// Times one operation.
pub fn timed(op: impl FnOnce()) -> Duration {
    let started = Instant::now();
    op();
    started.elapsed()
}

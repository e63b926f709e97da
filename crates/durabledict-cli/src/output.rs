//! Lines on standard output, flushed one by one (a `watch` reader sees each change at once).

use std::io::{self, ErrorKind, Write};

use crate::failure::Failure;

/// Writes `line` and a newline to standard output and flushes.
pub(crate) fn print_line(line: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe => Failure::OutputClosed,
            _ => Failure::Store(format!("cannot write to standard output: {e}")),
        })
}

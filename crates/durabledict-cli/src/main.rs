#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cli;
mod commands;
mod failure;
mod json_in;
mod json_out;
mod output;
mod watch;

use std::process::ExitCode;

use crate::cli::Cli;
use crate::failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::from_env();
    match commands::run(cli) {
        Ok(()) | Err(Failure::OutputClosed) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("durabledict: {failure}");
            failure.exit_code()
        }
    }
}

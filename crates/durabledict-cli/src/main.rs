#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cli;
mod commands;
mod failure;
mod json_in;
mod json_out;
mod left_out;
mod log;
mod looking;
mod name;
mod output;
mod values;
mod watch;

use std::process::ExitCode;

use crate::cli::Cli;
use crate::failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::from_env();
    match log::init(cli.verbose).and_then(|()| commands::run(cli)) {
        Ok(()) | Err(Failure::OutputClosed) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("durabledict: {failure}");
            failure.exit_code()
        }
    }
}

//! The `ringread` command: argument parsing and printing only; the reading is the library's.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}: {e:#}", cli::prog());
            ExitCode::FAILURE
        }
    }
}

//! Everything the CLI prints goes through here, so that one rule holds for every command: a
//! reader that stops reading (`imapmig status | head`) ends the command quietly, with exit
//! status [`CLOSED_PIPE`], as SIGPIPE ends a classic Unix tool. Rust ignores SIGPIPE, so
//! `println!` would panic with a backtrace instead; `main.rs` denies the std print macros.
//!
//! Use [`outln!`], [`out!`] (standard output) and [`errln!`], [`err!`] (standard error).

use std::fmt;
use std::io::{ErrorKind, Write};

/// The exit status when standard output or error was closed by its reader: 128 + SIGPIPE,
/// what a shell reports for a command that SIGPIPE ended.
pub const CLOSED_PIPE: i32 = 141;

/// Writes to standard output; see the module documentation.
pub fn stdout(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(CLOSED_PIPE);
        }
        // Another failure (a full disk behind a redirection): what was asked for cannot be
        // delivered, so say so and stop, as any other failure (exit 5).
        let _ = writeln!(
            std::io::stderr(),
            "imapmig: cannot write to standard output: {e}"
        );
        std::process::exit(5);
    }
}

/// Writes to standard error; a closed pipe ends the command as on standard output, and any
/// other failure to write a diagnostic is ignored (there is nowhere left to say it).
pub fn stderr(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    if let Err(e) = err.write_fmt(args).and_then(|()| err.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(CLOSED_PIPE);
        }
    }
}

/// `println!` to standard output, ending quietly on a closed pipe.
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` to standard output, ending quietly on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` to standard error, ending quietly on a closed pipe.
macro_rules! errln {
    () => {
        $crate::output::stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` to standard error, ending quietly on a closed pipe.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::stderr(format_args!($($arg)*))
    };
}

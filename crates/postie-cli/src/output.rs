//! Human and JSON output, colour decisions and exit codes.

use std::io::{IsTerminal, Write};

use postie::error::{Error, ErrorKind};
use postie::explain::{Context, Explanation, Retry, explain};
use serde_json::Value;

use crate::cli::ColorChoice;

/// sysexits.h codes.
pub mod exit {
    /// Successful termination.
    pub const OK: i32 = 0;
    /// Command line usage error.
    pub const USAGE: i32 = 64;
    /// Data format error.
    pub const DATAERR: i32 = 65;
    /// Addressee unknown.
    pub const NOUSER: i32 = 67;
    /// EX_NOINPUT: an input file cannot be opened or read.
    pub const NOINPUT: i32 = 66;
    /// Service unavailable.
    pub const UNAVAILABLE: i32 = 69;
    /// Internal software error.
    pub const SOFTWARE: i32 = 70;
    /// Can't create (user) output file: here, the outbox cannot store the message.
    pub const CANTCREAT: i32 = 73;
    /// Input/output error.
    pub const IOERR: i32 = 74;
    /// Temporary failure.
    pub const TEMPFAIL: i32 = 75;
    /// Remote error in protocol.
    pub const PROTOCOL: i32 = 76;
    /// Permission denied.
    pub const NOPERM: i32 = 77;
    /// Configuration error.
    pub const CONFIG: i32 = 78;
}

/// The exit code for an error kind.
pub fn exit_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Usage => exit::USAGE,
        ErrorKind::Config | ErrorKind::Secret => exit::CONFIG,
        ErrorKind::Message => exit::DATAERR,
        ErrorKind::Unavailable => exit::UNAVAILABLE,
        ErrorKind::Tls | ErrorKind::Protocol => exit::PROTOCOL,
        ErrorKind::Credentials => exit::NOPERM,
        ErrorKind::Transient => exit::TEMPFAIL,
        ErrorKind::Rejected => exit::UNAVAILABLE,
        ErrorKind::Io => exit::IOERR,
        ErrorKind::Input => exit::NOINPUT,
    }
}

/// Colour state for stderr / stdout.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Decide: `--color`, then NO_COLOR, then whether stderr is a terminal.
    pub fn new(choice: ColorChoice) -> Style {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        Style { color }
    }

    /// Whether colour is on.
    pub fn color(&self) -> bool {
        self.color
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    /// Red, for failures.
    pub fn bad(&self, s: &str) -> String {
        self.paint("31", s)
    }
    /// Green, for success.
    pub fn good(&self, s: &str) -> String {
        self.paint("32", s)
    }
    /// Yellow, for warnings.
    pub fn warn(&self, s: &str) -> String {
        self.paint("33", s)
    }
    /// Dim, for secondary detail.
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    /// Bold.
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// Escape control characters a server may have put in its reply, so that
/// printing it cannot drive the terminal.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Print an error with its explanation on stderr.
pub fn print_error(style: &Style, err: &Error, ctx: &Context<'_>) {
    let x = explain(err, ctx);
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{} {}", style.bad("error:"), clean(err.message()));
    if let Some(r) = err.reply() {
        for line in r.wire_lines() {
            let _ = writeln!(e, "  {}", style.dim(&format!("server: {}", clean(&line))));
        }
    }
    print_explanation(&mut e, style, &x, err.message());
}

/// Print an explanation (what happened, causes, fix, retry advice).
pub fn print_explanation(e: &mut dyn Write, style: &Style, x: &Explanation, already: &str) {
    // Causes can quote a server (an OAuth error description, a reply):
    // control characters are escaped so that text cannot drive the terminal.
    if x.summary != already {
        let _ = writeln!(e, "{} {}", style.bold("what happened:"), clean(&x.summary));
    }
    let only_repeats_message = x.causes.len() == 1 && x.causes[0] == already;
    if !x.causes.is_empty() && !only_repeats_message {
        let _ = writeln!(e, "{}", style.bold("likely causes:"));
        for c in &x.causes {
            let _ = writeln!(e, "  - {}", clean(c));
        }
    }
    if !x.fix.is_empty() {
        let _ = writeln!(e, "{}", style.bold("fix:"));
        for f in &x.fix {
            let _ = writeln!(e, "  - {}", clean(f));
        }
    }
    let retry = match x.retry {
        Retry::No => "retrying as is will not help",
        Retry::Later => "trying again later can succeed",
        Retry::Hours => "wait some hours before trying again",
    };
    let _ = writeln!(e, "{}", style.dim(&format!("({retry})")));
}

/// The JSON form of an error.
pub fn error_json(err: &Error, ctx: &Context<'_>) -> Value {
    serde_json::to_value(postie::explain::ErrorReport::new(err, ctx)).unwrap_or_default()
}

/// Print a JSON value on stdout, one line.
pub fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = writeln!(out);
}

//! Errors the user sees: one line each, with the process exit code that goes with it.
//!
//! Every failure that ends the program becomes an [`Error`]: its `Display` is the one-line
//! message printed to stderr, and [`Error::exit_code`] is the documented exit code. Messages
//! never contain a token or an API secret.

use std::fmt;

/// Documented exit codes (README, "Exit codes").
pub mod exit {
    /// Clean end: pipeline EOS, SIGINT/SIGTERM, `--dry-run`.
    pub const OK: i32 = 0;
    /// Runtime failure: the pipeline failed while running, or an internal error.
    pub const RUNTIME: i32 = 1;
    /// Bad usage: a flag, URL or credential problem found before anything ran.
    pub const USAGE: i32 = 2;
    /// The pipeline cannot be published: syntax, unknown element, no encoded output,
    /// unsupported codec.
    pub const PIPELINE: i32 = 3;
    /// The server refused us: bad or expired token, missing permission.
    pub const AUTH: i32 = 4;
    /// The server could not be reached, or the connection was lost and every reconnect
    /// attempt failed.
    pub const CONNECTION: i32 = 5;
    /// The server removed us from the room (RoomService, duplicate identity, room closed).
    pub const REMOVED: i32 = 6;
    /// A second SIGINT: stopped at once, without a clean leave.
    pub const FORCED: i32 = 130;
}

/// What went wrong, grouped by what the user has to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Command-line usage (flags, URL, credentials).
    Usage(String),
    /// The pipeline description or its outputs.
    Pipeline(String),
    /// The server refused the credentials or a permission.
    Auth(String),
    /// Network or server unreachable / lost for good.
    Connection(String),
    /// The server removed the participant.
    Removed(String),
    /// Anything else at run time.
    Runtime(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Pipeline(_) => exit::PIPELINE,
            Error::Auth(_) => exit::AUTH,
            Error::Connection(_) => exit::CONNECTION,
            Error::Removed(_) => exit::REMOVED,
            Error::Runtime(_) => exit::RUNTIME,
        }
    }

    fn message(&self) -> &str {
        match self {
            Error::Usage(m)
            | Error::Pipeline(m)
            | Error::Auth(m)
            | Error::Connection(m)
            | Error::Removed(m)
            | Error::Runtime(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, always: newlines inside a message (e.g. from GStreamer debug strings) are
        // folded so the user sees a single line.
        let one_line = self.message().replace(['\n', '\r'], " ");
        f.write_str(one_line.trim())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

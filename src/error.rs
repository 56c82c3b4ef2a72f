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
        // folded so the user sees a single line, and a message that echoes a long input is
        // cut in its middle, keeping the start (what failed) and the end (what to do).
        let one_line = self.message().replace(['\n', '\r'], " ");
        f.write_str(&shorten_middle(one_line.trim(), MAX_MESSAGE))
    }
}

/// Longest error message printed whole.
pub const MAX_MESSAGE: usize = 480;

/// `text` cut to at most `max` characters by replacing its middle with " … ".
pub fn shorten_middle(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let count = text.chars().count();
    if count <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let keep = max.saturating_sub(3);
    let head: String = text.chars().take(keep * 2 / 3).collect();
    let tail: String = text.chars().skip(count - (keep - keep * 2 / 3)).collect();
    std::borrow::Cow::Owned(format!("{} … {}", head.trim_end(), tail.trim_start()))
}

/// `text` cut to at most `max` characters, ending in "…" when cut: for user input echoed in
/// a message (element names, selectors, pipeline excerpts).
pub fn excerpt(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.chars().count() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let head: String = text.chars().take(max.saturating_sub(1)).collect();
    std::borrow::Cow::Owned(format!("{head}…"))
}

impl std::error::Error for Error {}

/// The result of the library's fallible calls.
pub type Result<T> = std::result::Result<T, Error>;

/// What failed in a peer connection driver; the session turns it into a reconnect.
#[derive(Debug, Clone)]
pub enum RtcError {
    /// No UDP socket could be opened on any local address.
    NoSockets(String),
    /// The server's SDP could not be read.
    BadRemoteSdp(String),
    /// str0m refused an SDP change (answer or offer).
    Rejected(String),
    /// An answer came with no offer of ours pending.
    NoPendingOffer,
    /// An offer was asked for with nothing to change.
    NothingToNegotiate,
}

impl fmt::Display for RtcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtcError::NoSockets(why) => write!(f, "cannot open UDP sockets: {why}"),
            RtcError::BadRemoteSdp(why) => write!(f, "the server's SDP is unreadable: {why}"),
            RtcError::Rejected(why) => write!(f, "the SDP was refused: {why}"),
            RtcError::NoPendingOffer => f.write_str("an answer came without an offer pending"),
            RtcError::NothingToNegotiate => f.write_str("an offer with nothing to negotiate"),
        }
    }
}

impl std::error::Error for RtcError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_keep_their_start_and_their_advice() {
        let long = format!(
            "unknown element '{}'; check the name with gst-inspect-1.0",
            "x".repeat(2000)
        );
        let shown = Error::Pipeline(long).to_string();
        assert!(shown.chars().count() <= MAX_MESSAGE, "{}", shown.len());
        assert!(shown.starts_with("unknown element 'xxx"), "{shown}");
        assert!(
            shown.ends_with("check the name with gst-inspect-1.0"),
            "{shown}"
        );
        assert_eq!(Error::Usage("short".into()).to_string(), "short");
        assert_eq!(excerpt("abcdef", 4), "abc…");
        assert_eq!(excerpt("abc", 4), "abc");
    }
}

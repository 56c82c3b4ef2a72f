//! Publish encoded media into a LiveKit room, from a GStreamer pipeline or from any Rust
//! program, without libwebrtc.
//!
//! The library's API is [`publisher`]: a [`Publisher`] connects to a room, [`LocalTrack`]s
//! take encoded frames, and what the room asks of the media comes back as [`Event`]s. The
//! command-line tool and the GStreamer element are front-ends on it; [`pipeline`] is the
//! GStreamer side they share (finding a pipeline's encoded outputs, taking their frames,
//! asking encoders for keyframes and bitrates).
//!
//! Inside, one pure core with thin drivers around it: `session` is the sans-IO core that
//! owns every decision, in the style of str0m's `Rtc` (inputs with the time passed in,
//! actions out, its exact next deadline from one timer table); `signal` speaks LiveKit's
//! WebSocket signalling protocol; `rtc` drives the two str0m peer connections and their
//! transports (UDP, ICE over TCP, TURN); the publisher's task wires them together, each
//! frame entering the core once and the RTC driver once. Drivers import the core, never the
//! other way; the core imports neither tokio nor GStreamer, and of str0m only its `Mid` id.
//!
//! # Stability
//!
//! The public API is [`publisher`] (re-exported here), [`error`], [`media`], [`pipeline`]
//! and [`redact`]. Until 1.0, a minor version (0.x → 0.(x+1)) may change it; a patch
//! version never does.

#![warn(missing_docs)]

pub mod error;
pub mod media;
pub mod pipeline;
pub mod publisher;
pub mod redact;
mod rtc;
mod session;
mod signal;
mod stats;
mod tls;

pub use publisher::{
    normalise_url, warm_up, Codec, ConnectionState, CredentialParts, Credentials, EncodedFrame,
    Event, LocalTrack, MediaKind, MissingCredential, Options, Publisher, Report, Source,
    StreamFormat, TrackId, TrackSettings, TrackSpec, WriteError,
};

//! Publish the encoded outputs of any GStreamer pipeline into a LiveKit room.
//!
//! The crate is three I/O drivers around one pure core:
//!
//! - [`pipeline`] runs the user's pipeline, finds its encoded outputs and hands out frames;
//! - [`signal`] speaks LiveKit's WebSocket signalling protocol;
//! - [`rtc`] drives the two str0m peer connections and their UDP sockets;
//! - [`session`] is the sans-IO core that owns every decision; the drivers only move bytes;
//! - [`app`] is the run loop that wires them together, [`stats`] observes what is sent, and
//!   [`cli`], [`error`] and [`media`] hold the user's contract and the shared nouns.

pub mod app;
pub mod cli;
pub mod error;
pub mod media;
pub mod pipeline;
pub mod rtc;
pub mod session;
pub mod signal;
pub mod stats;

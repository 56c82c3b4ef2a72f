//! The one test harness of gstreamer-publisher's end-to-end tests.
//!
//! - [`process`]: child processes that never outlive their test (killed and reaped on drop,
//!   also when the test panics; SIGKILLed by the kernel when the thread that spawned them
//!   ends), logs, free ports, waits;
//! - [`server`]: a real `livekit-server` per test, on free loopback ports
//!   ([`LiveKitServer::start`]) or in a lab's server namespace with ICE/TCP and TURN as asked
//!   ([`LiveKitServer::start_in_lab`]), and tokens;
//! - [`cluster`]: a multi-node LiveKit on loopback: a throw-away Redis and nodes sharing it;
//! - [`subscriber`]: the independent subscriber, LiveKit's Python SDK (libwebrtc), and its
//!   typed report: the frames it decoded are the truth; it runs where its server runs (for a
//!   lab server: the server namespace, unimpaired);
//! - [`publisher`]: the binary under test, spawned one way, on the host
//!   ([`spawn_publisher`]) or in a lab's publisher namespace ([`spawn_publisher_in`]);
//! - [`gst`]: GStreamer fixtures (media files);
//! - [`lab`]: the network lab (namespaces, veth, rate limits, loss, blocked ports).
//!
//! Prerequisites (`scripts/setup` installs them): `tools/bin/livekit-server` (or env
//! `LIVEKIT_SERVER_BIN`) and `.venv/bin/python` with the `livekit` SDK (or env
//! `SUBSCRIBER_PYTHON`). When they are missing the tests fail with "run scripts/setup first";
//! they never skip. Logs: each server, subscriber and publisher writes into its own temp
//! dir, whose tail is printed when a test panics; `KEEP_TEST_LOGS=1` keeps the dirs.
//!
//! Use from a test file with `use harness::*;`.

pub mod browser;
pub mod cluster;
pub mod gst;
pub mod lab;
pub mod process;
pub mod publisher;
pub mod server;
pub mod subscriber;

pub use browser::*;
pub use cluster::*;
pub use gst::*;
pub use process::*;
pub use publisher::*;
pub use server::*;
pub use subscriber::*;

//! The publisher binary under test, spawned one way for every test: on the host, or in a
//! lab's publisher namespace.

use std::path::Path;
use std::process::Command;

use crate::lab::{command_at, Lab, Netns};
use crate::process::{publisher_bin, ChildGuard};
use crate::server::LiveKitServer;

/// How the publisher gets its credentials: always through the environment, never argv.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// `LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET` with `--room` and `--identity`: the publisher
    /// mints its own tokens (so it can rejoin a restarted server).
    Mint { room: &'a str, identity: &'a str },
    /// `LIVEKIT_TOKEN`.
    Token(&'a str),
}

/// `gstreamer-publisher [auth] EXTRA -- PIPELINE` against `server`, with the test process's
/// own `LIVEKIT_*` variables removed and `env` added; run in network namespace `netns` (None:
/// the host).
pub fn publisher_command(
    netns: Option<&Netns>,
    server: &LiveKitServer,
    auth: Auth,
    pipeline: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = command_at(netns, publisher_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LIVEKIT_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("LIVEKIT_URL", server.url());
    match auth {
        Auth::Mint { room, identity } => {
            cmd.env("LIVEKIT_API_KEY", server.api_key())
                .env("LIVEKIT_API_SECRET", server.api_secret())
                .args(["--room", room, "--identity", identity]);
        }
        Auth::Token(token) => {
            cmd.env("LIVEKIT_TOKEN", token);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(extra).arg("--").args(pipeline.split_whitespace());
    cmd
}

/// Spawn the publisher on the host (see [`publisher_command`]) with its output logged to `log`.
pub fn spawn_publisher(
    server: &LiveKitServer,
    auth: Auth,
    pipeline: &str,
    log: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ChildGuard {
    let cmd = publisher_command(None, server, auth, pipeline, extra, env);
    ChildGuard::spawn_logged("publisher", cmd, log)
}

/// Spawn the publisher in the lab's publisher namespace, against a server started with
/// [`LiveKitServer::start_in_lab`]: all its traffic crosses the lab's link (and its knobs).
/// Otherwise as [`spawn_publisher`]; the pid is the publisher's own (`ip netns exec` execs).
pub fn spawn_publisher_in(
    lab: &Lab,
    server: &LiveKitServer,
    auth: Auth,
    pipeline: &str,
    log: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ChildGuard {
    let ns = lab.publisher_netns();
    let cmd = publisher_command(Some(&ns), server, auth, pipeline, extra, env);
    ChildGuard::spawn_logged("publisher", cmd, log)
}

/// The lines of a publisher's `--stats-json` file, each parsed (a line not yet complete, or
/// no file yet, is left out).
pub fn stats_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A room of its own for one test, and the publisher's log file in a temp dir (kept alive by
/// the returned guard; kept on disk when the test fails or `KEEP_TEST_LOGS=1`).
pub fn fresh_room(prefix: &str) -> (String, tempfile::TempDir, std::path::PathBuf) {
    let dir = crate::process::test_dir("pub");
    let log = dir.path().join("publisher.log");
    (crate::server::room_name(prefix), dir, log)
}

/// SIGINT, then the publisher must exit 0 within `within`, without a panic in its log.
/// Returns how long it took.
pub fn stop_cleanly(
    p: &mut ChildGuard,
    log: &Path,
    within: std::time::Duration,
) -> std::time::Duration {
    let t = std::time::Instant::now();
    p.signal("INT");
    let status = p.wait_timeout(within);
    let took = t.elapsed();
    let tail = || crate::process::tail_file(log, 30);
    let status = status.unwrap_or_else(|| {
        panic!(
            "the publisher did not exit within {within:?} of SIGINT\n{}",
            tail()
        )
    });
    assert_eq!(status.code(), Some(0), "exit code after SIGINT\n{}", tail());
    assert_no_panic(log);
    took
}

/// The publisher's log shows no panic.
pub fn assert_no_panic(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("panicked"),
        "the publisher panicked:\n{}",
        crate::process::tail_str(&text, 40)
    );
}

/// Waits until the publisher's log contains `needle`; panics with `what` and the log's tail
/// after `timeout`.
pub fn wait_for_log(log: &Path, needle: &str, timeout: std::time::Duration, what: &str) {
    let found = crate::process::wait_until(timeout, || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
            .then_some(())
    });
    if found.is_none() {
        panic!("{what}\n{}", crate::process::tail_file(log, 30));
    }
}

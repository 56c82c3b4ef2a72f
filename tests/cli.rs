//! The binary's contract for bad input: one line on stderr that says what to do, the
//! documented exit code, no panic, no backtrace, no hang. Also `--dry-run` and `--help`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const USAGE: i32 = 2;
const PIPELINE: i32 = 3;
const AUTH: i32 = 4;
const CONNECTION: i32 = 5;

fn run(args: &[&str], env: &[(&str, &str)]) -> RunOutput {
    let mut cmd = Command::new(publisher_bin());
    cmd.args(args);
    for var in [
        "LIVEKIT_URL",
        "LIVEKIT_TOKEN",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "LIVEKIT_ROOM",
        "LIVEKIT_IDENTITY",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("RUST_BACKTRACE", "1");
    run_with_timeout("publisher", cmd, Duration::from_secs(20))
}

/// Exactly one non-empty stderr line, starting with "error: ", no panic, the given code.
fn assert_one_line_error(out: &RunOutput, code: i32, needle: &str) -> String {
    assert!(!out.timed_out(), "hung: {out:?}");
    assert_eq!(out.code, Some(code), "exit code; stderr: {}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {}", out.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("backtrace"),
        "{}",
        out.stderr
    );
    assert!(
        lines[0].contains(needle),
        "expected {needle:?} in {:?}",
        lines[0]
    );
    lines[0].to_string()
}

#[test]
fn invalid_syntax() {
    let out = run(&["--dev", "--", "videotestsrc", "!", "!", "x264enc"], &[]);
    assert_one_line_error(&out, PIPELINE, "gst-launch");
}

#[test]
fn unknown_element() {
    let out = run(&["--dev", "--", "videotestsrc", "!", "x264enx"], &[]);
    assert_one_line_error(&out, PIPELINE, "x264enx");
}

#[test]
fn no_encoded_output() {
    let out = run(&["--dev", "--", "videotestsrc", "!", "fakesink"], &[]);
    assert_one_line_error(&out, PIPELINE, "no encoded output");
}

#[test]
fn unsupported_codec_names_element_and_says_what_to_use() {
    let out = run(
        &[
            "--dry-run",
            "--",
            "videotestsrc",
            "num-buffers=5",
            "!",
            "x265enc",
        ],
        &[],
    );
    let line = assert_one_line_error(&out, PIPELINE, "x265enc");
    assert!(line.contains("h265") && line.contains("x264enc"), "{line}");
}

#[test]
fn raw_output_says_add_an_encoder() {
    let out = run(&["--dry-run", "--", "videotestsrc"], &[]);
    let line = assert_one_line_error(&out, PIPELINE, "raw video");
    assert!(line.contains("encoder"), "{line}");
}

#[test]
fn malformed_url() {
    let out = run(
        &[
            "--url",
            "ftp//nowhere",
            "--token",
            "t",
            "--",
            "videotestsrc",
            "!",
            "vp8enc",
        ],
        &[],
    );
    assert_one_line_error(&out, USAGE, "--url");
}

#[test]
fn no_credentials() {
    let out = run(
        &[
            "--url",
            "ws://127.0.0.1:9",
            "--",
            "videotestsrc",
            "!",
            "vp8enc",
        ],
        &[],
    );
    assert_one_line_error(&out, USAGE, "--token");
}

#[test]
fn api_key_without_secret() {
    let out = run(
        &[
            "--api-key",
            "devkey",
            "--room",
            "r",
            "--",
            "videotestsrc",
            "!",
            "vp8enc",
        ],
        &[],
    );
    assert_one_line_error(&out, USAGE, "--api-secret");
}

#[test]
fn unknown_flag_is_one_line() {
    let out = run(&["--bogus", "--", "videotestsrc", "!", "vp8enc"], &[]);
    assert_one_line_error(&out, USAGE, "--bogus");
}

#[test]
fn unreachable_server_is_a_connection_error_that_never_shows_the_token() {
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}");
    let secret_token = "eyJhbGciOiJIUzI1NiJ9.SECRETPAYLOAD.SIGNATURE";
    let out = run(
        &["--", "videotestsrc", "is-live=true", "!", "vp8enc"],
        &[("LIVEKIT_URL", &url), ("LIVEKIT_TOKEN", secret_token)],
    );
    assert!(
        out.elapsed < Duration::from_secs(10),
        "took {:?}",
        out.elapsed
    );
    let line = out.stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: ") && line.contains("127.0.0.1"),
        "{}",
        out.stderr
    );
    assert_eq!(out.code, Some(CONNECTION), "{}", out.stderr);
    assert!(!out.stderr.contains("SECRETPAYLOAD"), "{}", out.stderr);
}

#[test]
fn refused_token_is_an_auth_error() {
    let server = LiveKitServer::start();
    let bad = token_with(
        server.api_key(),
        "not-the-secret-not-the-secret-000",
        "r",
        "p",
        true,
        false,
    );
    let out = run(
        &[
            "--",
            "videotestsrc",
            "is-live=true",
            "!",
            "vp8enc",
            "deadline=1",
        ],
        &[("LIVEKIT_URL", &server.url()), ("LIVEKIT_TOKEN", &bad)],
    );
    let line = out.stderr.lines().last().unwrap_or_default().to_string();
    assert_eq!(out.code, Some(AUTH), "{}", out.stderr);
    assert!(line.contains("refused the token"), "{line}");
    assert!(
        !out.stderr.contains(&bad),
        "the token must never be printed"
    );
}

#[test]
fn verbose_logs_never_contain_the_secret() {
    let server = LiveKitServer::start();
    let out = run(
        &[
            "--verbose",
            "--api-key",
            server.api_key(),
            "--room",
            "secrets",
            "--",
            "videotestsrc",
            "is-live=true",
            "num-buffers=30",
            "!",
            "vp8enc",
            "deadline=1",
        ],
        &[
            ("LIVEKIT_URL", &server.url()),
            ("LIVEKIT_API_SECRET", server.api_secret()),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("DEBUG"), "verbose logging is on");
    assert!(
        !out.stderr.contains(server.api_secret()),
        "secret leaked in: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("eyJ"),
        "a JWT leaked in: {}",
        out.stderr
    );
}

#[test]
fn dry_run_prints_each_output_and_exits_zero() {
    let out = run(
        &[
            "--dry-run",
            "--",
            "videotestsrc",
            "num-buffers=10",
            "!",
            "x264enc",
            "name=cam",
            "audiotestsrc",
            "num-buffers=10",
            "!",
            "opusenc",
            "name=mic",
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines[0].starts_with("cam.src") && lines[0].contains("video") && lines[0].contains("h264"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("mic.src") && lines[1].contains("audio") && lines[1].contains("opus"),
        "{}",
        lines[1]
    );
}

#[test]
fn help_lists_flags_and_exit_codes() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.code, Some(0));
    for flag in [
        "--url",
        "--token",
        "--api-key",
        "--api-secret",
        "--room",
        "--identity",
        "--delay",
        "--dev",
        "--dry-run",
        "--verbose",
        "--reconnect-timeout",
    ] {
        assert!(out.stdout.contains(flag), "{flag} missing from --help");
    }
    assert!(out.stdout.contains("Exit codes"));
}

#[test]
fn wss_to_a_server_without_tls_is_a_clean_connection_error() {
    // Exercises the TLS path (rustls with the system's roots) up to the handshake: a plain
    // HTTP port cannot complete it.
    let server = LiveKitServer::start();
    let url = format!("wss://127.0.0.1:{}", server.port());
    let out = run(
        &["--", "videotestsrc", "is-live=true", "!", "vp8enc"],
        &[("LIVEKIT_URL", &url), ("LIVEKIT_TOKEN", "eyJ.e30.x")],
    );
    assert_eq!(out.code, Some(CONNECTION), "{}", out.stderr);
    let line = out.stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: cannot connect to 127.0.0.1") && line.contains("TLS"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

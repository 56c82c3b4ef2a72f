//! The binary's contract for bad input: one line on stderr that says what to do, the
//! documented exit code, no panic, no backtrace, no hang. Also `--dry-run` and `--help`.

use std::process::Command;
use std::time::Duration;

use harness::lab;
use harness::*;

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

/// Every piece of a token: its three segments (or the first 16 characters of each) and the
/// JWT header marker must not appear in `text`.
fn assert_no_token_text(text: &str, token: &str, what: &str) {
    assert!(
        !text.contains("eyJ"),
        "{what} holds JWT-shaped text: {text}"
    );
    for segment in token.split('.') {
        let piece: String = segment.chars().take(16).collect();
        assert!(
            piece.len() < 8 || !text.contains(&piece),
            "{what} holds a piece of the token ({piece}): {text}"
        );
    }
}

#[test]
fn a_token_signed_with_the_wrong_secret_is_never_printed_back() {
    let server = LiveKitServer::start();
    let bad = token_with(
        server.api_key(),
        "not-the-secret-not-the-secret-000",
        "wrong-secret-room",
        "wrong-secret-identity",
        true,
        false,
    );
    let dir = test_dir("wrong-secret");
    let stats = dir.path().join("stats.json");
    let stats_arg = stats.to_string_lossy().to_string();
    for extra in [
        vec![],
        vec!["--verbose"],
        vec![
            "--stats-json",
            stats_arg.as_str(),
            "--stats-interval",
            "0.5",
        ],
    ] {
        let mut args = extra.clone();
        args.extend([
            "--",
            "videotestsrc",
            "is-live=true",
            "!",
            "vp8enc",
            "deadline=1",
        ]);
        let out = run(
            &args,
            &[("LIVEKIT_URL", &server.url()), ("LIVEKIT_TOKEN", &bad)],
        );
        assert_eq!(out.code, Some(AUTH), "{extra:?}: {}", out.stderr);
        let line = out.stderr.lines().last().unwrap_or_default();
        assert!(line.contains("refused the token"), "{line}");
        assert_no_token_text(&out.stderr, &bad, "stderr");
        assert_no_token_text(&out.stdout, &bad, "stdout");
        if extra.contains(&"--stats-json") {
            let written = std::fs::read_to_string(&stats).unwrap_or_default();
            assert_no_token_text(&written, &bad, "the stats file");
        }
    }
    // The server's answer really does echo the token: the redaction is what keeps it out.
    let body = http_get_status(server.port(), "/", Duration::from_secs(2));
    assert_eq!(body, Some(200));
}

/// A listener that accepts TCP connections and never says a word; returns its port.
fn silent_listener() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        // Hold whatever connects, without reading or answering, until the test process ends.
        for conn in listener.incoming().take(4).flatten() {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    (port, handle)
}

#[test]
fn a_server_that_accepts_and_never_answers_ends_within_the_connect_timeout() {
    let (port, _held) = silent_listener();
    for (scheme, step) in [("ws", "WebSocket upgrade"), ("wss", "TLS handshake")] {
        let url = format!("{scheme}://127.0.0.1:{port}");
        // The default --connect-timeout: 10 s.
        let out = run(
            &["-q", "--", "videotestsrc", "is-live=true", "!", "vp8enc"],
            &[("LIVEKIT_URL", &url), ("LIVEKIT_TOKEN", "t0ken")],
        );
        let line = assert_one_line_error(&out, CONNECTION, step);
        assert!(line.contains("within 10 s"), "{line}");
        assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
        assert!(
            out.elapsed >= Duration::from_secs(10) && out.elapsed <= Duration::from_secs(11),
            "{scheme}: ended after {:?}",
            out.elapsed
        );
    }
}

#[test]
fn a_websocket_without_a_join_response_ends_within_the_connect_timeout() {
    // Completes the WebSocket upgrade, then stays silent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        if let Some(Ok(conn)) = listener.incoming().next() {
            let ws = tokio_tungstenite::tungstenite::accept(conn);
            std::thread::sleep(Duration::from_secs(30));
            drop(ws);
        }
    });
    let out = run(
        &[
            "-q",
            "--connect-timeout",
            "3",
            "--",
            "videotestsrc",
            "is-live=true",
            "!",
            "vp8enc",
        ],
        &[
            ("LIVEKIT_URL", &format!("ws://127.0.0.1:{port}")),
            ("LIVEKIT_TOKEN", "t0ken"),
        ],
    );
    let line = assert_one_line_error(&out, CONNECTION, "no join response");
    assert!(line.contains("within 3 s"), "{line}");
    assert!(
        out.elapsed <= Duration::from_secs(4),
        "ended after {:?}",
        out.elapsed
    );
}

#[test]
fn two_elements_with_one_name_are_named_as_the_cause() {
    let out = run(
        &[
            "--dry-run",
            "--",
            "videotestsrc",
            "!",
            "x264enc",
            "name=enc",
            "audiotestsrc",
            "!",
            "opusenc",
            "name=enc",
        ],
        &[],
    );
    let line = assert_one_line_error(&out, PIPELINE, "two elements are named 'enc'");
    assert!(!out.stderr.contains("GStreamer-WARNING"), "{}", out.stderr);
    assert!(line.contains("its own name"), "{line}");
}

#[test]
fn a_huge_pipeline_is_not_echoed_back_whole() {
    let mut words: Vec<String> = Vec::new();
    for i in 0..2000 {
        if i > 0 {
            words.push("!".into());
        }
        words.push("identity".into());
        words.push(format!("name=element-number-{i}"));
    }
    // The last name is unknown as an element: `! nosuchelement` ends it.
    words.push("!".into());
    words.push(format!("nosuchelement{}", "x".repeat(3000)));
    let mut args = vec!["--dry-run".to_string(), "--".to_string()];
    args.extend(words);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[]);
    let line = assert_one_line_error(&out, PIPELINE, "unknown element");
    assert!(line.len() < 600, "{} characters: {line}", line.len());
    assert!(line.contains("gst-inspect-1.0"), "the advice stays: {line}");
}

#[test]
fn a_port_whose_syns_are_dropped_ends_within_the_connect_timeout() {
    // In a lab of two namespaces, every packet to or from the server's port is dropped: the
    // SYN goes unanswered, as behind a firewall that drops instead of rejecting.
    let lab = lab::Lab::new("syn-drop").expect("the network lab (needs root, iproute2, nftables)");
    let port = 7880;
    lab.block_port(lab::Proto::Tcp, port, true)
        .expect("block the port");
    let mut cmd = lab.publisher_command(publisher_bin());
    cmd.args([
        "-q",
        "--connect-timeout",
        "4",
        "--",
        "videotestsrc",
        "is-live=true",
        "!",
        "vp8enc",
    ])
    .env("LIVEKIT_URL", format!("ws://{}:{port}", lab.server_ip()))
    .env("LIVEKIT_TOKEN", "t0ken")
    .env_remove("LIVEKIT_API_KEY")
    .env_remove("LIVEKIT_API_SECRET");
    let out = run_with_timeout("publisher", cmd, Duration::from_secs(20));
    let line = assert_one_line_error(
        &out,
        CONNECTION,
        "did not accept the TCP connection within 4 s",
    );
    assert!(
        line.contains(&format!("{}:{port}", lab.server_ip())),
        "{line}"
    );
    assert!(
        out.elapsed >= Duration::from_secs(4) && out.elapsed <= Duration::from_secs(5),
        "ended after {:?}",
        out.elapsed
    );
    let dropped = lab
        .filter_counters(lab::Direction::Uplink)
        .expect("counters")
        .dropped;
    assert!(dropped >= 1, "the SYN really was dropped by the lab");
}

#[test]
fn viewer_link_gives_a_subscribe_only_token_that_expires() {
    let out = run(
        &[
            "--dev",
            "--viewer-link",
            "--viewer-ttl",
            "120",
            "--dry-run",
            "--",
            "videotestsrc",
            "!",
            "vp8enc",
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let token = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("viewer token: "))
        .expect("a viewer token line");
    let link = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("viewer link: "))
        .expect("a viewer link line");
    assert!(
        link.starts_with(
            "https://meet.livekit.io/custom?liveKitUrl=ws%3A%2F%2F127.0.0.1%3A7880&token="
        ),
        "{link}"
    );
    assert!(link.ends_with(token), "{link}");
    // Signed with the dev server's secret, for the dev room, subscribe only.
    let claims = livekit_token::TokenVerifier::with_api_key("devkey", "secret")
        .verify(token)
        .expect("a valid token for the dev keys");
    assert_eq!(claims.video.room, "dev");
    assert!(claims.video.room_join);
    assert_eq!(claims.video.can_subscribe, Some(true));
    assert_eq!(claims.video.can_publish, Some(false));
    assert_eq!(claims.video.can_publish_data, Some(false));
    assert_ne!(
        claims.sub, "gstreamer-publisher",
        "not the publisher's identity"
    );
    let ttl = claims.exp as i64 - claims.nbf as i64;
    assert!((115..=125).contains(&ttl), "expires after {ttl} s");

    // A given token cannot be turned into a viewer's: a usage error.
    let out = run(
        &["--viewer-link", "--", "videotestsrc", "!", "vp8enc"],
        &[("LIVEKIT_TOKEN", "t0ken")],
    );
    assert_one_line_error(&out, USAGE, "--viewer-link needs");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = run(
        &[
            "--log-format",
            "json",
            "--dev",
            "--url",
            "ws://127.0.0.1:9",
            "--",
            "videotestsrc",
            "is-live=true",
            "!",
            "vp8enc",
        ],
        &[],
    );
    assert_eq!(out.code, Some(CONNECTION), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    let (last, logs) = lines.split_last().expect("some output");
    assert!(
        last.starts_with("error: "),
        "the error stays one plain line: {last}"
    );
    assert!(!logs.is_empty(), "{}", out.stderr);
    for l in logs {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
    }
}

#[test]
fn a_log_filter_that_cannot_be_read_is_said_and_the_default_used() {
    let pipeline = [
        "--dry-run",
        "--",
        "audiotestsrc",
        "num-buffers=5",
        "!",
        "opusenc",
    ];
    let out = run(&pipeline, &[("GST_PUBLISHER_LOG", "info,=loud")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let said: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("GST_PUBLISHER_LOG"))
        .collect();
    assert_eq!(said.len(), 1, "{}", out.stderr);
    assert!(
        said[0].contains("info,=loud") && said[0].contains("default"),
        "{}",
        said[0]
    );
    // A filter that reads is taken: debug lines appear.
    let out = run(
        &pipeline,
        &[("GST_PUBLISHER_LOG", "gstreamer_publisher=debug")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("DEBUG"), "{}", out.stderr);
    assert!(!out.stderr.contains("GST_PUBLISHER_LOG"), "{}", out.stderr);
}

//! Lifecycle and faults, end to end: per-track end, the server removing us, the server
//! restarting or freezing mid-stream, and stopping while reconnecting. Real livekit-server,
//! real publisher binary, the independent subscriber's decoded frames as the truth.
//!
//! One test at a time (a file-wide lock): they measure recovery times on a 2-core machine.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::*;
use serde_json::Value;

fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The publisher minting its own tokens (so it can rejoin a restarted server).
fn publisher(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    pipeline: &str,
    log: &Path,
) -> ChildGuard {
    let auth = Auth::Mint { room, identity };
    spawn_publisher(
        server,
        auth,
        pipeline,
        log,
        &["--reconnect-timeout", "30"],
        &[],
    )
}

const LIVE_VP8: &str = "videotestsrc is-live=true ! video/x-raw,width=320,height=240 ! vp8enc deadline=1 keyframe-max-dist=300 name=cam";

fn first_video_frame(sub: &mut Subscriber, identity: &str, timeout: Duration) -> Value {
    sub.wait_event(timeout, |e| {
        e["type"] == "first_frame" && e["kind"] == "video" && e["identity"] == identity
    })
    .unwrap_or_else(|| panic!("no video frame decoded from {identity} within {timeout:?}"))
}

#[test]
fn one_track_ends_while_the_others_go_on_and_the_last_one_ends_the_process() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("pertrack");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "40"]);
    // `short` ends after 3 s (90 frames), `long` after 9 s, the audio after 9 s as well.
    let pipeline = "videotestsrc is-live=true num-buffers=90 ! video/x-raw,width=320,height=240 ! vp8enc deadline=1 name=short \
                    videotestsrc is-live=true num-buffers=270 ! video/x-raw,width=320,height=240 ! vp8enc deadline=1 name=long \
                    audiotestsrc is-live=true num-buffers=450 ! opusenc name=mic";
    let mut p = publisher(&server, &room, "pertrack", pipeline, &log);
    let ended = sub
        .wait_event(Duration::from_secs(20), |e| {
            e["type"] == "track_unpublished" && e["identity"] == "pertrack"
        })
        .unwrap_or_else(|| panic!("no track was unpublished\n{}", tail_file(&log, 30)));
    let status = p
        .wait_timeout(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("publisher did not exit\n{}", tail_file(&log, 30)));
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 when the last output ends\n{}",
        tail_file(&log, 30)
    );
    sub.finish();
    let report = sub.wait();
    let short = report
        .track_named("short")
        .unwrap_or_else(|| panic!("{}", report.pretty()));
    let long = report
        .track_named("long")
        .unwrap_or_else(|| panic!("{}", report.pretty()));
    assert_eq!(
        ended["sid"],
        short.sid.as_str(),
        "the first track to go is the one that ended first"
    );
    let short_gone = short.unpublished_seconds.expect("short unpublished");
    let long_last = long.last_frame_seconds.expect("long decoded");
    assert!(
        long_last > short_gone + 3.0,
        "long kept decoding after short ended ({long_last} vs {short_gone})\n{}",
        report.pretty()
    );
    assert!(long.frames >= 150, "{}", report.pretty());
    assert!(
        long.unpublished_seconds.is_some(),
        "the last track is unpublished too"
    );
    assert_no_panic(&log);
}

#[test]
fn removed_through_room_service_exits_with_its_code_within_2s() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("removed");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "30"]);
    let mut p = publisher(&server, &room, "victim", LIVE_VP8, &log);
    first_video_frame(&mut sub, "victim", Duration::from_secs(20));
    let mut admin = Command::new(subscriber_python());
    admin
        .arg(manifest_dir().join("tests/subscriber/room_admin.py"))
        .args([
            "remove",
            "--url",
            &server.http_url(),
            "--api-key",
            server.api_key(),
            "--api-secret",
            server.api_secret(),
            "--room",
            &room,
            "--identity",
            "victim",
        ]);
    let t = Instant::now();
    let out = run_with_timeout("room_admin", admin, Duration::from_secs(20));
    assert_eq!(
        out.code,
        Some(0),
        "RemoveParticipant failed: {} {}",
        out.stdout,
        out.stderr
    );
    let status = p
        .wait_timeout(Duration::from_secs(2) + (Instant::now() - t))
        .unwrap_or_else(|| {
            panic!(
                "publisher still running 2 s after its removal\n{}",
                tail_file(&log, 30)
            )
        });
    assert_eq!(
        status.code(),
        Some(6),
        "documented exit code for a removal\n{}",
        tail_file(&log, 30)
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("removed"),
        "{last}"
    );
    assert_no_panic(&log);
}

#[test]
fn server_restart_mid_stream_video_decodes_again_within_5s_of_the_server_being_back() {
    let _s = serial();
    let mut server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("restart");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "60"]);
    let mut p = publisher(&server, &room, "survivor", LIVE_VP8, &log);
    first_video_frame(&mut sub, "survivor", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    server.kill();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        p.is_running(),
        "the publisher must survive the server going away\n{}",
        tail_file(&log, 30)
    );
    server.start_again();
    let back = wall();
    // A viewer who joins once the server is back sees our track at once. (The first
    // subscriber's own SDK reconnects with a backoff of its own, up to several seconds, so
    // it is not the measure of how fast we come back.)
    let mut fresh = Subscriber::spawn(&server, &room, &["--duration", "30", "--identity", "fresh"]);
    let again = first_video_frame(&mut fresh, "survivor", Duration::from_secs(30));
    let after = again["t_wall"].as_f64().unwrap() - back;
    assert!(
        after < 5.0,
        "video decoded again {after:.2} s after the server was back"
    );
    // The subscriber that was there all along gets the track back too, under a new sid.
    sub.wait_event(Duration::from_secs(30), |e| {
        e["type"] == "first_frame"
            && e["kind"] == "video"
            && e["t_wall"].as_f64().is_some_and(|t| t > back)
    })
    .unwrap_or_else(|| {
        panic!(
            "no video decoded after the restart\n{}\n{}",
            tail_file(&log, 40),
            sub.stderr()
        )
    });
    assert!(p.is_running());
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

#[test]
fn server_frozen_for_10s_video_decodes_again_within_3s_after() {
    let _s = serial();
    let mut server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("frozen");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "60"]);
    let mut p = publisher(&server, &room, "patient", LIVE_VP8, &log);
    first_video_frame(&mut sub, "patient", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    // Every packet to and from the server is black-holed: it neither answers nor forwards.
    server.pause();
    std::thread::sleep(Duration::from_secs(10));
    server.resume();
    let thawed = wall();
    // A frame decoded after the thaw: the subscriber's frame events come as a stream of
    // first_frame (per sid) and periodic progress; ask for any decoded video after `thawed`.
    let again = sub
        .wait_event(Duration::from_secs(20), |e| {
            (e["type"] == "first_frame" || e["type"] == "video_resumed" || e["type"] == "frames")
                && e["kind"] == "video"
                && e["t_wall"].as_f64().is_some_and(|t| t > thawed)
        })
        .unwrap_or_else(|| {
            panic!(
                "no video decoded after the freeze\n{}\n{}",
                tail_file(&log, 40),
                sub.stderr()
            )
        });
    let after = again["t_wall"].as_f64().unwrap() - thawed;
    assert!(
        after < 3.0,
        "video decoded again {after:.2} s after the freeze ended"
    );
    assert!(
        p.is_running(),
        "the publisher rode out the freeze\n{}",
        tail_file(&log, 30)
    );
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

#[test]
fn sigint_during_a_reconnect_attempt_exits_zero_within_2s() {
    let _s = serial();
    let mut server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("interrupt");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "30"]);
    let mut p = publisher(&server, &room, "interrupted", LIVE_VP8, &log);
    first_video_frame(&mut sub, "interrupted", Duration::from_secs(20));
    server.kill();
    // Wait until the publisher is reconnecting.
    wait_for_log(
        &log,
        "reconnecting",
        Duration::from_secs(10),
        "never started reconnecting",
    );
    std::thread::sleep(Duration::from_millis(700));
    let t = Instant::now();
    p.signal("INT");
    let status = p
        .wait_timeout(Duration::from_secs(2))
        .unwrap_or_else(|| panic!("still running 2 s after SIGINT\n{}", tail_file(&log, 30)));
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(status.code(), Some(0), "{}", tail_file(&log, 30));
    assert_no_panic(&log);
}

#[test]
fn reconnect_gives_up_after_the_timeout_with_its_exit_code() {
    let _s = serial();
    let mut server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("giveup");
    let mut cmd = Command::new(publisher_bin());
    cmd.env("LIVEKIT_URL", server.url())
        .env("LIVEKIT_API_KEY", server.api_key())
        .env("LIVEKIT_API_SECRET", server.api_secret())
        .args(["--room", &room, "--reconnect-timeout", "3", "--"]);
    cmd.args(LIVE_VP8.split_whitespace());
    let mut p = ChildGuard::spawn_logged("publisher", cmd, &log);
    wait_for_log(
        &log,
        "is live as track",
        Duration::from_secs(15),
        "never went live",
    );
    server.kill();
    let status = p
        .wait_timeout(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("did not give up\n{}", tail_file(&log, 30)));
    assert_eq!(status.code(), Some(5), "{}", tail_file(&log, 30));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.lines()
            .last()
            .unwrap_or_default()
            .starts_with("error: gave up reconnecting"),
        "{}",
        tail_str(&text, 10)
    );
    assert_no_panic(&log);
}

/// A TCP relay in front of the server's signalling port, whose connections a test can cut
/// (the WebSocket drops; UDP media is untouched).
struct SignalRelay {
    port: u16,
    conns: std::sync::Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl SignalRelay {
    fn start(target: u16) -> SignalRelay {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: std::sync::Arc<Mutex<Vec<TcpStream>>> = Default::default();
        let c2 = conns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut g = c2.lock().unwrap();
                    g.push(client.try_clone().unwrap());
                    g.push(upstream.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        SignalRelay { port, conns }
    }

    /// Reset every relayed connection (new ones are still accepted).
    fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_dropped_websocket_is_resumed_without_the_subscriber_noticing() {
    let _s = serial();
    let server = LiveKitServer::start();
    let relay = SignalRelay::start(server.port());
    let (room, _dir, log) = fresh_room("resume");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "40"]);
    let mut cmd = Command::new(publisher_bin());
    cmd.env("LIVEKIT_URL", format!("ws://127.0.0.1:{}", relay.port))
        .env("LIVEKIT_API_KEY", server.api_key())
        .env("LIVEKIT_API_SECRET", server.api_secret())
        .args(["--room", &room, "--identity", "steady", "--"]);
    cmd.args(LIVE_VP8.split_whitespace());
    let mut p = ChildGuard::spawn_logged("publisher", cmd, &log);
    first_video_frame(&mut sub, "steady", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    relay.cut();
    wait_for_log(
        &log,
        "resumed the session",
        Duration::from_secs(10),
        "never resumed",
    );
    // Keep going a while on the resumed session (pings, a second cut).
    std::thread::sleep(Duration::from_secs(6));
    relay.cut();
    std::thread::sleep(Duration::from_secs(4));
    assert!(p.is_running(), "{}", tail_file(&log, 30));
    p.signal("INT");
    let status = p
        .wait_timeout(Duration::from_secs(3))
        .expect("exit after SIGINT");
    assert_eq!(status.code(), Some(0), "{}", tail_file(&log, 30));
    sub.finish();
    let report = sub.wait();
    let videos = report.video_tracks();
    assert_eq!(
        videos.len(),
        1,
        "one track all along, never republished: {}",
        report.pretty()
    );
    let t = videos[0];
    assert!(
        t.max_gap_seconds < 1.0,
        "video never stalled: {}",
        report.pretty()
    );
    assert!(t.frames >= 300, "{}", report.pretty());
    let unpublished_before_leave = report
        .events_of("track_unpublished")
        .iter()
        .any(|e| e["t"].as_f64().unwrap_or(0.0) < t.last_frame_seconds.unwrap_or(0.0) - 0.5);
    assert!(
        !unpublished_before_leave,
        "the track was never unpublished mid-stream: {}",
        report.pretty()
    );
    assert_no_panic(&log);
}

#[test]
fn a_second_sigint_exits_at_once() {
    let _s = serial();
    let mut server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("twice");
    let mut p = publisher(&server, &room, "impatient", LIVE_VP8, &log);
    wait_for_log(
        &log,
        "is live as track",
        Duration::from_secs(15),
        "never went live",
    );
    // A frozen server cannot take our leave: the clean exit waits (at most 0.5 s) for it.
    server.pause();
    p.signal("INT");
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    p.signal("INT");
    let status = p.wait_timeout(Duration::from_secs(2)).expect("exits");
    assert_eq!(status.code(), Some(130), "{}", tail_file(&log, 20));
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "exited {:?} after the second signal",
        t.elapsed()
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("stopped at once"));
    server.resume();
    assert_no_panic(&log);
}

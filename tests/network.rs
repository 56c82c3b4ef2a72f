//! End to end across the network lab: a real livekit-server and the subscriber in the lab's
//! server namespace, the publisher in its publisher namespace, every packet between them
//! crossing the lab's veth and its knobs (loss, rate, blocks). Needs root, iproute2, nftables
//! and openssl besides what every end-to-end test needs; a lab that cannot be made fails the
//! test with the reason, never skips it.

use std::path::Path;
use std::time::Duration;

use harness::lab::{Direction, FilterCounters, Lab};
use harness::*;

fn new_lab(name: &str) -> Lab {
    Lab::new(name).expect("cannot build the network lab (needs root, iproute2, nftables)")
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

const VP8_640X360: &str = "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 ! vp8enc deadline=1 target-bitrate=800000 keyframe-max-dist=300";

#[test]
fn video_decodes_across_the_lab_over_udp() {
    let _s = serial();
    let lab = new_lab("udp-baseline");
    // ICE/TCP and TURN off: UDP from the publisher namespace to the server's ICE port is the
    // only media path there is.
    let server = LiveKitServer::start_in_lab(&lab, LabServerOptions::default());
    assert_eq!(server.tcp_port(), 0);
    assert!(server.turn().is_none());
    let (room, _dir, log) = fresh_room("lab-udp");
    let sub = Subscriber::spawn(
        &server,
        &room,
        &[
            "--duration",
            "20",
            "--wait-tracks",
            "1",
            "--exit-after-frames",
            "150",
        ],
    );
    let mut p = spawn_publisher_in(
        &lab,
        &server,
        Auth::Mint {
            room: &room,
            identity: "pub",
        },
        VP8_640X360,
        &log,
        &[],
        &[],
    );
    let report = sub.wait();
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    let video = report.video_tracks();
    assert_eq!(video.len(), 1, "{}", report.pretty());
    let t = video[0];
    eprintln!(
        "across the lab over UDP: {} frames at {}x{}, {:.1} fps, longest gap {:.3} s",
        t.frames, t.width, t.height, t.fps, t.max_gap_seconds
    );
    assert!(
        t.frames >= 150,
        "decoded {} frames\n{}\n{}",
        t.frames,
        report.pretty(),
        tail_file(&log, 30)
    );
    assert_eq!((t.width, t.height), (640, 360), "{}", report.pretty());
    assert_eq!(t.sizes, vec![(640, 360)], "{}", report.pretty());
    assert_eq!(t.mime, "video/VP8", "{}", report.pretty());
    // the media really crossed the veth (5 s of 800 kbit/s video is hundreds of packets)
    let up = lab.filter_counters(Direction::Uplink).expect("counters");
    assert!(
        up.passed > 300,
        "only {} packets crossed the lab's uplink",
        up.passed
    );
}

#[test]
fn five_percent_loss_each_way_is_repaired_by_nack_and_rtx() {
    let _s = serial();
    let lab = new_lab("loss");
    let server = LiveKitServer::start_in_lab(&lab, LabServerOptions::default());
    let (room, dir, log) = fresh_room("lab-loss");
    let stats = dir.path().join("stats.jsonl");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "40"]);
    sub.wait_event_type("connected", Duration::from_secs(15))
        .expect("subscriber connected");
    // Real loss on the publisher's link, both ways, from the first packet on: media and RTX
    // up, NACKs and receiver reports down, and the signalling (TCP) too. The subscriber's own
    // path (inside the server namespace) is clean, so what it misses the SFU failed to get.
    lab.set_loss(Direction::Uplink, 5.0).expect("uplink loss");
    lab.set_loss(Direction::Downlink, 5.0)
        .expect("downlink loss");
    let mut p = spawn_publisher_in(
        &lab,
        &server,
        Auth::Mint {
            room: &room,
            identity: "pub",
        },
        VP8_640X360,
        &log,
        &[
            "--stats-json",
            stats.to_str().unwrap(),
            "--stats-interval",
            "1",
        ],
        &[],
    );
    sub.wait_event(Duration::from_secs(20), |e| {
        e["type"] == "first_frame" && e["kind"] == "video"
    })
    .unwrap_or_else(|| panic!("nothing decoded\n{}", tail_file(&log, 30)));
    std::thread::sleep(Duration::from_secs(15));
    let up = lab.filter_counters(Direction::Uplink).expect("counters");
    let down = lab.filter_counters(Direction::Downlink).expect("counters");
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    sub.finish();
    let report = sub.wait();
    let lines = stats_lines(&stats);
    let last = lines
        .last()
        .unwrap_or_else(|| panic!("no stats written\n{}", tail_file(&log, 30)));
    let track = &last["tracks"][0];
    let nacks = track["nack"].as_u64().unwrap();
    // Frames sent while the subscriber was decoding: its decode span times the rate we sent
    // at (the server only starts forwarding at a keyframe once the subscription is bound, so
    // frames before that were never meant to reach it).
    let send_fps = median(
        lines
            .iter()
            .skip(2)
            .map(|l| l["tracks"][0]["fps"].as_f64().unwrap())
            .filter(|f| *f > 0.0)
            .collect(),
    );
    let t = &report.video_tracks()[0];
    let span = t.last_frame_seconds.unwrap() - t.first_frame_seconds.unwrap();
    let expected = span * send_fps + 1.0;
    let ratio = t.frames as f64 / expected;
    let pct = |c: FilterCounters| 100.0 * c.dropped as f64 / (c.dropped + c.passed) as f64;
    eprintln!(
        "5 % loss each way: lab dropped {}/{} uplink ({:.1} %), {}/{} downlink ({:.1} %); \
         publisher saw {nacks} NACKs, {} PLIs, {} packets sent, loss reported {}; subscriber \
         decoded {} of {expected:.0} frames ({:.1} %) over {span:.1} s at {send_fps:.1} fps, \
         longest gap {:.3} s",
        up.dropped,
        up.dropped + up.passed,
        pct(up),
        down.dropped,
        down.dropped + down.passed,
        pct(down),
        track["pli"],
        track["packets_sent"],
        track["loss"],
        t.frames,
        ratio * 100.0,
        t.max_gap_seconds
    );
    assert!(
        up.dropped > 0 && down.dropped > 0,
        "the lab dropped packets both ways: up {up:?}, down {down:?}"
    );
    assert!(nacks > 0, "a lossy link produces NACKs: {last}");
    // Measured (2026-12-05): the viewer decodes 99.2–100.7 % of the frames (14 runs; 8 and
    // 10 % loss each way gave 97–100 % over 16 runs). With our resends dropped it decoded
    // 3–12 %, with freezes of 7–9 s. Before, the subscriber's SDK kept one decoded frame
    // and dropped the next that came while it waited, which counted only 92–99 %; twice in
    // about 50 runs the viewer froze for 3 s after its first frame (76 %), not seen since
    // in 66 runs.
    assert!(
        ratio >= 0.95,
        "decoded {} of {expected:.0} frames sent over {span:.1} s at {send_fps:.1} fps ({:.1}%)\n{}",
        t.frames,
        ratio * 100.0,
        report.pretty()
    );
    assert!(
        t.max_gap_seconds < 1.0,
        "froze for {:.2} s\n{}",
        t.max_gap_seconds,
        report.pretty()
    );
}

/// The publisher's media path as its log says it ("udp", "tcp" or "relay").
fn media_path(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find_map(|l| l.split("publisher media path: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
}

/// The publisher's media went over `want` ("udp", "tcp" or "relay"); else its log's tail.
fn assert_media_path(log: &Path, want: &str) {
    assert_eq!(
        media_path(log).as_deref(),
        Some(want),
        "{}",
        tail_file(log, 30)
    );
}

/// Publish VP8 from the publisher namespace until it is live, then let a viewer join in the
/// server namespace; the viewer's first frame must come within `within` of its joining.
/// Returns the publisher (still running) and the viewer's report.
fn publish_then_watch(
    lab: &Lab,
    server: &LiveKitServer,
    prefix: &str,
    extra: &[&str],
    env: &[(&str, &str)],
    within: Duration,
) -> (
    ChildGuard,
    SubscriberReport,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let (room, dir, log) = fresh_room(prefix);
    let auth = Auth::Mint {
        room: &room,
        identity: "pub",
    };
    let p = spawn_publisher_in(lab, server, auth, VP8_640X360, &log, extra, env);
    wait_for_log(
        &log,
        "is live as track",
        Duration::from_secs(20),
        "the track never went live",
    );
    let report = Subscriber::spawn(
        server,
        &room,
        &[
            "--duration",
            "12",
            "--wait-tracks",
            "1",
            "--exit-after-frames",
            "90",
        ],
    )
    .wait();
    let video = report.video_tracks();
    assert_eq!(
        video.len(),
        1,
        "{}\n{}",
        report.pretty(),
        tail_file(&log, 30)
    );
    let t = video[0];
    assert!(
        t.frames >= 90,
        "decoded {} frames\n{}",
        t.frames,
        tail_file(&log, 30)
    );
    assert_eq!((t.width, t.height), (640, 360));
    let joined = report.connect_t_wall.expect("the viewer connected");
    let first = t.first_frame_t_wall.expect("a first frame");
    assert!(
        first - joined < within.as_secs_f64(),
        "first frame {:.2} s after the viewer joined",
        first - joined
    );
    (p, report, dir, log)
}

#[test]
fn with_udp_blocked_video_goes_over_ice_tcp() {
    let _s = serial();
    let lab = new_lab("ice-tcp");
    let server = LiveKitServer::start_in_lab(
        &lab,
        LabServerOptions {
            tcp_port: true,
            ..Default::default()
        },
    );
    lab.block_udp(true).expect("block UDP");
    let (mut p, _report, _dir, log) =
        publish_then_watch(&lab, &server, "lab-tcp", &[], &[], Duration::from_secs(3));
    assert_media_path(&log, "tcp");
    let up = lab.filter_counters(Direction::Uplink).expect("counters");
    assert!(up.dropped > 0, "UDP really was tried and dropped");
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

#[test]
fn with_udp_and_the_tcp_media_port_blocked_video_goes_through_turn_over_tls() {
    let _s = serial();
    let lab = new_lab("turn-tls");
    let server = LiveKitServer::start_in_lab(
        &lab,
        LabServerOptions {
            tcp_port: true,
            turn: true,
            ..Default::default()
        },
    );
    lab.block_udp(true).expect("block UDP");
    lab.block_port(harness::lab::Proto::Tcp, LAB_ICE_TCP_PORT, true)
        .expect("block ICE over TCP");
    let ca = server
        .ca_file()
        .expect("the lab's CA")
        .to_string_lossy()
        .to_string();
    let (mut p, _report, _dir, log) = publish_then_watch(
        &lab,
        &server,
        "lab-turn",
        &["--ca-file", &ca],
        &[],
        Duration::from_secs(3),
    );
    assert_media_path(&log, "relay");
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

#[test]
fn force_relay_uses_the_relay_although_udp_works() {
    let _s = serial();
    let lab = new_lab("force-relay");
    let server = LiveKitServer::start_in_lab(
        &lab,
        LabServerOptions {
            turn: true,
            ..Default::default()
        },
    );
    let ca = server
        .ca_file()
        .expect("the lab's CA")
        .to_string_lossy()
        .to_string();
    let (mut p, _report, _dir, log) = publish_then_watch(
        &lab,
        &server,
        "lab-relay",
        &["--force-relay", "--ca-file", &ca],
        &[],
        Duration::from_secs(3),
    );
    assert_media_path(&log, "relay");
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

fn tcp_only_lab(name: &str) -> (Lab, LiveKitServer) {
    let lab = new_lab(name);
    let server = LiveKitServer::start_in_lab(
        &lab,
        LabServerOptions {
            tcp_port: true,
            ..Default::default()
        },
    );
    lab.block_udp(true).expect("block UDP");
    (lab, server)
}

fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[test]
fn signalling_cut_while_on_tcp_is_resumed() {
    let _s = serial();
    let (lab, server) = tcp_only_lab("tcp-resume");
    let (room, _dir, log) = fresh_room("lab-resume");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "50"]);
    let auth = Auth::Mint {
        room: &room,
        identity: "pub",
    };
    let mut p = spawn_publisher_in(&lab, &server, auth, VP8_640X360, &log, &[], &[]);
    let first = sub
        .wait_event(Duration::from_secs(20), |e| {
            e["type"] == "first_frame" && e["kind"] == "video"
        })
        .unwrap_or_else(|| panic!("nothing decoded\n{}", tail_file(&log, 30)));
    assert_media_path(&log, "tcp");
    // The signalling port goes silent (media over ICE-TCP goes on): after the ping timeout
    // the publisher resumes, which works once the port is back.
    lab.block_port(harness::lab::Proto::Tcp, LAB_HTTP_PORT, true)
        .expect("cut signalling");
    wait_for_log(
        &log,
        "resuming the session",
        Duration::from_secs(25),
        "never tried to resume",
    );
    lab.block_port(harness::lab::Proto::Tcp, LAB_HTTP_PORT, false)
        .expect("signalling back");
    wait_for_log(
        &log,
        "resumed the session",
        Duration::from_secs(20),
        "never resumed",
    );
    std::thread::sleep(Duration::from_secs(2));
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    let report = sub.wait_timeout(Duration::from_secs(60));
    let sid = first["sid"].as_str().unwrap();
    let t = report
        .video_tracks()
        .into_iter()
        .find(|t| t.sid == sid)
        .expect("the same track throughout");
    // The viewer keeps the track; the server may hold its forwarding for about a second
    // when the session resumes (seen: 1.07 s), never longer.
    assert!(
        t.max_gap_seconds < 2.0,
        "the viewer kept decoding: longest gap {:.2} s\n{}",
        t.max_gap_seconds,
        tail_file(&log, 30)
    );
    assert_eq!(
        report.video_tracks().len(),
        1,
        "no new track: {}",
        report.pretty()
    );
}

#[test]
fn media_cut_for_10_s_while_on_tcp_recovers_within_5_s() {
    let _s = serial();
    let (lab, server) = tcp_only_lab("tcp-rejoin");
    let (room, _dir, log) = fresh_room("lab-rejoin");
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "60"]);
    let auth = Auth::Mint {
        room: &room,
        identity: "pub",
    };
    let mut p = spawn_publisher_in(&lab, &server, auth, VP8_640X360, &log, &[], &[]);
    sub.wait_event(Duration::from_secs(20), |e| {
        e["type"] == "first_frame" && e["kind"] == "video"
    })
    .unwrap_or_else(|| panic!("nothing decoded\n{}", tail_file(&log, 30)));
    lab.block_port(harness::lab::Proto::Tcp, LAB_ICE_TCP_PORT, true)
        .expect("cut media");
    std::thread::sleep(Duration::from_secs(10));
    lab.block_port(harness::lab::Proto::Tcp, LAB_ICE_TCP_PORT, false)
        .expect("media back");
    let back = unix_time();
    // Video again: on a new track after a rejoin, or on the same one if the connection
    // survived the cut.
    let again = sub
        .wait_event(Duration::from_secs(20), |e| {
            (e["type"] == "first_frame" || e["type"] == "video_resumed")
                && e["kind"] == "video"
                && e["t_wall"].as_f64().is_some_and(|t| t > back)
        })
        .unwrap_or_else(|| panic!("no video after the cut\n{}", tail_file(&log, 40)));
    let after = again["t_wall"].as_f64().unwrap() - back;
    assert!(
        after < 5.0,
        "video again {after:.2} s after the cut ended\n{}",
        tail_file(&log, 40)
    );
    // TCP holds a 10 s cut (it retransmits); a longer one ends in a rejoin.
    let rejoined = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("reconnecting");
    eprintln!(
        "media cut for 10 s on ICE-TCP: video again {after:.2} s after, {}",
        if rejoined {
            "after a rejoin"
        } else {
            "on the same connection"
        }
    );
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

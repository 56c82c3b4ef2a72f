//! Simulcast: one video track in several qualities; each viewer gets the layer it asks for,
//! and layers nobody watches stop their encoders.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::*;
use serde_json::Value;

const LIVE_720P: &str =
    "videotestsrc is-live=true ! video/x-raw,width=1280,height=720,framerate=30/1";

/// Three viewers, one per quality, each decoding the size it should.
fn three_viewers_get_their_layer(server: &LiveKitServer, room: &str, log: &Path) {
    let viewers: Vec<(Subscriber, &str, (u32, u32))> = [
        ("low", (320, 180)),
        ("medium", (640, 360)),
        ("high", (1280, 720)),
    ]
    .into_iter()
    .map(|(q, size)| {
        let sub = Subscriber::spawn(
            server,
            room,
            &[
                "--identity",
                &format!("viewer-{q}"),
                "--duration",
                "8",
                "--video-quality",
                q,
            ],
        );
        (sub, q, size)
    })
    .collect();
    for (sub, quality, (w, h)) in viewers {
        let report = sub.wait();
        let video = report.video_tracks();
        assert_eq!(
            video.len(),
            1,
            "one track: {}\n{}",
            report.pretty(),
            tail_file(log, 20)
        );
        let t = video[0];
        assert!(
            report
                .events
                .iter()
                .any(|e| e["type"] == "video_quality_set" && e["simulcasted"] == true),
            "{quality}: the track is simulcast: {}",
            report.pretty()
        );
        eprintln!("{quality}: {} frames, sizes {:?}", t.frames, t.sizes);
        assert_eq!(
            (t.width, t.height),
            (w, h),
            "{quality} ends on its layer: {:?}\n{}",
            t.sizes,
            tail_file(log, 20)
        );
        assert!(t.frames >= 60, "{quality}: {} frames", t.frames);
    }
}

#[test]
fn auto_layers_give_each_viewer_its_quality() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("sc-auto");
    let pipeline = format!("{LIVE_720P} ! x264enc tune=zerolatency bitrate=2000 key-int-max=60");
    let auth = Auth::Mint {
        room: &room,
        identity: "cam",
    };
    let mut p = spawn_publisher(
        &server,
        auth,
        &pipeline,
        &log,
        &["--simulcast", "auto"],
        &[],
    );
    wait_for_log(
        &log,
        "is live as track",
        Duration::from_secs(15),
        "never went live",
    );
    three_viewers_get_their_layer(&server, &room, &log);
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    // The server lines the layers up by their sender reports. It logs one it cannot use, and
    // one with RTP time 0 comes from a layer whose frames were placed after they arrived
    // (the quarter-size layer's encoder is quicker than the full one's).
    let unusable: Vec<String> = server
        .log()
        .lines()
        .filter(|l| l.contains("received sender report") && l.contains("\"RtpTimestamp\": 0,"))
        .map(|l| l.chars().take(400).collect())
        .collect();
    assert!(
        unusable.is_empty(),
        "{} sender reports with RTP time 0, e.g.\n{}",
        unusable.len(),
        unusable.join("\n")
    );
}

#[test]
fn explicit_vp8_layers_give_each_viewer_its_quality() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, _dir, log) = fresh_room("sc-vp8");
    let branch = |w: u32, h: u32, kbit: u32, name: &str| {
        format!(
            "t. ! queue ! videoscale ! video/x-raw,width={w},height={h} ! vp8enc deadline=1 cpu-used=8 target-bitrate={} keyframe-max-dist=60 name={name}",
            kbit * 1000
        )
    };
    let pipeline = format!(
        "{LIVE_720P} ! tee name=t {} {} {}",
        branch(1280, 720, 1700, "full"),
        branch(640, 360, 500, "half"),
        branch(320, 180, 150, "quarter")
    );
    let auth = Auth::Mint {
        room: &room,
        identity: "cam",
    };
    let mut p = spawn_publisher(
        &server,
        auth,
        &pipeline,
        &log,
        &[
            "--simulcast",
            "full,half,quarter",
            "--track",
            "full=name:Camera",
        ],
        &[],
    );
    wait_for_log(
        &log,
        "is live as track",
        Duration::from_secs(15),
        "never went live",
    );
    three_viewers_get_their_layer(&server, &room, &log);
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

/// Per output element: frames sent so far, and paused.
fn layers(stats: &Path) -> Vec<(String, u64, bool)> {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    let Some(last) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
    else {
        return Vec::new();
    };
    last["tracks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("").to_string(),
                t["frames_sent"].as_u64().unwrap_or(0),
                t["paused"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// CPU time (user + system, in seconds) of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    ticks / hz
}

#[test]
fn layers_nobody_watches_stop_and_come_back_at_once() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, dir, log) = fresh_room("sc-pause");
    let stats = dir.path().join("stats.jsonl");
    let pipeline = format!("{LIVE_720P} ! x264enc tune=zerolatency bitrate=2000 key-int-max=300");
    let auth = Auth::Mint {
        room: &room,
        identity: "cam",
    };
    let mut p = spawn_publisher(
        &server,
        auth,
        &pipeline,
        &log,
        &[
            "--simulcast",
            "auto",
            "--stats-json",
            stats.to_str().unwrap(),
            "--stats-interval",
            "1",
        ],
        &[],
    );
    wait_for_log(
        &log,
        "is live as track",
        Duration::from_secs(15),
        "never went live",
    );
    // Everyone's layers while a HIGH viewer watches.
    let high = Subscriber::spawn(
        &server,
        &room,
        &[
            "--identity",
            "first",
            "--duration",
            "6",
            "--video-quality",
            "high",
        ],
    );
    std::thread::sleep(Duration::from_secs(4));
    let cpu_all = (cpu_seconds(p.pid()), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let cpu_all = (cpu_seconds(p.pid()) - cpu_all.0) / cpu_all.1.elapsed().as_secs_f64();
    drop(high.wait());

    // Only a LOW viewer: the full and half layers stop.
    let mut low = Subscriber::spawn(
        &server,
        &room,
        &[
            "--identity",
            "low",
            "--duration",
            "30",
            "--video-quality",
            "low",
        ],
    );
    // The server first forwards a new viewer the top layer, then what it asked for.
    low.wait_event(Duration::from_secs(15), |e| {
        e["type"] == "video_quality_set"
    })
    .expect("the viewer asked for the low layer");
    let paused = |v: &[(String, u64, bool)], name: &str| v.iter().any(|(n, _, p)| n == name && *p);
    wait_until(Duration::from_secs(15), || {
        let v = layers(&stats);
        (paused(&v, "x264enc0") && paused(&v, "x264enc0-h")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the full and half layers never paused: {:?}\n{}",
            layers(&stats),
            tail_file(&log, 20)
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    let before = layers(&stats);
    let cpu_low = (cpu_seconds(p.pid()), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let cpu_low = (cpu_seconds(p.pid()) - cpu_low.0) / cpu_low.1.elapsed().as_secs_f64();
    let after = layers(&stats);
    eprintln!("frames sent before {before:?} after {after:?}; CPU {:.0} % with every layer, {:.0} % with the low one", cpu_all * 100.0, cpu_low * 100.0);
    for name in ["x264enc0", "x264enc0-h"] {
        let count = |v: &[(String, u64, bool)]| {
            v.iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, f, p)| (*f, *p))
        };
        let (b, a) = (count(&before), count(&after));
        assert!(
            a.is_some_and(|(_, paused)| paused),
            "{name} is paused: {after:?}"
        );
        assert_eq!(
            b.map(|x| x.0),
            a.map(|x| x.0),
            "{name} sends nothing while paused"
        );
    }
    let q = |v: &[(String, u64, bool)]| {
        v.iter()
            .find(|(n, _, _)| n == "x264enc0-q")
            .map(|(_, f, _)| *f)
    };
    assert!(
        q(&after) > q(&before),
        "the low layer goes on: {before:?} {after:?}"
    );
    assert!(
        cpu_low < cpu_all * 0.8,
        "encoding stopped: CPU {:.0} % vs {:.0} %",
        cpu_low * 100.0,
        cpu_all * 100.0
    );

    // A HIGH viewer joins: full size within 1 s of subscribing.
    let report = Subscriber::spawn(
        &server,
        &room,
        &[
            "--identity",
            "second",
            "--duration",
            "6",
            "--video-quality",
            "high",
        ],
    )
    .wait();
    let t = report.video_tracks()[0];
    let full = report
        .events
        .iter()
        .find(|e| e["type"] == "video_size_changed" && e["width"] == 1280)
        .and_then(|e| e["t_wall"].as_f64())
        .or_else(|| {
            (t.sizes.first() == Some(&(1280, 720)))
                .then_some(t.first_frame_t_wall)
                .flatten()
        })
        .unwrap_or_else(|| {
            let text = std::fs::read_to_string(&stats).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(4).collect();
            panic!(
                "full size never decoded: {:?}\n{}\n{tail:?}",
                t.sizes,
                tail_file(&log, 20)
            )
        });
    let subscribed = t.subscribed_t_wall.expect("subscribed");
    eprintln!(
        "full size {:.2} s after subscribing at {subscribed:.3} ({:?})\n{}",
        full - subscribed,
        t.sizes,
        tail_file(&log, 6)
    );
    // Measured 0.98-1.05 s: the layers resume with the server's quality update, which comes
    // as the viewer subscribes; most of the rest is the server waiting for the resumed layer
    // before it moves the viewer up.
    assert!(
        full - subscribed < 1.5,
        "full size {:.2} s after subscribing",
        full - subscribed
    );
    drop(low);
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
}

#[test]
fn layers_that_do_not_make_sense_are_clear_errors() {
    let run = |pipeline: &str, simulcast: &str| {
        let mut cmd = Command::new(publisher_bin());
        cmd.args(["--dev", "--simulcast", simulcast, "--"])
            .args(pipeline.split_whitespace());
        run_with_timeout("publisher", cmd, Duration::from_secs(20))
    };
    // A selector that matches nothing: a usage error at once.
    let out = run(
        "videotestsrc ! x264enc name=a videotestsrc ! x264enc name=b",
        "a,nothing",
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--simulcast nothing: no output of that name"),
        "{}",
        out.stderr
    );
    // One selector: not a group.
    let out = run("videotestsrc ! x264enc name=a", "a");
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}

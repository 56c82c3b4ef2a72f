//! The README's first command, `scripts/demo`, run as a newcomer would (in a short mode): the
//! independent subscriber must decode the video and the audio it promises, and nothing the
//! demo started may outlive it, whether it ends by itself or by Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::*;

/// Pids of live processes whose environment carries `marker` (every process the demo starts
/// inherits it).
fn processes_marked(marker: &str) -> Vec<(u32, String)> {
    processes_with_env(&format!("GSTPUB_DEMO_MARK={marker}"))
}

fn demo_command(marker: &str, seconds: u32, report: &std::path::Path) -> Command {
    // Ctrl-C at a terminal finds SIGINT at its default. A test run started as a background
    // job of a script inherits it ignored, and bash cannot trap a signal that was ignored when
    // it started: the demo would never see the Ctrl-C this test sends.
    let mut cmd = Command::new("env");
    cmd.arg("--default-signal=INT")
        .arg(manifest_dir().join("scripts/demo"));
    cmd.env("GSTPUB_DEMO_MARK", marker)
        .env("DEMO_SECONDS", seconds.to_string())
        .env("DEMO_PUBLISHER", publisher_bin())
        .env("DEMO_REPORT", report)
        // The test run has built everything; cargo must not be re-entered from inside it.
        .env("SETUP_SKIP_BUILD", "1")
        .env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_TOKEN");
    cmd
}

/// Waits up to `timeout` for the marked processes to be gone; returns what is left.
fn leftovers(marker: &str, timeout: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = processes_marked(marker);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_decodes_its_video_and_audio_and_leaves_nothing_behind() {
    let _serial = serial();
    let dir = test_dir("demo");
    let report = dir.path().join("report.json");
    let marker = format!("demo-{}-{}", std::process::id(), room_name("m"));
    let out = run_with_timeout(
        "demo",
        demo_command(&marker, 5, &report),
        Duration::from_secs(120),
    );
    assert!(
        !out.timed_out(),
        "the demo hung: {}",
        tail_str(&out.stderr, 30)
    );
    assert_eq!(
        out.code,
        Some(0),
        "{}\n{}",
        out.stdout,
        tail_str(&out.stderr, 30)
    );
    // What it prints: the table of what the subscriber decoded.
    let table: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("What the subscriber decoded"))
        .collect();
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("Camera") && l.contains("1280x720")),
        "{}",
        out.stdout
    );
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("Tone") && l.contains("audio/opus")),
        "{}",
        out.stdout
    );
    // And what the subscriber really decoded.
    let r: SubscriberReport = serde_json::from_str(
        &std::fs::read_to_string(&report).expect("the demo keeps the report (DEMO_REPORT)"),
    )
    .expect("a subscriber report");
    let video = r.track_named("Camera").expect("a Camera track");
    assert!(video.frames >= 60, "video frames: {}", video.frames);
    assert_eq!((video.width, video.height), (1280, 720));
    let audio = r.track_named("Tone").expect("a Tone track");
    assert!(audio.frames >= 100, "audio frames: {}", audio.frames);
    let left = leftovers(&marker, Duration::from_secs(3));
    assert!(left.is_empty(), "left running after the demo: {left:?}");
}

#[test]
fn ctrl_c_stops_the_demo_and_everything_it_started() {
    let _serial = serial();
    let dir = test_dir("demo-int");
    let report = dir.path().join("report.json");
    let marker = format!("demo-int-{}-{}", std::process::id(), room_name("m"));
    let mut cmd = demo_command(&marker, 30, &report);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut demo = ChildGuard::spawn("demo", cmd);
    let stderr = demo.child_mut().stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait until the publisher runs: server, subscriber and publisher are all up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let publishing = line.starts_with("demo: publishing");
                seen.push(line);
                if publishing {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("demo: publishing")),
        "{}",
        seen.join("\n")
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        processes_marked(&marker).len() >= 3,
        "server, subscriber and publisher run: {:?}",
        processes_marked(&marker)
    );
    demo.signal("INT");
    let status = demo.wait_timeout(Duration::from_secs(10));
    if status.is_none() {
        // Say who held on, and what the demo said after the signal.
        let running = processes_marked(&marker);
        let said: Vec<String> = rx.try_iter().collect();
        panic!(
            "the demo did not stop within 10 s of Ctrl-C; still running: {running:?}; it said:\n{}",
            said.join("\n")
        );
    }
    let left = leftovers(&marker, Duration::from_secs(3));
    assert!(left.is_empty(), "left running after Ctrl-C: {left:?}");
}

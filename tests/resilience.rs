//! Running for days beside flaky sources: `--restart-pipeline` keeps the room connection and
//! the tracks while a camera drops out and comes back.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::*;

/// The RTSP camera of tests/fixtures, serving at `rtsp://127.0.0.1:PORT/cam` once it says so.
fn rtsp_camera(port: u16, log: &Path) -> ChildGuard {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(manifest_dir().join("tests/fixtures/rtsp_camera.py"))
        .arg(port.to_string());
    let camera = ChildGuard::spawn_logged("rtsp camera", cmd, log);
    let serving = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("serving")
            .then_some(())
    });
    assert!(
        serving.is_some(),
        "the RTSP camera did not start (python3-gi and gir1.2-gst-rtsp-server-1.0 come with scripts/setup)\n{}",
        tail_file(log, 20)
    );
    camera
}

#[test]
fn an_rtsp_camera_that_drops_out_comes_back_on_the_same_track() {
    let _s = serial();
    let server = LiveKitServer::start();
    let (room, dir, log) = fresh_room("rtsp");
    let camera_log = dir.path().join("camera.log");
    let port = free_port();
    let mut camera = rtsp_camera(port, &camera_log);
    let mut sub = Subscriber::spawn(&server, &room, &["--duration", "24"]);
    let pipeline = format!(
        "rtspsrc location=rtsp://127.0.0.1:{port}/cam protocols=tcp latency=100 ! rtph264depay ! h264parse name=cam"
    );
    let mut p = spawn_publisher(
        &server,
        Auth::Mint {
            room: &room,
            identity: "camera",
        },
        &pipeline,
        &log,
        &["--restart-pipeline"],
        &[],
    );
    let first = sub
        .wait_event(Duration::from_secs(30), |e| {
            e["type"] == "first_frame" && e["kind"] == "video"
        })
        .unwrap_or_else(|| panic!("no video from the camera\n{}", tail_file(&log, 30)));
    let sid = first["sid"].as_str().expect("a track sid").to_string();
    std::thread::sleep(Duration::from_secs(2));

    // The camera goes away for 4 s, then comes back.
    camera.kill();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        p.is_running(),
        "the publisher must outlive its camera\n{}",
        tail_file(&log, 30)
    );
    let _camera = rtsp_camera(port, &camera_log);
    let back = unix_time();
    wait_for_log(
        &log,
        "is back after the restart",
        Duration::from_secs(20),
        "the output never came back",
    );
    std::thread::sleep(Duration::from_secs(5));
    let stopped = unix_time();
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    let report = sub.wait();

    // Until we stop it, the track stays published.
    let unpublished = report.events.iter().any(|e| {
        e["type"] == "track_unpublished"
            && e["sid"] == sid.as_str()
            && e["t_wall"].as_f64().is_some_and(|t| t < stopped)
    });
    assert!(
        !unpublished,
        "the track was never unpublished: {}",
        report.pretty()
    );
    let video = report.video_tracks();
    assert_eq!(video.len(), 1, "one track throughout: {}", report.pretty());
    let t = video[0];
    assert_eq!(t.sid, sid);
    let start = report.start_t_wall.expect("the subscriber's start");
    let last = start + t.last_frame_seconds.expect("frames were decoded");
    assert!(
        last > back + 3.0,
        "frames decoded on the same track after the camera came back (last frame {:.1} s after it)",
        last - back
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(log_text.contains("restarting the pipeline"), "{log_text}");
}

fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

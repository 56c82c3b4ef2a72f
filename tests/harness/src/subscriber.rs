//! The independent subscriber: LiveKit's Python SDK (libwebrtc) decoding what was published,
//! and its typed report.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::lab::{self, Netns};
use crate::process::*;
use crate::server::*;
// ------------------------------------------------------------------------------------------
// subscriber

/// The Python subscriber (tests/subscriber/subscriber.py) running against a server.
///
/// Always started with `--print-events`, so [`wait_event`](Self::wait_event) can block until
/// something happens (e.g. `"connected"`, `"first_frame"`, `"track_unpublished"`).
pub struct Subscriber {
    guard: ChildGuard,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<()>>,
    stderr_text: Arc<Mutex<String>>,
    events: Receiver<Value>,
    seen: Vec<Value>,
    timeout: Duration,
    _dir: Option<tempfile::TempDir>,
}

impl Subscriber {
    /// Start `subscriber.py --url .. --api-key .. --api-secret .. --room ROOM --print-events ARGS`
    /// where the server runs: on the host, or for a server in a lab, in the lab's server
    /// namespace (the viewer reaches the server over that namespace's own interfaces,
    /// unimpaired by the lab's knobs). `args` are passed through, e.g.
    /// `&["--duration", "6", "--wait-tracks", "2"]`.
    pub fn spawn(server: &LiveKitServer, room: &str, args: &[&str]) -> Subscriber {
        Self::spawn_at(
            server.netns(),
            &server.url(),
            server.api_key(),
            server.api_secret(),
            room,
            args,
        )
    }

    /// On the host with explicit url/key/secret (e.g. a wrong secret).
    pub fn spawn_with(
        url: &str,
        api_key: &str,
        api_secret: &str,
        room: &str,
        args: &[&str],
    ) -> Subscriber {
        Self::spawn_at(None, url, api_key, api_secret, room, args)
    }

    /// In network namespace `netns` (None: the host), e.g. `Some(&lab.publisher_netns())` for
    /// a viewer behind the lab's impaired link, with explicit url/key/secret.
    pub fn spawn_at(
        netns: Option<&Netns>,
        url: &str,
        api_key: &str,
        api_secret: &str,
        room: &str,
        args: &[&str],
    ) -> Subscriber {
        let py = subscriber_python();
        let dir = test_dir("sub");
        let log_path = dir.path().join("subscriber.log");
        let mut cmd = lab::command_at(netns, py);
        cmd.arg("-u")
            .arg(subscriber_script())
            .args([
                "--url",
                url,
                "--api-key",
                api_key,
                "--api-secret",
                api_secret,
                "--room",
                room,
            ])
            .arg("--print-events")
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn("subscriber", cmd);
        let stdout = read_all_in_thread(guard.child.stdout.take().unwrap());
        let err = guard.child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let st2 = stderr_text.clone();
        let mut logf = File::create(&log_path).ok();
        let stderr = thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = logf.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Some(json) = line.strip_prefix("EVENT ") {
                    if let Ok(v) = serde_json::from_str::<Value>(json) {
                        let _ = tx.send(v);
                    }
                }
                let mut s = st2.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        // default wait timeout: --duration (default 10) + --connect-timeout (default 10) + slack
        let num = |flag: &str, default: f64| -> f64 {
            args.iter()
                .position(|a| *a == flag)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let timeout = Duration::from_secs_f64(
            num("--duration", 10.0) + num("--connect-timeout", 10.0) + 30.0,
        );
        Subscriber {
            guard,
            stdout: Some(stdout),
            stderr: Some(stderr),
            stderr_text,
            events: rx,
            seen: Vec::new(),
            timeout,
            _dir: Some(dir),
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Ask it to end now (SIGTERM): it prints its report and exits 0.
    pub fn finish(&mut self) {
        self.guard.signal("TERM");
    }

    /// Block until an event matching `pred` arrives (or was already seen); None on timeout or
    /// when the subscriber ended first.
    pub fn wait_event(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .events
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Some(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Block until an event of type `ty` arrives.
    pub fn wait_event_type(&mut self, ty: &str, timeout: Duration) -> Option<Value> {
        self.wait_event(timeout, |v| v["type"] == ty)
    }

    /// The subscriber's stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr_text.lock().unwrap().clone()
    }

    /// Wait for it to end by itself (timeout: duration + connect timeout + 30 s) and parse its
    /// report. Panics if it hangs or prints no JSON.
    pub fn wait(self) -> SubscriberReport {
        let t = self.timeout;
        self.wait_timeout(t)
    }

    pub fn wait_timeout(self, timeout: Duration) -> SubscriberReport {
        match self.wait_result(timeout) {
            Ok(r) => r,
            Err(msg) => panic!("{msg}"),
        }
    }

    /// Like [`wait_timeout`](Self::wait_timeout), but a subscriber that hung (killed after
    /// `timeout`), crashed, or printed no JSON report is an `Err` with a diagnosis instead of
    /// a panic.
    pub fn wait_result(mut self, timeout: Duration) -> Result<SubscriberReport, String> {
        let status = self.guard.wait_timeout(timeout);
        if status.is_none() {
            self.guard.kill();
        }
        let stdout = self.stdout.take().unwrap().join().unwrap_or_default();
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
        let stderr = self.stderr();
        let Some(status) = status else {
            return Err(format!(
                "subscriber did not exit within {timeout:?} (killed); stderr:\n{}",
                tail_str(&stderr, 40)
            ));
        };
        let Some(line) = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
        else {
            return Err(format!(
                "subscriber ended ({status}) without a report{}\nstdout: {stdout:?}\nstderr:\n{}",
                diagnose_crash(&stderr),
                tail_str(&stderr, 40)
            ));
        };
        let raw: Value = serde_json::from_str(line)
            .map_err(|e| format!("subscriber JSON does not parse ({e}): {line}"))?;
        let mut report: SubscriberReport = serde_json::from_value(raw.clone())
            .map_err(|e| format!("subscriber JSON has an unexpected shape ({e}): {line}"))?;
        report.exit_code = status.code();
        report.raw = raw;
        report.stderr = stderr;
        Ok(report)
    }
}

/// Name the cause when the subscriber died without a report (the SDK's native code aborts
/// the whole process when it panics).
fn diagnose_crash(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let Some(i) = lines.iter().position(|l| l.contains("panicked at")) else {
        return String::new();
    };
    let what = format!(
        "{} {}",
        lines[i].trim(),
        lines.get(i + 1).map(|l| l.trim()).unwrap_or("")
    );
    let hint = if what.contains("video_frame.rs") {
        " — the SDK could not map a decoded video frame's buffer type (it handles 8-bit \
         I420/I420A/I422/I444, I010 and NV12): the publisher sent video a libwebrtc receiver \
         decodes into another format, e.g. high-bit-depth 4:2:2/4:4:4 VP9/AV1"
    } else {
        ""
    };
    let seen: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EVENT "))
        .collect();
    format!(
        ": the LiveKit SDK's native code crashed: {what}{hint}\nlast events: {}",
        seen[seen.len().saturating_sub(5)..].join("\n  ")
    )
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.guard.kill();
        if thread::panicking() {
            eprintln!(
                "--- subscriber stderr tail:\n{}\n---",
                tail_str(&self.stderr(), 30)
            );
        }
        if keep_logs() {
            if let Some(d) = self._dir.take() {
                eprintln!(
                    "harness: kept subscriber log {}",
                    d.keep().join("subscriber.log").display()
                );
            }
        }
    }
}

/// What the subscriber saw (see tests/subscriber/subscriber.py for the fields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubscriberReport {
    pub connected: bool,
    pub room: String,
    pub room_sid: String,
    pub identity: String,
    pub error: Option<String>,
    /// Seconds since the subscriber's start when the room connection was established.
    pub connect_seconds: Option<f64>,
    pub connect_t_wall: Option<f64>,
    /// Unix time of the subscriber's start (its time zero).
    pub start_t_wall: Option<f64>,
    pub end_seconds: Option<f64>,
    /// "duration", "frames", "signal", "disconnected", "connect_failed", "hard_timeout".
    pub end_reason: String,
    pub hard_timeout: bool,
    pub tracks: Vec<TrackReport>,
    pub events: Vec<Value>,
    /// Filled in by the harness.
    #[serde(skip)]
    pub exit_code: Option<i32>,
    #[serde(skip)]
    pub raw: Value,
    #[serde(skip)]
    pub stderr: String,
}

impl SubscriberReport {
    pub fn video_tracks(&self) -> Vec<&TrackReport> {
        self.tracks.iter().filter(|t| t.kind == "video").collect()
    }
    pub fn audio_tracks(&self) -> Vec<&TrackReport> {
        self.tracks.iter().filter(|t| t.kind == "audio").collect()
    }
    pub fn track_named(&self, name: &str) -> Option<&TrackReport> {
        self.tracks.iter().find(|t| t.name == name)
    }
    /// Events of one type, in order.
    pub fn events_of(&self, ty: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["type"] == ty).collect()
    }
    /// First event of type `ty` for participant `identity` (any participant if None).
    pub fn first_event(&self, ty: &str, identity: Option<&str>) -> Option<&Value> {
        self.events
            .iter()
            .find(|e| e["type"] == ty && identity.is_none_or(|id| e["identity"] == id))
    }
    /// The whole report as pretty JSON, for assertion messages.
    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&self.raw).unwrap_or_default()
    }
}

/// One track as seen by the subscriber; stats are kept per track sid, also after unpublish.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TrackReport {
    pub sid: String,
    /// Publisher's identity.
    pub participant: String,
    /// "video" | "audio"
    pub kind: String,
    /// e.g. "video/H264", "audio/opus"
    pub mime: String,
    pub name: String,
    /// "camera", "microphone", "screenshare", "screenshare_audio", "unknown"
    pub source: String,
    pub simulcasted: bool,
    /// The publication's audio features as the server announces them: "no_dtx", "stereo".
    pub audio_features: Vec<String>,
    /// Still published / subscribed when the subscriber ended.
    pub published: bool,
    pub subscribed: bool,
    pub subscriptions: u32,
    pub published_seconds: Option<f64>,
    pub unpublished_seconds: Option<f64>,
    pub subscribed_seconds: Option<f64>,
    pub subscribed_t_wall: Option<f64>,
    pub unsubscribed_seconds: Option<f64>,
    /// Decoded frames: video frames, or 10 ms audio frames.
    pub frames: u64,
    pub first_frame_seconds: Option<f64>,
    pub first_frame_t_wall: Option<f64>,
    pub last_frame_seconds: Option<f64>,
    /// Longest time between two decoded frames.
    pub max_gap_seconds: f64,
    /// Frames decoded after the track was unsubscribed (libwebrtc's synthetic end frames).
    pub late_frames: u64,
    /// livekit-server's blank flush frames (VP8 8x8 / H264 2x2) sent when it closes or mutes
    /// the downtrack; not counted in `frames`/`sizes`.
    pub blank_frames: u64,
    // video
    pub width: u32,
    pub height: u32,
    /// Distinct decoded sizes, in order of appearance.
    pub sizes: Vec<(u32, u32)>,
    pub buffer_types: Vec<String>,
    /// (frames - 1) / (last - first frame time).
    pub fps: f64,
    pub first_timestamp_us: Option<i64>,
    pub last_timestamp_us: Option<i64>,
    /// Mean of sampled Y values (0..255); None when never sampled.
    pub luma_mean: Option<f64>,
    // audio
    pub audio_frames: u64,
    pub audio_samples: u64,
    pub audio_seconds: f64,
    pub sample_rate: u32,
    pub channels: u32,
    /// RMS / peak of all decoded samples, full scale 1.0.
    pub rms: f64,
    pub peak: f64,
    pub silent_frames: u64,
}

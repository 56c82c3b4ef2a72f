//! The browser subscriber: Debian's headless Chromium joining the room with LiveKit's own
//! `livekit-client` (tests/browser/subscriber.js, see tests/browser/README.md), and its typed
//! report. What a real browser decodes, freezes on and conceals is the truth of these tests.
//!
//! Prerequisites (`scripts/setup` runs `scripts/setup-browser`): `/usr/bin/chromium` (or env
//! `CHROMIUM`), `node` on PATH (or env `BROWSER_NODE`) and `tests/browser/node_modules`.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::process::*;
use crate::server::LiveKitServer;

/// `tests/browser/subscriber.js`.
pub fn browser_script() -> PathBuf {
    manifest_dir().join("tests/browser/subscriber.js")
}

/// `$BROWSER_NODE` or `node`; panics when the browser subscriber's parts are missing.
fn browser_node() -> PathBuf {
    let node = std::env::var_os("BROWSER_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "node".into());
    let modules = manifest_dir().join("tests/browser/node_modules");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    let node_ok = Command::new(&node)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    for (ok, what) in [
        (node_ok, format!("node ({})", node.display())),
        (modules.is_dir(), modules.display().to_string()),
        (chromium.is_file(), chromium.display().to_string()),
    ] {
        assert!(ok, "{what} not found — run scripts/setup first");
    }
    node
}

/// `tests/browser/subscriber.js` running against a server on the host; killed on drop (SIGTERM
/// first, so it closes Chromium). Its log (stderr, with `--print-events`) is printed and kept
/// when the test fails, also after [`wait`](Self::wait): the report holds it then.
pub struct BrowserSubscriber {
    guard: ChildGuard,
    report_path: PathBuf,
    timeout: Duration,
    logs: Option<BrowserLogs>,
}

/// The runner's temp dir (stdout = report, stderr = log): removed when dropped, unless the
/// test is failing (then the log's tail is printed) or `KEEP_TEST_LOGS=1`.
#[derive(Debug)]
pub struct BrowserLogs {
    dir: Option<tempfile::TempDir>,
    log_path: PathBuf,
}

impl BrowserLogs {
    pub fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }
    /// The log so far.
    pub fn text(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for BrowserLogs {
    fn drop(&mut self) {
        let failed = thread::panicking();
        if failed {
            eprintln!(
                "--- browser subscriber log tail ({}):\n{}\n---",
                self.log_path.display(),
                tail_str(&self.text(), 30)
            );
        }
        if failed || keep_logs() {
            if let Some(d) = self.dir.take() {
                eprintln!(
                    "harness: kept browser subscriber dir {}",
                    d.keep().display()
                );
            }
        }
    }
}

impl BrowserSubscriber {
    /// `node subscriber.js --url .. --api-key .. --room ROOM --print-events ARGS`, the API secret
    /// in env `LIVEKIT_API_SECRET` (out of argv); `args` are passed through, e.g.
    /// `&["--duration", "7"]`. Only for loopback servers (the runner refuses other URLs).
    pub fn spawn(server: &LiveKitServer, room: &str, args: &[&str]) -> BrowserSubscriber {
        assert!(
            server.netns().is_none(),
            "the browser subscriber runs on the host, against a loopback server"
        );
        let node = browser_node();
        let dir = test_dir("browser");
        let report_path = dir.path().join("report.json");
        let log_path = dir.path().join("browser.log");
        let mut cmd = Command::new(node);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LIVEKIT_") {
                cmd.env_remove(&k);
            }
        }
        let url = server.url();
        cmd.arg(browser_script())
            .args(["--url", &url, "--api-key", server.api_key(), "--room", room])
            .arg("--print-events")
            .args(args)
            .env("LIVEKIT_API_SECRET", server.api_secret())
            .stdout(File::create(&report_path).expect("create report file"))
            .stderr(File::create(&log_path).expect("create log file"));
        let guard = ChildGuard::spawn("browser-subscriber", cmd);
        // the runner's own hard timeout is duration + connect timeout + 30 s; then some slack
        let secs = |flag: &str, default: f64| {
            let given = args.windows(2).find(|w| w[0] == flag);
            given
                .and_then(|w| w[1].parse::<f64>().ok())
                .unwrap_or(default)
        };
        let runner_s = secs("--duration", 10.0) + secs("--connect-timeout", 10.0) + 30.0;
        let timeout = Duration::from_secs_f64(runner_s + 10.0);
        BrowserSubscriber {
            guard,
            report_path,
            timeout,
            logs: Some(BrowserLogs {
                dir: Some(dir),
                log_path,
            }),
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Ask it to end now (SIGTERM): it prints its report and exits 0.
    pub fn finish(&mut self) {
        self.guard.signal("TERM");
    }

    /// Its log (stderr, `EVENT {json}` lines included) so far.
    pub fn log(&self) -> String {
        self.logs
            .as_ref()
            .map(BrowserLogs::text)
            .unwrap_or_default()
    }

    /// Wait for it to end by itself and parse its report; panics if it hangs, prints no JSON
    /// or exits with another code than 0 (2: could not connect, 3: hard timeout, 5: could not
    /// start Chromium).
    pub fn wait(self) -> BrowserReport {
        let t = self.timeout;
        match self.wait_result(t) {
            Ok(r) if r.exit_code == Some(0) => r,
            Ok(r) => panic!(
                "browser subscriber exited {:?}: {}\n{}\nlog:\n{}",
                r.exit_code,
                r.error.as_deref().unwrap_or(""),
                r.pretty(),
                tail_str(&r.log, 40)
            ),
            Err(msg) => panic!("{msg}"),
        }
    }

    /// The report whatever the exit code; `Err` with the log's tail when it hung (killed after
    /// `timeout`) or printed no JSON.
    pub fn wait_result(mut self, timeout: Duration) -> Result<BrowserReport, String> {
        let status = self.guard.wait_timeout(timeout);
        if status.is_none() {
            self.guard.kill();
        }
        let stdout = fs::read_to_string(&self.report_path).unwrap_or_default();
        let log = self.log();
        let Some(status) = status else {
            return Err(format!(
                "browser subscriber did not exit within {timeout:?} (killed); log:\n{}",
                tail_str(&log, 40)
            ));
        };
        let Some(line) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
            return Err(format!(
                "browser subscriber ended ({status}) without a report\nstdout: {stdout:?}\nlog:\n{}",
                tail_str(&log, 40)
            ));
        };
        let parsed = serde_json::from_str::<Value>(line).and_then(|raw| {
            let report = BrowserReport::deserialize(&raw)?;
            Ok(BrowserReport { raw, ..report })
        });
        let mut report = parsed.map_err(|e| format!("browser report: {e}: {line}"))?;
        report.exit_code = status.code();
        report.log = log;
        report.logs = self.logs.take().map(Arc::new);
        Ok(report)
    }
}

impl Drop for BrowserSubscriber {
    fn drop(&mut self) {
        // SIGTERM: the runner closes Chromium (its whole process group) before it exits
        // (then `logs` is dropped: kept when the test is failing)
        self.guard.terminate(Duration::from_secs(8));
    }
}

/// What the browser saw (see tests/browser/README.md for every field).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BrowserReport {
    pub connected: bool,
    pub error: Option<String>,
    pub room: String,
    pub identity: String,
    /// Seconds since the runner's start when the room connection was established.
    pub connect_seconds: Option<f64>,
    pub connect_t_wall: Option<f64>,
    /// Unix time of the runner's start (its time zero).
    pub start_t_wall: Option<f64>,
    pub end_seconds: Option<f64>,
    /// "duration", "frames", "signal", "disconnected", "connect_failed", "hard_timeout", ...
    pub end_reason: String,
    pub hard_timeout: bool,
    pub tracks: Vec<BrowserTrack>,
    pub events: Vec<Value>,
    /// Chromium and livekit-client versions, receive codecs, ICE pairs.
    pub browser: Value,
    /// Filled in by the harness.
    #[serde(skip)]
    pub exit_code: Option<i32>,
    #[serde(skip)]
    pub raw: Value,
    #[serde(skip)]
    pub log: String,
    /// The runner's dir, kept on disk if the test fails while the report is alive.
    #[serde(skip)]
    pub logs: Option<Arc<BrowserLogs>>,
}

impl BrowserReport {
    pub fn video_tracks(&self) -> Vec<&BrowserTrack> {
        self.tracks.iter().filter(|t| t.kind == "video").collect()
    }
    pub fn audio_tracks(&self) -> Vec<&BrowserTrack> {
        self.tracks.iter().filter(|t| t.kind == "audio").collect()
    }
    /// The only track of `kind`; panics with the report when there is not exactly one.
    pub fn only(&self, kind: &str) -> &BrowserTrack {
        let t: Vec<_> = self.tracks.iter().filter(|t| t.kind == kind).collect();
        assert_eq!(t.len(), 1, "{kind} tracks\n{}", self.pretty());
        t[0]
    }
    /// Chromium's version string, e.g. "Chrome/156.0.8078.108".
    pub fn chromium(&self) -> &str {
        self.browser["version"].as_str().unwrap_or("")
    }
    /// The whole report as pretty JSON, without the ICE details, for assertion messages.
    pub fn pretty(&self) -> String {
        let mut v = self.raw.clone();
        if let Some(b) = v.get_mut("browser").and_then(Value::as_object_mut) {
            b.remove("ice");
            b.remove("loopback_guard");
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// One track as the browser saw it: livekit-client's view plus `RTCRtpReceiver.getStats()`.
/// Stats Chromium did not give are None.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BrowserTrack {
    pub sid: String,
    pub participant: String,
    /// "video" | "audio"
    pub kind: String,
    /// From the publication, e.g. "video/H264".
    pub mime: String,
    /// From the receiver's codec stats (what was negotiated), e.g. "video/H264".
    pub codec: Option<String>,
    /// e.g. "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".
    pub codec_fmtp: Option<String>,
    pub name: String,
    pub source: String,
    pub subscribed: bool,
    pub subscriptions: u32,
    pub subscribed_seconds: Option<f64>,
    pub subscribed_t_wall: Option<f64>,
    /// Video: framesDecoded; audio: 10 ms units decoded from packets (not concealment).
    pub frames: u64,
    pub first_frame_seconds: Option<f64>,
    pub first_frame_t_wall: Option<f64>,
    pub last_frame_seconds: Option<f64>,
    /// Longest time without progress after the first frame (resolution: the stats interval).
    pub max_frame_gap_s: f64,
    /// Time since the last progress when the report was made (a stall still open).
    pub since_last_frame_s: Option<f64>,
    #[serde(rename = "packetsReceived")]
    pub packets_received: Option<u64>,
    #[serde(rename = "packetsLost")]
    pub packets_lost: Option<i64>,
    #[serde(rename = "nackCount")]
    pub nack_count: Option<u64>,
    // video
    pub width: u32,
    pub height: u32,
    /// Distinct decoded sizes (livekit-server's blank 8x8/2x2 frames kept out).
    pub sizes: Vec<(u32, u32)>,
    pub fps: f64,
    #[serde(rename = "framesDecoded")]
    pub frames_decoded: Option<u64>,
    #[serde(rename = "framesDropped")]
    pub frames_dropped: Option<u64>,
    #[serde(rename = "keyFramesDecoded")]
    pub key_frames_decoded: Option<u64>,
    #[serde(rename = "freezeCount")]
    pub freeze_count: Option<u64>,
    #[serde(rename = "totalFreezesDuration")]
    pub total_freezes_duration: Option<f64>,
    #[serde(rename = "pliCount")]
    pub pli_count: Option<u64>,
    /// Frames the `<video>` element presented (requestVideoFrameCallback) and their size.
    pub rendered_frames: u64,
    pub rendered_width: Option<u32>,
    pub rendered_height: Option<u32>,
    pub max_render_gap_s: f64,
    // audio
    pub audio_seconds: f64,
    pub sample_rate: u32,
    pub channels: u32,
    pub rms: f64,
    #[serde(rename = "totalSamplesReceived")]
    pub total_samples_received: Option<u64>,
    #[serde(rename = "concealedSamples")]
    pub concealed_samples: Option<u64>,
    #[serde(rename = "silentConcealedSamples")]
    pub silent_concealed_samples: Option<u64>,
    #[serde(rename = "concealmentEvents")]
    pub concealment_events: Option<u64>,
    /// concealedSamples / totalSamplesReceived.
    pub concealed_ratio: Option<f64>,
    pub jitter_buffer_ms: Option<f64>,
}

impl BrowserTrack {
    /// Seconds from subscribing to the first decoded frame (or audio decoded from packets).
    pub fn first_frame_delay(&self) -> Option<f64> {
        Some(self.first_frame_seconds? - self.subscribed_seconds?)
    }

    /// One line for logs and tables: codec, frames, size, first-frame delay, freezes or
    /// concealment.
    pub fn summary(&self) -> String {
        let delay = self
            .first_frame_delay()
            .map_or("-".into(), |d| format!("{d:.2} s"));
        let codec = self.codec.as_deref().unwrap_or(&self.mime);
        if self.kind == "video" {
            format!(
                "{codec} {} frames {}x{} ({:.1} fps, {} rendered), first frame {delay} after \
                 subscribing, freezes {} ({:.2} s), max gap {:.2} s, fmtp {}",
                self.frames,
                self.width,
                self.height,
                self.fps,
                self.rendered_frames,
                self.freeze_count.unwrap_or(0),
                self.total_freezes_duration.unwrap_or(0.0),
                self.max_frame_gap_s,
                self.codec_fmtp.as_deref().unwrap_or("-")
            )
        } else {
            format!(
                "{codec} {:.2} s decoded of {} samples, first audio {delay} after subscribing, \
                 concealed {} ({:.4}), max gap {:.2} s",
                self.audio_seconds,
                self.total_samples_received.unwrap_or(0),
                self.concealed_samples.unwrap_or(0),
                self.concealed_ratio.unwrap_or(0.0),
                self.max_frame_gap_s
            )
        }
    }
}

//! Live statistics: what each track is sending, what the server reports back, and how long a
//! frame takes from the appsink to the socket.
//!
//! [`Stats`] is fed by the run loop (frames sent, str0m's per-mid egress reports) and turned
//! into a [`Report`] every interval: a JSON line for `--stats-json` and a compact status line
//! for a terminal. It observes; it decides nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::media::{Codec, MediaKind, Output, OutputId};
use crate::rtc::Egress;

#[derive(Debug, Default)]
struct TrackStats {
    name: String,
    kind: Option<MediaKind>,
    codec: Option<Codec>,
    sid: String,
    frames: u64,
    keyframes: u64,
    payload_bytes: u64,
    /// Values at the start of the current interval.
    interval_frames: u64,
    interval_bytes: u64,
    /// Egress counters of the current publication plus those of earlier ones (a reconnect
    /// starts str0m's counters from zero).
    egress: Egress,
    egress_base: Egress,
    /// Congestion control's target for its encoder (bit/s).
    target_bps: Option<u64>,
    /// It cannot adapt and sends more than the link holds.
    cannot_adapt: bool,
    /// The simulcast layer it feeds, and whether that layer is paused.
    layer: Option<&'static str>,
    paused: bool,
    /// Its encoder cannot make keyframes on request; how many requests went unserved.
    no_keyframes_on_request: bool,
    unserved_keyframe_requests: u64,
    /// Frames sent again, from its latest keyframe on, for its first viewer.
    kept_frames_sent: u64,
    /// Keyframes that went to the socket at once rather than through the pacer.
    keyframes_burst: u64,
}

/// Aggregates figures between two reports.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    last_report: Instant,
    tracks: BTreeMap<OutputId, TrackStats>,
    /// Appsink → socket latencies of the current interval, in microseconds.
    latencies: Vec<u32>,
    /// Appsink → written into the publisher connection, in microseconds.
    written: Vec<u32>,
    /// The path media takes on each peer connection ("udp", "tcp", "relay").
    paths: BTreeMap<&'static str, String>,
    /// The publisher connection's bandwidth estimate (bit/s).
    estimate: Option<u64>,
    /// Each output's bitrate over the last complete interval (bit/s).
    last_rates: BTreeMap<OutputId, u64>,
}

/// Percentiles of one interval's latencies.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50_us: u32,
    pub p99_us: u32,
    pub max_us: u32,
    pub samples: usize,
}

impl Stats {
    pub fn new(now: Instant) -> Stats {
        Stats {
            started: now,
            last_report: now,
            tracks: BTreeMap::new(),
            latencies: Vec::new(),
            written: Vec::new(),
            paths: BTreeMap::new(),
            estimate: None,
            last_rates: BTreeMap::new(),
        }
    }

    /// An output became known.
    pub fn output(&mut self, output: &Output) {
        let t = self.tracks.entry(output.id).or_default();
        t.name = output.element.clone();
        t.kind = Some(output.kind());
        t.codec = Some(output.codec);
        t.no_keyframes_on_request =
            output.kind() == MediaKind::Video && !output.format.keyframes_on_request;
    }

    /// A keyframe was asked of `output`'s encoder; false when it has none that can make one
    /// (the request is counted as unserved).
    pub fn keyframe_requested(&mut self, output: OutputId) -> bool {
        let t = self.tracks.entry(output).or_default();
        if t.no_keyframes_on_request {
            t.unserved_keyframe_requests += 1;
        }
        !t.no_keyframes_on_request
    }

    /// The frames kept for `output`'s first viewer were sent, `frames` of them (their bytes
    /// count in `frame_sent` too).
    pub fn kept_sent(&mut self, output: OutputId, frames: usize) {
        self.tracks.entry(output).or_default().kept_frames_sent += frames as u64;
    }

    /// The output is published as track `sid` (a fresh publication after a reconnect).
    pub fn published(&mut self, output: OutputId, sid: &str) {
        let t = self.tracks.entry(output).or_default();
        t.sid = sid.to_string();
        // str0m's counters restart with a new peer connection: fold the old ones in.
        t.egress_base = add(&t.egress_base, &t.egress);
        t.egress = Egress::default();
    }

    /// A frame was written into the publisher connection, `written` after the pipeline
    /// handed it over.
    /// `burst`: it went to the socket at once, not through the pacer.
    pub fn frame_sent(
        &mut self,
        output: OutputId,
        bytes: usize,
        keyframe: bool,
        written: Duration,
        burst: bool,
    ) {
        let t = self.tracks.entry(output).or_default();
        t.frames += 1;
        t.payload_bytes += bytes as u64;
        if keyframe && t.kind == Some(MediaKind::Video) {
            t.keyframes += 1;
            if burst {
                t.keyframes_burst += 1;
            }
        }
        push_us(&mut self.written, written);
    }

    /// A frame's last packet went to the socket, `latency` after the pipeline handed it over.
    pub fn frame_out(&mut self, latency: Duration) {
        push_us(&mut self.latencies, latency);
    }

    /// str0m's cumulative egress counters for the mid that carries `output`.
    pub fn egress(&mut self, output: OutputId, egress: Egress) {
        self.tracks.entry(output).or_default().egress = egress;
    }

    /// After a pipeline restart, `output` carries on the track of `old`.
    pub fn resumed(&mut self, old: OutputId, output: OutputId) {
        if let Some(t) = self.tracks.remove(&old) {
            self.tracks.insert(output, t);
        }
        if let Some(r) = self.last_rates.remove(&old) {
            self.last_rates.insert(output, r);
        }
    }

    /// The publisher connection's bandwidth estimate.
    pub fn estimate(&mut self, bps: u64) {
        self.estimate = Some(bps);
    }

    /// The target congestion control gave `output`'s encoder.
    pub fn target(&mut self, output: OutputId, bps: u64) {
        self.tracks.entry(output).or_default().target_bps = Some(bps);
    }

    /// `output` feeds simulcast layer `rid`.
    pub fn layer(&mut self, output: OutputId, rid: &'static str) {
        self.tracks.entry(output).or_default().layer = Some(rid);
    }

    /// `output`'s simulcast layer was paused or resumed.
    pub fn layer_active(&mut self, output: OutputId, active: bool) {
        self.tracks.entry(output).or_default().paused = !active;
    }

    /// `output` cannot adapt and sends more than the link holds.
    pub fn cannot_adapt(&mut self, output: OutputId) {
        self.tracks.entry(output).or_default().cannot_adapt = true;
    }

    /// What each output sent over the last complete interval (bit/s).
    pub fn recent_rates(&self) -> Vec<(OutputId, u64)> {
        self.last_rates.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Media on `connection` ("publisher", "subscriber") now takes `path`.
    pub fn path(&mut self, connection: &'static str, path: String) {
        self.paths.insert(connection, path);
    }

    /// When the next report is due.
    pub fn next_report(&self, interval: Duration) -> Instant {
        self.last_report + interval
    }

    pub fn due(&self, now: Instant, interval: Duration) -> bool {
        now.duration_since(self.last_report) >= interval
    }

    /// Close the interval and report it.
    pub fn report(&mut self, now: Instant) -> Report {
        let secs = now.duration_since(self.last_report).as_secs_f64().max(1e-3);
        self.last_report = now;
        let latency = percentiles(&mut self.latencies);
        self.latencies.clear();
        let written = percentiles(&mut self.written);
        self.written.clear();
        let last_rates = &mut self.last_rates;
        let tracks = self
            .tracks
            .iter_mut()
            .map(|(id, t)| {
                let frames = t.frames - t.interval_frames;
                let bytes = t.payload_bytes - t.interval_bytes;
                t.interval_frames = t.frames;
                t.interval_bytes = t.payload_bytes;
                let total = add(&t.egress_base, &t.egress);
                let bitrate_bps = (bytes as f64 * 8.0 / secs).round() as u64;
                last_rates.insert(*id, bitrate_bps);
                TrackReport {
                    output: *id,
                    name: t.name.clone(),
                    kind: t.kind,
                    codec: t.codec,
                    sid: t.sid.clone(),
                    bitrate_bps,
                    target_bps: t.target_bps,
                    cannot_adapt: t.cannot_adapt,
                    layer: t.layer,
                    paused: t.paused,
                    unserved_keyframe_requests: t.unserved_keyframe_requests,
                    kept_frames_sent: t.kept_frames_sent,
                    keyframes_burst: t.keyframes_burst,
                    fps: frames as f64 / secs,
                    frames_sent: t.frames,
                    keyframes_sent: t.keyframes,
                    bytes_sent: total.bytes,
                    packets_sent: total.packets,
                    plis: total.plis,
                    firs: total.firs,
                    nacks: total.nacks,
                    rtt_ms: t.egress.rtt.map(|r| r.as_secs_f64() * 1000.0),
                    loss: t.egress.loss,
                }
            })
            .collect();
        Report {
            elapsed: now.duration_since(self.started),
            interval: secs,
            tracks,
            latency,
            written,
            dropped_frames: 0,
            paths: self.paths.clone(),
            estimate_bps: self.estimate,
        }
    }
}

/// One latency sample of an interval, in µs (at most a million an interval).
fn push_us(samples: &mut Vec<u32>, d: Duration) {
    if samples.len() < 1_000_000 {
        samples.push(d.as_micros().min(u32::MAX as u128) as u32);
    }
}

fn add(a: &Egress, b: &Egress) -> Egress {
    Egress {
        bytes: a.bytes + b.bytes,
        packets: a.packets + b.packets,
        firs: a.firs + b.firs,
        plis: a.plis + b.plis,
        nacks: a.nacks + b.nacks,
        rtt: b.rtt.or(a.rtt),
        loss: b.loss.or(a.loss),
    }
}

fn percentiles(samples: &mut [u32]) -> Latency {
    if samples.is_empty() {
        return Latency::default();
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Latency {
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: samples[samples.len() - 1],
        samples: samples.len(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackReport {
    pub output: OutputId,
    pub name: String,
    pub kind: Option<MediaKind>,
    pub codec: Option<Codec>,
    pub sid: String,
    /// Encoded payload bitrate over the interval (what the encoder produced and we sent).
    pub bitrate_bps: u64,
    /// Congestion control's target for the output: its share of the estimate. (An encoder
    /// that sends more than it is told is set lower, so that what it sends meets this.)
    pub target_bps: Option<u64>,
    /// The output cannot adapt and sends more than the link holds.
    pub cannot_adapt: bool,
    /// The simulcast layer (rid) this output feeds, and whether it is paused.
    pub layer: Option<&'static str>,
    pub paused: bool,
    /// Keyframe requests its encoder could not serve (it has none: a file, a camera's own
    /// stream); viewers waited for the stream's next keyframe instead.
    pub unserved_keyframe_requests: u64,
    /// Frames kept from its latest keyframe on and sent again when its first viewer asked
    /// for a keyframe (a stream that cannot make one; the first viewer starts on them).
    pub kept_frames_sent: u64,
    /// Keyframes that went to the socket at once, not through the pacer (the estimate left
    /// room for them).
    pub keyframes_burst: u64,
    pub fps: f64,
    pub frames_sent: u64,
    pub keyframes_sent: u64,
    /// RTP bytes/packets including headers and retransmissions, as str0m counts them.
    pub bytes_sent: u64,
    pub packets_sent: u64,
    pub plis: u64,
    pub firs: u64,
    pub nacks: u64,
    pub rtt_ms: Option<f64>,
    /// Fraction lost, as the receiver reports it.
    pub loss: Option<f32>,
}

/// One interval's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Since the publisher started.
    pub elapsed: Duration,
    /// Length of the interval (seconds).
    pub interval: f64,
    /// One per output.
    pub tracks: Vec<TrackReport>,
    /// Frame → socket latency over the interval: from the appsink's hand-over to the frame's
    /// last packet on the socket (after str0m's pacer).
    pub latency: Latency,
    /// Frame → publisher connection over the interval: from the appsink's hand-over to the
    /// frame written into str0m (its wait for the run loop, and the core). The rest of
    /// `latency` is str0m's pacer spreading the frame's packets.
    pub written: Latency,
    /// Frames that never reached the publisher: the media side counts them (the
    /// publisher's queue was full, or the pipeline's own); 0 from the publisher itself.
    pub dropped_frames: u64,
    /// The media path of each peer connection.
    pub paths: BTreeMap<&'static str, String>,
    /// The publisher connection's bandwidth estimate.
    pub estimate_bps: Option<u64>,
}

impl Report {
    /// One JSON object (for `--stats-json`, one per line).
    pub fn to_json(&self) -> Value {
        let tracks: Vec<Value> = self
            .tracks
            .iter()
            .map(|t| {
                json!({
                    "output": t.output.0,
                    "name": t.name,
                    "kind": t.kind.map(|k| k.to_string()),
                    "codec": t.codec.map(|c| c.name()),
                    "sid": t.sid,
                    "bitrate_bps": t.bitrate_bps,
                    "target_bps": t.target_bps,
                    "cannot_adapt": t.cannot_adapt,
                    "layer": t.layer,
                    "paused": t.paused,
                    "unserved_keyframe_requests": t.unserved_keyframe_requests,
                    "kept_frames_sent": t.kept_frames_sent,
                    "fps": (t.fps * 100.0).round() / 100.0,
                    "frames_sent": t.frames_sent,
                    "keyframes_sent": t.keyframes_sent,
                    "keyframes_burst": t.keyframes_burst,
                    "bytes_sent": t.bytes_sent,
                    "packets_sent": t.packets_sent,
                    "pli": t.plis,
                    "fir": t.firs,
                    "nack": t.nacks,
                    "rtt_ms": t.rtt_ms,
                    "loss": t.loss,
                })
            })
            .collect();
        json!({
            "t": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "interval_s": (self.interval * 1000.0).round() / 1000.0,
            "tracks": tracks,
            "latency_us": {
                "p50": self.latency.p50_us,
                "p99": self.latency.p99_us,
                "max": self.latency.max_us,
                "samples": self.latency.samples,
            },
            "written_us": {
                "p50": self.written.p50_us,
                "p99": self.written.p99_us,
                "max": self.written.max_us,
                "samples": self.written.samples,
            },
            "dropped_frames": self.dropped_frames,
            "paths": self.paths,
            "estimate_bps": self.estimate_bps,
        })
    }

    /// A compact line for a terminal.
    pub fn status_line(&self) -> String {
        let mut parts = Vec::new();
        for t in &self.tracks {
            let rate = if t.bitrate_bps >= 1_000_000 {
                format!("{:.2} Mb/s", t.bitrate_bps as f64 / 1e6)
            } else {
                format!("{} kb/s", t.bitrate_bps / 1000)
            };
            let codec = t.codec.map(|c| c.name()).unwrap_or("?");
            if t.kind == Some(MediaKind::Video) {
                parts.push(format!(
                    "{} {codec} {rate} {:.0} fps kf {} pli {} nack {}",
                    t.name,
                    t.fps,
                    t.keyframes_sent,
                    t.plis + t.firs,
                    t.nacks
                ));
            } else {
                parts.push(format!("{} {codec} {rate}", t.name));
            }
        }
        let rtt = self
            .tracks
            .iter()
            .find_map(|t| t.rtt_ms)
            .map(|r| format!(" | rtt {r:.0} ms"))
            .unwrap_or_default();
        let loss = self
            .tracks
            .iter()
            .filter_map(|t| t.loss)
            .fold(None, |m: Option<f32>, l| Some(m.map_or(l, |m| m.max(l))))
            .map(|l| format!(" loss {:.1}%", l * 100.0))
            .unwrap_or_default();
        let estimate = self
            .estimate_bps
            .map(|e| format!(" | bwe {:.2} Mb/s", e as f64 / 1e6))
            .unwrap_or_default();
        let path = self
            .paths
            .get("publisher")
            .map(|p| format!(" | via {p}"))
            .unwrap_or_default();
        format!("{}{rtt}{loss}{estimate}{path}", parts.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::StreamFormat;

    fn out(id: u32, codec: Codec) -> Output {
        Output {
            id: OutputId(id),
            element: format!("e{id}"),
            pad: "src".into(),
            codec,
            format: StreamFormat::default(),
            caps: String::new(),
            settings: Default::default(),
        }
    }

    #[test]
    fn bitrate_fps_and_latency_per_interval() {
        let t0 = Instant::now();
        let mut s = Stats::new(t0);
        s.output(&out(0, Codec::H264));
        s.published(OutputId(0), "TR_V");
        for i in 0..30 {
            s.frame_sent(OutputId(0), 1000, i == 0, Duration::from_micros(50), i == 0);
            s.frame_out(Duration::from_micros(100 + i));
        }
        let r = s.report(t0 + Duration::from_secs(1));
        let t = &r.tracks[0];
        assert_eq!(t.bitrate_bps, 240_000);
        assert!((t.fps - 30.0).abs() < 0.01);
        assert_eq!(t.keyframes_sent, 1);
        assert_eq!(t.keyframes_burst, 1);
        assert_eq!(r.latency.samples, 30);
        assert_eq!(r.latency.p50_us, 115);
        assert_eq!(r.latency.p99_us, 129);
        assert_eq!((r.written.samples, r.written.p99_us), (30, 50));
        let json = r.to_json();
        assert_eq!(json["written_us"]["p50"], 50);
        assert_eq!(json["latency_us"]["max"], 129);
        // The next interval starts from zero.
        let r = s.report(t0 + Duration::from_secs(2));
        assert_eq!(r.tracks[0].bitrate_bps, 0);
        assert_eq!(r.latency.samples, 0);
        assert_eq!(r.to_json()["tracks"][0]["frames_sent"], 30);
        assert_eq!(
            r.to_json()["tracks"][0]["keyframes_burst"],
            1,
            "counted since the start"
        );
    }

    #[test]
    fn egress_counters_survive_a_new_publication() {
        let t0 = Instant::now();
        let mut s = Stats::new(t0);
        s.output(&out(0, Codec::Vp8));
        s.published(OutputId(0), "TR_1");
        s.egress(
            OutputId(0),
            Egress {
                plis: 2,
                nacks: 5,
                bytes: 100,
                ..Default::default()
            },
        );
        s.published(OutputId(0), "TR_2");
        s.egress(
            OutputId(0),
            Egress {
                plis: 1,
                bytes: 10,
                ..Default::default()
            },
        );
        let r = s.report(t0 + Duration::from_secs(1));
        assert_eq!(
            (r.tracks[0].plis, r.tracks[0].nacks, r.tracks[0].bytes_sent),
            (3, 5, 110)
        );
        assert_eq!(r.tracks[0].sid, "TR_2");
        assert!(r.status_line().contains("pli 3"), "{}", r.status_line());
    }
}

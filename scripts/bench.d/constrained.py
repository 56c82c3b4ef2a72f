#!/usr/bin/env python3
"""Compare gstreamer-publisher (ours, with congestion control) and the Go tool over a limited
uplink. Run it through `scripts/bench-constrained` (root; the venv's Python).

The lab (built here, torn down on every exit path):

  namespace gpc-<pid>-srv                          namespace gpc-<pid>-pub
  livekit-server, the Python subscriber            the publisher under test
  lo up                                            lo up
  gpc-srv 10.214.<n>.1/30  <====== veth ======>  gpc-pub 10.214.<n>.2/30
                                                   tc tbf on its egress = the uplink limit

No default route in either namespace (only the connected /30 and lo), so nothing can leave
the lab. 10.214.x.y, never the test lab's 10.213.x. The subscriber sits next to the server,
so only publisher -> server crosses the limited link. Link profiles (tbf rate; burst 20 ms
of the rate or 6 KiB, queue 200 ms, like tests/harness/src/lab.rs `RateLimit::new`):

  1M      constant 1 Mbit/s        (--constant-seconds, default 30 s)
  2.5M    constant 2.5 Mbit/s      (--constant-seconds)
  step    5 -> 1.5 -> 5 Mbit/s     (--step-seconds each, default 20 s), rate replaced in place

Per tool and profile the same pipeline (PIPELINE below) is published for the profile's
length while the subscriber decodes it and logs every decoded video frame (arrival wall
time, the SDK's timestamp_us). Figures, all from the subscriber's side, counted from the
publisher's spawn:

  fps per 2 s window, frames decoded, freezes (gaps between decoded frames > 1 s, a gap
  running into the end of the profile included) and the longest, time to the first frame,
  and per phase how far the frames fall behind real time:

  lag     of a frame = its arrival wall time - its capture time, the capture time read off
          the picture: the test picture scrolls SPEED px per frame, the subscriber logs the
          column of its seam (--frame-log-edge), which gives the frame's index n, captured
          at pipeline start + n / 30 s. The unknown pipeline start is a constant: only
          differences are reported. "lag at end" / "peak lag": above the run's lowest lag
          (its 1st percentile), at the phase's end (median of its last 2 s) / the highest
          0.5 s median in the phase.
  delay growth = median lag over the phase's last 2 s - median lag over its first 2 s.
  growth by timestamp_us: the same with d = arrival wall time - the SDK's
          VideoFrameEvent.timestamp_us, as first planned. It is kept for comparison only:
          timestamp_us is libwebrtc's *render time* in the receiver's monotonic clock (an
          estimate from its own playout timing, which re-syncs), so d stays ~0 while frames
          are really late (seen: 1.5 s of real lag read as 0.0 s).

Children run under `setpriv --pdeathsig KILL` in their own process groups (bench.py's
spawn); a watchdog /bin/sh deletes the namespaces (killing what runs in them) when this
process ends in any way, SIGKILL included; stale `gpc-<pid>-*` namespaces of dead pids are
removed at start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (spawn/stop/kill helpers, builds, machine facts)

ROOT = B.ROOT
NS_PREFIX = "gpc-"
SRV_IF = "gpc-srv"
PUB_IF = "gpc-pub"
HTTP_PORT = 7880
UDP_PORT = 7882
STUN_PORT = 3478  # handed to clients as STUN; nothing answers there (no TURN, as in the test lab)

# The Go README example at 720p30, 4 Mbit/s, plus Opus. format=I420 pinned for the Go tool
# (without it x264enc negotiates Y444, which libwebrtc cannot decode; see bench.py). The SMPTE
# pattern's noise patch makes x264 really spend ~4 Mbit/s (measured: 4.1 Mbit/s over 10 s,
# scrolling or not). horizontal-speed scrolls the picture SPEED px per frame to the left, so
# the seam of the colour bars sits at (-SPEED * frame index) mod 1280: the subscriber reads
# every frame's index, hence its capture time, off the picture (--frame-log-edge).
SPEED = 2
PERIOD = 1280 // SPEED  # frames until the seam comes round again (21.3 s)
FPS = 30
PIPELINE = (
    f"videotestsrc is-live=true horizontal-speed={SPEED} ! "
    "video/x-raw,width=1280,height=720,framerate=30/1,format=I420 ! "
    "x264enc tune=zerolatency bitrate=4000 key-int-max=60 "
    "audiotestsrc is-live=true ! opusenc"
)
WINDOW = 2.0  # fps window, s
FREEZE = 1.0  # a gap longer than this is a freeze, s

log = B.log


def die(msg: str) -> None:
    raise B.BenchError(msg)


def sh(argv: list[str], timeout: float = 20, check: bool = True) -> str:
    """Run a short admin command (ip/tc) to completion; not a child that outlives the call."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        die(f"`{' '.join(argv)}` timed out")
    if check and p.returncode != 0:
        die(f"`{' '.join(argv)}` failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


# ---------------------------------------------------------------------------------- the lab

WATCHDOG_SH = r"""
ip="$1"; srv="$2"; pub="$3"
cleanup() {
  for ns in "$srv" "$pub"; do
    for p in $("$ip" netns pids "$ns" 2>/dev/null); do
      [ "$p" != "$$" ] && kill -9 "$p" 2>/dev/null
    done
    "$ip" netns delete "$ns" 2>/dev/null
  done
}
trap '' INT HUP QUIT PIPE
trap 'cleanup; exit 0' TERM
# EOF once the lab is torn down or the benchmark is gone, however it ended
read -r line || true
cleanup
"""


class Lab:
    def __init__(self) -> None:
        if os.geteuid() != 0:
            die("the network lab needs root (namespaces, veth, tc): run scripts/bench-constrained as root")
        self.ip = shutil.which("ip") or "/usr/sbin/ip"
        self.tc = shutil.which("tc") or "/usr/sbin/tc"
        for t in (self.ip, self.tc):
            if not os.access(t, os.X_OK):
                die(f"{t} not found (install iproute2)")
        self.pid = os.getpid()
        self.prefix = f"{NS_PREFIX}{self.pid}-"
        self.srv_ns = self.prefix + "srv"
        self.pub_ns = self.prefix + "pub"
        n = self.pid % 256  # each lab is its own namespace pair: a repeat would not clash anyway
        self.subnet = f"10.214.{n}.0/30"
        self.srv_ip = f"10.214.{n}.1"
        self.pub_ip = f"10.214.{n}.2"
        self.kbit: int | None = None
        self.rate_changes: list[dict[str, Any]] = []
        self.watchdog: subprocess.Popen | None = None
        self.torn_down = False
        removed = self.cleanup_stale()
        if removed:
            log(f"lab: removed stale namespaces {removed}")
        # the watchdog first: even a kill during set-up leaves nothing behind. Its own session
        # (a terminal's Ctrl-C does not reach it), no pdeathsig: it must outlive us.
        self.watchdog = subprocess.Popen(
            ["/bin/sh", "-c", WATCHDOG_SH, "gpc-lab-watchdog", self.ip, self.srv_ns, self.pub_ns],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.build()
        except BaseException:
            self.teardown()
            raise
        log(f"lab: {self.srv_ns} {self.srv_ip} <-> {self.pub_ns} {self.pub_ip} ({self.subnet})")

    @classmethod
    def namespaces(cls) -> list[str]:
        out = sh([shutil.which("ip") or "/usr/sbin/ip", "netns", "list"])
        return [ln.split()[0] for ln in out.splitlines() if ln.strip()]

    def cleanup_stale(self) -> list[str]:
        removed = []
        for ns in self.namespaces():
            m = re.fullmatch(rf"{NS_PREFIX}(\d+)-(srv|pub)", ns)
            if m and int(m.group(1)) != self.pid and not pid_alive(int(m.group(1))):
                self.delete_ns(ns)
                removed.append(ns)
        return removed

    def delete_ns(self, ns: str) -> None:
        out = sh([self.ip, "netns", "pids", ns], check=False)
        for p in out.split():
            if p.isdigit() and int(p) not in (os.getpid(), 1):
                try:
                    os.kill(int(p), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if Path(f"/run/netns/{ns}").exists() or Path(f"/var/run/netns/{ns}").exists():
            sh([self.ip, "netns", "delete", ns], check=False)

    def exec_in(self, ns: str) -> list[str]:
        """argv prefix running a program in `ns` (`ip netns exec` execs it: same pid)."""
        return [self.ip, "netns", "exec", ns]

    def build(self) -> None:
        for ns in (self.srv_ns, self.pub_ns):
            sh([self.ip, "netns", "add", ns])
        # made directly inside the namespaces: the veth never exists in the host's namespace
        sh([self.ip, "link", "add", "name", SRV_IF, "netns", self.srv_ns, "type", "veth",
            "peer", "name", PUB_IF, "netns", self.pub_ns])
        for ns, ifname, addr in ((self.srv_ns, SRV_IF, self.srv_ip), (self.pub_ns, PUB_IF, self.pub_ip)):
            # no IPv6 on the veth (ICE sees IPv4 only), before link up
            sh(self.exec_in(ns) + ["/bin/sh", "-c",
                                   f"f=/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6; "
                                   f"if [ -e $f ]; then echo 1 > $f; fi"])
            sh([self.ip, "-n", ns, "addr", "add", f"{addr}/30", "dev", ifname])
            sh([self.ip, "-n", ns, "link", "set", ifname, "up"])
            sh([self.ip, "-n", ns, "link", "set", "lo", "up"])
        for ns in (self.srv_ns, self.pub_ns):
            for r in sh([self.ip, "-n", ns, "-4", "route", "show", "table", "all"]).splitlines():
                r = r.strip()
                if r and not (r.startswith(self.subnet + " ") or r.startswith("local ")
                              or r.startswith("broadcast ") or " dev lo " in r):
                    die(f"unexpected route in {ns}: {r}")
        # the link works (before any limit)
        code = subprocess.run(self.exec_in(self.pub_ns) + ["ping", "-c", "1", "-W", "2", self.srv_ip],
                              capture_output=True).returncode if shutil.which("ping") else 0
        if code != 0:
            die("lab: the publisher namespace cannot ping the server address")

    def set_rate(self, kbit: int) -> None:
        """`tc qdisc replace … root tbf` on the publisher's veth egress (the uplink)."""
        burst = max(kbit * 1000 // 8 * 20 // 1000, 6 * 1024)
        sh(self.exec_in(self.pub_ns) + [self.tc, "qdisc", "replace", "dev", PUB_IF, "root", "tbf",
                                         "rate", f"{kbit}kbit", "burst", str(burst), "latency", "200ms"])
        self.kbit = kbit
        self.rate_changes.append({"t_wall": time.time(), "kbit": kbit})

    def qdisc_stats(self) -> dict[str, int]:
        """The uplink tbf's running counters (sent bytes/packets, dropped packets); the caller
        takes differences over a run."""
        out = sh(self.exec_in(self.pub_ns) + [self.tc, "-s", "qdisc", "show", "dev", PUB_IF], check=False)
        m = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out)
        if not m:
            return {}
        return {"bytes": int(m.group(1)), "pkts": int(m.group(2)), "dropped": int(m.group(3))}

    def teardown(self) -> list[str]:
        """Delete both namespaces (killing what runs in them); returns what is left (should be
        nothing). Signals are held off meanwhile; the watchdog would finish the job anyway."""
        if self.torn_down:
            return []
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            for ns in (self.srv_ns, self.pub_ns):
                self.delete_ns(ns)
            if self.watchdog is not None:
                try:
                    self.watchdog.stdin.close()  # type: ignore[union-attr]
                except OSError:
                    pass
                try:
                    self.watchdog.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.watchdog.kill()
                    self.watchdog.wait(timeout=5)
            self.torn_down = True
            left = [ns for ns in self.namespaces() if ns.startswith(self.prefix)]
            if left:
                log(f"lab: WARNING: namespaces still there after teardown: {left}")
            else:
                log(f"lab: torn down ({self.prefix}*)")
            return left
        finally:
            for s, h in old.items():
                signal.signal(s, h)


# ---------------------------------------------------------------------------------- server

class LabServer:
    def __init__(self, lab: Lab, run_dir: Path) -> None:
        self.lab = lab
        ip = lab.srv_ip
        self.key = f"APIbench{secrets.token_hex(4)}"
        self.secret = secrets.token_hex(20)
        self.url = f"ws://{ip}:{HTTP_PORT}"
        self.conf = run_dir / "livekit.yaml"
        self.log_path = run_dir / "livekit-server.log"
        # as tests/harness/src/server.rs config_yaml for start_in_lab (no TURN, no ICE/TCP)
        self.conf.write_text(
            f"port: {HTTP_PORT}\n"
            f"bind_addresses: [{ip}]\n"
            f"keys: {{{self.key}: {self.secret}}}\n"
            "logging: {level: warn}\n"
            "rtc:\n"
            f"  udp_port: {UDP_PORT}\n"
            "  tcp_port: 0\n"
            "  use_external_ip: false\n"
            f"  node_ip: {ip}\n"
            "  enable_loopback_candidate: false\n"
            f"  interfaces: {{includes: [{SRV_IF}]}}\n"
            f"  ips: {{includes: [{ip}/32]}}\n"
            f"  stun_servers: [\"{ip}:{STUN_PORT}\"]\n"
            "turn: {enabled: false}\n"
        )
        self.logf = open(self.log_path, "ab")
        self.proc = B.spawn(lab.exec_in(lab.srv_ns) + [str(B.LK_BIN), "--config", str(self.conf)],
                            stdout=self.logf, stderr=subprocess.STDOUT, cwd=run_dir)
        deadline = time.monotonic() + 25
        while True:
            if self.proc.poll() is not None:
                die(f"livekit-server exited at start ({self.proc.returncode}); log {self.log_path}")
            out = subprocess.run(lab.exec_in(lab.srv_ns) + [
                "curl", "-s", "-o", "/dev/null", "-m", "1", "-w", "%{http_code}",
                f"http://{ip}:{HTTP_PORT}/"], capture_output=True, text=True).stdout
            if out.strip() == "200":
                break
            if time.monotonic() > deadline:
                die(f"livekit-server did not answer within 25 s; log {self.log_path}")
            time.sleep(0.2)
        log(f"livekit-server: {self.url} (udp {UDP_PORT}) in {lab.srv_ns}, pid {self.proc.pid}")

    def token(self, room: str, identity: str) -> str:
        return B.publish_token(self.key, self.secret, room, identity)

    def stop(self) -> None:
        B.stop_child(self.proc, grace=5)
        self.logf.close()


class LabSubscriber(B.Subscriber):
    """bench.py's Subscriber, run in the server namespace, with --frame-log."""

    def __init__(self, server: LabServer, room: str, log_path: Path, duration: float,
                 frame_log: Path) -> None:
        import threading

        argv = server.lab.exec_in(server.lab.srv_ns) + [
            sys.executable, str(B.SUBSCRIBER), "--url", server.url, "--api-key", server.key,
            "--room", room, "--identity", "bench-sub", "--duration", str(duration),
            "--print-events", "--hard-timeout", str(duration + 30), "--frame-log", str(frame_log),
            "--frame-log-edge"]
        env = B.child_env()
        env["LIVEKIT_API_SECRET"] = server.secret  # not in argv
        self.duration = duration
        self.t_spawn = time.time()
        self.proc = B.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.connected = threading.Event()
        self.out_chunks: list[bytes] = []
        self.log_path = log_path
        self._t_err = threading.Thread(target=self._read_err, daemon=True)
        self._t_out = threading.Thread(target=self._read_out, daemon=True)
        self._t_err.start()
        self._t_out.start()


# ---------------------------------------------------------------------------------- runs

PROFILES: dict[str, dict[str, Any]] = {
    "1M": {"label": "constant 1 Mbit/s", "rates": [1000]},
    "2.5M": {"label": "constant 2.5 Mbit/s", "rates": [2500]},
    "step": {"label": "step 5 → 1.5 → 5 Mbit/s", "rates": [5000, 1500, 5000]},
}


def phases_of(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    rates = PROFILES[name]["rates"]
    secs = args.constant_seconds if len(rates) == 1 else args.step_seconds
    return [{"kbit": k, "start": i * secs, "end": (i + 1) * secs} for i, k in enumerate(rates)]


def publisher_argv(tool: str, bins: dict[str, Path], server: LabServer, room: str,
                   stats: Path) -> tuple[list[str], dict[str, str]]:
    env = B.child_env()
    argv = server.lab.exec_in(server.lab.pub_ns) + [str(bins[tool])]
    if tool == "rs":
        # credentials through the environment; it mints its own token
        env.update(LIVEKIT_URL=server.url, LIVEKIT_API_KEY=server.key, LIVEKIT_API_SECRET=server.secret)
        argv += ["--room", room, "--identity", "pub-rs", "--stats-json", str(stats), "--stats-interval", "1"]
    else:
        argv += ["--url", server.url, "--token", server.token(room, "pub-go")]
    return argv + ["--"] + PIPELINE.split(), env


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def run_profile(ctx: dict[str, Any], tool: str, name: str) -> dict[str, Any]:
    args, lab, server, bins, run_dir = ctx["args"], ctx["lab"], ctx["server"], ctx["bins"], ctx["run_dir"]
    phases = phases_of(name, args)
    total = phases[-1]["end"]
    ctx["n"] += 1
    room = f"cc-{name}-{tool}-{ctx['n']}-{secrets.token_hex(3)}"
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    tag = f"{name}-{tool}"
    frame_log = logs / f"{tag}-frames.jsonl"
    stats = logs / f"{tag}-stats.jsonl"
    lab.set_rate(phases[0]["kbit"])
    q0 = lab.qdisc_stats()
    sub = LabSubscriber(server, room, logs / f"{tag}-sub.log", duration=total + 20, frame_log=frame_log)
    r: dict[str, Any] = {"tool": tool, "profile": name, "room": room, "phases_def": phases,
                         "seconds": total}
    if not sub.wait_connected():
        sub.kill()
        r["error"] = "subscriber did not connect"
        return r
    time.sleep(0.3)
    argv, env = publisher_argv(tool, bins, server, room, stats)
    logf = open(logs / f"{tag}-pub.log", "ab")
    t0 = time.time()
    t0m = time.monotonic()
    pub = B.spawn(argv, stdout=logf, stderr=subprocess.STDOUT, env=env)
    sampler = B.ProcSampler(pub.pid)
    changes = [{"t": 0.0, "kbit": phases[0]["kbit"]}]
    alive = True
    for ph in phases[1:] + [{"start": total, "kbit": None}]:
        while True:
            left = t0m + ph["start"] - time.monotonic()
            if left <= 0:
                break
            sampler.sample()
            if pub.poll() is not None:
                alive = False
            time.sleep(min(0.5, left))
        if ph["kbit"] is not None:
            lab.set_rate(ph["kbit"])
            changes.append({"t": round(time.time() - t0, 3), "kbit": ph["kbit"]})
            log(f"  {tag}: uplink now {ph['kbit']} kbit/s at t={changes[-1]['t']:.1f} s")
    sampler.sample()
    alive = alive and pub.poll() is None
    t_end = time.time()
    q1 = lab.qdisc_stats()
    rep = sub.result(timeout=10, terminate=True)
    code = B.stop_child(pub, grace=5)
    logf.close()
    frames = [f for f in read_jsonl(frame_log) if "wall" in f and "ts_us" in f]
    r.update({
        "t0_wall": t0, "t_end_wall": t_end, "rate_changes": changes,
        "publisher_alive_at_end": alive, "publisher_exit": code,
        "publisher_cpu_pct": round(100 * (sampler.cpu or 0) / max(1e-6, t_end - t0), 1)
        if sampler.cpu is not None else None,
        "uplink_sent_mbps": round((q1["bytes"] - q0["bytes"]) * 8 / (t_end - t0) / 1e6, 3)
        if q0 and q1 else None,
        "uplink_dropped_pkts": q1["dropped"] - q0["dropped"] if q0 and q1 else None,
        "uplink_sent_pkts": q1["pkts"] - q0["pkts"] if q0 and q1 else None,
        "subscriber_error": rep.get("error"),
        "video_tracks": [{k: t.get(k) for k in ("sid", "mime", "width", "height", "frames", "sizes")}
                         for t in B.video_tracks(rep)],
        "audio_frames": sum(t.get("frames", 0) for t in rep.get("tracks", []) if t.get("kind") == "audio"),
    })
    r.update(analyse(frames, t0, total, phases))
    if tool == "rs":
        r["stats"] = summarize_stats(read_jsonl(stats))
    if not alive:
        r["error"] = f"publisher exited early ({code}); see {logs / (tag + '-pub.log')}"
    elif not frames:
        r["error"] = "no video frame decoded"
    return r


def summarize_stats(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ours: per stats line (1 s), the video track's target and sent bitrate (kbit/s)."""
    out = []
    for ln in lines:
        v = [t for t in ln.get("tracks", []) if t.get("kind") == "video"]
        if not v:
            continue
        t = v[0]
        out.append({"t": ln.get("t"),
                    "target_kbps": round(t["target_bps"] / 1000) if t.get("target_bps") else None,
                    "sent_kbps": round(t["bitrate_bps"] / 1000) if t.get("bitrate_bps") is not None else None,
                    "rtt_ms": t.get("rtt_ms"), "pli": t.get("pli"), "nack": t.get("nack")})
    return out


MIN_STEP = 60.0  # a seam lower than this (luma levels; a clean one is ~200) is not trusted


def frame_indices(fr: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, float]]:
    """(t, true delay) per frame whose seam could be read: delay = t - index / FPS, index
    unwrapped from the seam's column (mod PERIOD frames). The first frame's index is the
    largest that was not captured after it arrived (the pipeline starts after the spawn);
    each later one is the candidate nearest to the previous index + FPS x the time between
    them (so a delay may change by up to PERIOD / 2 frames = 10 s between two frames)."""
    out = []
    prev: tuple[float, float] | None = None
    for t, f in fr:
        x, step = f.get("edge_x"), f.get("edge_step")
        if x is None or step is None or step < MIN_STEP:
            continue
        m = (-x / SPEED) % PERIOD
        if prev is None:
            k = (FPS * t + 3 - m) // PERIOD
            n = m + PERIOD * max(0, k)
        else:
            exp = prev[1] + FPS * (t - prev[0])
            n = m + PERIOD * round((exp - m) / PERIOD)
        prev = (t, n)
        out.append((t, t - n / FPS))
    return out


def analyse(frames: list[dict[str, Any]], t0: float, total: float,
            phases: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of one run from the subscriber's per-frame log (see the module doc)."""
    if frames:
        # one video track is published; keep the one with most frames should there be more
        by: dict[str, int] = {}
        for f in frames:
            by[f["sid"]] = by.get(f["sid"], 0) + 1
        main = max(by, key=by.get)  # type: ignore[arg-type]
        frames = [f for f in frames if f["sid"] == main]
    # times relative to the publisher's spawn; the run's window only
    fr = sorted(((f["wall"] - t0, f) for f in frames if 0 <= f["wall"] - t0 < total), key=lambda x: x[0])
    ts = [t for t, _ in fr]
    true = frame_indices(fr)  # (t, t - capture time)
    tsd = [(t, f["wall"] - f["ts_us"] / 1e6) for t, f in fr]  # (t, wall - timestamp_us)
    out: dict[str, Any] = {"frames": len(ts), "first_frame_s": round(ts[0], 3) if ts else None,
                           "frames_with_seam": len(true)}
    nwin = math.ceil(total / WINDOW - 1e-9)
    counts = [0] * nwin
    for t in ts:
        counts[min(nwin - 1, int(t // WINDOW))] += 1
    out["fps_windows"] = [round(c / min(WINDOW, total - i * WINDOW), 1) for i, c in enumerate(counts)]

    def freezes_in(a: float, b: float) -> list[dict[str, Any]]:
        """gaps > FREEZE between decoded frames, the part inside [a, b); one running into b
        counts (to_end); the wait for the first frame does not"""
        fz: list[dict[str, Any]] = []
        for p, t in zip(ts, ts[1:]):
            lo, hi = max(p, a), min(t, b)
            if t - p > FREEZE and hi - lo > FREEZE:
                fz.append({"at": round(lo, 2), "s": round(hi - lo, 2)})
        if ts and b - max(ts[-1], a) > FREEZE:
            fz.append({"at": round(max(ts[-1], a), 2), "s": round(b - max(ts[-1], a), 2), "to_end": True})
        return fz

    fz = freezes_in(0.0, total)
    out.update(freezes=fz, freeze_count=len(fz), longest_freeze_s=max((f["s"] for f in fz), default=0.0),
               frozen_s=round(sum(f["s"] for f in fz), 2))
    base = sorted(d for _, d in true)[len(true) // 100] if true else 0.0  # ~1st percentile
    out["delay_base_s"] = round(base, 3)

    def med(series: list[tuple[float, float]], a: float, b: float) -> float | None:
        ds = [d for t, d in series if a <= t < b]
        return statistics.median(ds) if ds else None

    def peak(series: list[tuple[float, float]], a: float, b: float) -> float | None:
        """the highest 0.5 s median (robust against a misread seam)"""
        ms = [med(series, x, x + 0.5) for x in frange(a, b, 0.5)]
        ms = [m for m in ms if m is not None]
        return max(ms) if ms else None

    phs = []
    for ph in phases:
        a, b = ph["start"], ph["end"]
        inph = [t for t in ts if a <= t < b]
        # the first phase starts with the first decoded frame (connection set-up is not delay)
        a_eff = max(a, ts[0]) if ts else a
        row: dict[str, Any] = {
            "kbit": ph["kbit"], "start": a, "end": b, "frames": len(inph),
            "fps": round(len(inph) / (b - a_eff), 1) if b > a_eff else 0.0,
        }
        pf = freezes_in(a, b)
        row.update(freezes=len(pf), longest_freeze_s=max((f["s"] for f in pf), default=0.0))
        for key, series, off in (("delay", true, base), ("ts_delay", tsd, None)):
            d0, d1 = med(series, a_eff, a_eff + WINDOW), med(series, b - WINDOW, b)
            row[f"{key}_start_s"] = round(d0, 3) if d0 is not None else None
            row[f"{key}_end_s"] = round(d1, 3) if d1 is not None else None
            row[f"{key}_growth_s"] = round(d1 - d0, 3) if d0 is not None and d1 is not None else None
            if off is not None:
                pk = peak(series, a_eff, b)
                row["delay_peak_s"] = round(pk - off, 3) if pk is not None else None
                row["delay_end_above_min_s"] = round(d1 - off, 3) if d1 is not None else None
        # nothing decoded in the phase's last 2 s: frozen; how stale the picture is at b
        last = [(t, d) for t, d in true if t < b]
        row["frozen_at_end"] = not any(b - WINDOW <= t < b for t in ts)
        if row["frozen_at_end"] and last:
            row["stale_at_end_s"] = round(last[-1][1] - base + (b - last[-1][0]), 2)
        phs.append(row)
    out["phases"] = phs
    return out


def frange(a: float, b: float, step: float) -> list[float]:
    n = max(0, math.ceil((b - a) / step - 1e-9))
    return [a + i * step for i in range(n)]


# ---------------------------------------------------------------------------------- report

def f1(x: Any, unit: str = "", nd: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}{unit}"


def growth_txt(ph: dict[str, Any], key: str = "delay") -> str:
    if ph.get("frozen_at_end") and ph.get("delay_start_s") is None:
        return "no picture"
    if ph.get("frozen_at_end"):
        return "frozen at end" + (f" ({ph['stale_at_end_s']:.1f} s stale)" if key == "delay"
                                  and ph.get("stale_at_end_s") is not None else "")
    g = ph.get(f"{key}_growth_s")
    return "n/a" if g is None else f"{g:+.2f} s"


def lag_txt(ph: dict[str, Any]) -> str:
    if ph.get("frozen_at_end") and ph.get("delay_start_s") is None:
        return "no picture"
    if ph.get("frozen_at_end"):
        return "frozen"
    return f1(ph.get("delay_end_above_min_s"), " s", 2)


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    L = [f"Run {res['started']} · {m['cores']} cores · {m['cpu_model']} · "
         f"ours {res['ours'].get('git')}{' (dirty src)' if res['ours'].get('dirty_src') else ''}, "
         f"binary built {res['ours'].get('binary_mtime')} · Go: {res.get('go_tool', 'not run')} · "
         f"took {res['elapsed_s'] / 60:.1f} min",
         "",
         f"Machine load: at start `{res['uptime_start']}`; at end `{res['uptime_end']}`",
         "",
         f"Pipeline (both tools): `{res['pipeline']}`",
         "",
         "| tool | profile | phase | fps | frames decoded | freezes > 1 s | longest freeze | "
         "delay growth | lag at end | peak lag | growth by timestamp_us | first frame | "
         "uplink sent, tbf drops |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        tool = B.TOOL_NAMES[r["tool"]]
        prof = PROFILES[r["profile"]]["label"] + (f" ({r['error']})" if r.get("error") else "")
        phs = r.get("phases") or []
        link = (f"{f1(r.get('uplink_sent_mbps'), ' Mbit/s', 2)}, {r.get('uplink_dropped_pkts', 'n/a')} pkts"
                if r.get("uplink_sent_mbps") is not None else "n/a")
        whole = (f"{f1(r.get('frames', 0) / r['seconds'])} | {r.get('frames', 0)} | "
                 f"{r.get('freeze_count', 'n/a')} | {f1(r.get('longest_freeze_s'), ' s')}")
        if len(phs) == 1:
            ph = phs[0]
            L.append(f"| {tool} | {prof} | {r['seconds']} s | {whole} | {growth_txt(ph)} | "
                     f"{lag_txt(ph)} | {f1(ph.get('delay_peak_s'), ' s', 2)} | {growth_txt(ph, 'ts_delay')} | "
                     f"{f1(r.get('first_frame_s'), ' s', 2)} | {link} |")
            continue
        L.append(f"| {tool} | {prof} | whole {r['seconds']} s | {whole} | | | | | "
                 f"{f1(r.get('first_frame_s'), ' s', 2)} | {link} |")
        for ph in phs:
            L.append(f"| | | {ph['start']}–{ph['end']} s @ {ph['kbit'] / 1000:g} Mbit/s | {f1(ph['fps'])} | "
                     f"{ph['frames']} | {ph['freezes']} | {f1(ph['longest_freeze_s'], ' s')} | "
                     f"{growth_txt(ph)} | {lag_txt(ph)} | {f1(ph.get('delay_peak_s'), ' s', 2)} | "
                     f"{growth_txt(ph, 'ts_delay')} | | |")
    L.append("")
    step = res.get("step_phases") or []
    L.append(f"Decoded fps per {WINDOW:g} s window from the publisher's spawn"
             + (f" (step: the rate changes at {', '.join(str(p['start']) + ' s' for p in step[1:])})"
                if step else "") + ":")
    L.append("")
    L.append("```")
    for r in res["runs"]:
        series = " ".join(f"{x:g}" for x in r.get("fps_windows", []))
        L.append(f"{r['tool']:>2} {r['profile']:<5} {series}")
    L.append("```")
    rs_runs = [r for r in res["runs"] if r["tool"] == "rs" and r.get("stats")]
    if rs_runs:
        L.append("")
        L.append("Ours: the video encoder's target (kbit/s) from `--stats-json`, every 2 s:")
        L.append("")
        L.append("```")
        for r in rs_runs:
            tg = [s.get("target_kbps") for s in r["stats"]][1::2]
            L.append(f"rs {r['profile']:<5} " + " ".join("-" if x is None else str(x) for x in tg))
        L.append("```")
    return "\n".join(L)


# ---------------------------------------------------------------------------------- main

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench-constrained", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", default="1M,2.5M,step", help="comma list of 1M,2.5M,step (default all)")
    p.add_argument("--constant-seconds", type=int, default=30, help="length of 1M and 2.5M (default 30)")
    p.add_argument("--step-seconds", type=int, default=20, help="length of each step phase (default 20)")
    p.add_argument("--skip-go", action="store_true", help="measure only this project")
    p.add_argument("--rebuild-go", action="store_true", help="rebuild tools/bin/gstreamer-publisher-go")
    p.add_argument("--go-src", metavar="DIR", default=os.environ.get("BENCH_GO_SRC") or None,
                   help="build the Go tool from this checkout when go install fails (see scripts/bench --help)")
    p.add_argument("--no-build", action="store_true",
                   help="skip cargo build --release (use target/release/gstreamer-publisher as it is)")
    p.add_argument("--build-timeout", type=float, default=1800, help="seconds per build (default 1800)")
    p.add_argument("--out", help="JSON results file (default tools/bench-results/constrained-<time>.json)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="watchdog for the whole run (default: measuring time × 2 + 30 min for builds)")
    p.add_argument("--report", metavar="JSON", help="only print the Markdown of an earlier results file")
    a = p.parse_args(argv)
    a.profile_list = [x.strip() for x in a.profiles.split(",") if x.strip()]
    bad = set(a.profile_list) - set(PROFILES)
    if bad:
        p.error(f"unknown profile(s): {', '.join(sorted(bad))}")
    if a.constant_seconds < 6 or a.step_seconds < 6:
        p.error("--constant-seconds and --step-seconds must be >= 6")
    return a


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001
        return f"load average {B.load_avg()}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.report:
        print(markdown(json.loads(Path(args.report).read_text())))
        return 0
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, B._on_signal)
    import atexit

    atexit.register(B.kill_all_children)
    tools = 1 if args.skip_go else 2
    measure = sum(phases_of(p, args)[-1]["end"] + 12 for p in args.profile_list) * tools
    max_s = args.max_minutes * 60 if args.max_minutes else measure * 2 + 1800

    def watchdog(_s: int, _f: Any) -> None:
        raise KeyboardInterrupt(f"--max-minutes watchdog ({max_s / 60:.0f} min)")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(int(max_s))

    started = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    B.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = B.RESULTS_DIR / f"constrained-run-{started}"
    run_dir.mkdir(parents=True, exist_ok=True)
    build_log = run_dir / "build.log"
    out_path = Path(args.out) if args.out else B.RESULTS_DIR / f"constrained-{started}.json"
    log(f"results: {out_path}, logs in {run_dir}; about {measure / 60:.1f} min of measuring")
    if not B.LK_BIN.exists():
        die(f"{B.LK_BIN} not found — run scripts/setup first")
    if os.geteuid() != 0:
        die("needs root (network namespaces, veth, tc)")
    res: dict[str, Any] = {"kind": "constrained", "started": started, "args": dict(vars(args)),
                           "machine": B.machine_facts(), "pipeline": PIPELINE, "runs": [],
                           "step_phases": phases_of("step", args)}
    bins: dict[str, Path] = {}
    if not args.skip_go:
        res["go_tool"] = B.build_go_tool(args, build_log)
        bins["go"] = B.GO_BIN
    snap, meta = B.build_ours(args, run_dir, build_log)
    bins["rs"] = snap
    res["ours"] = meta
    res["versions"] = {"livekit_server": B.version_of([str(B.LK_BIN), "--version"])}
    res["uptime_start"] = uptime()
    res["load_before"] = B.load_avg()
    log(f"load at start: {res['uptime_start']}")
    t_measure = time.monotonic()
    lab: Lab | None = None
    server: LabServer | None = None
    try:
        lab = Lab()
        res["lab"] = {"server_ns": lab.srv_ns, "publisher_ns": lab.pub_ns, "subnet": lab.subnet}
        server = LabServer(lab, run_dir)
        ctx = {"args": args, "lab": lab, "server": server, "bins": bins, "run_dir": run_dir, "n": 0}
        for name in args.profile_list:
            for tool in (["rs"] if args.skip_go else ["rs", "go"]):
                log(f"{tool} over {PROFILES[name]['label']}")
                r = run_profile(ctx, tool, name)
                res["runs"].append(r)
                log(f"  {tool} {name}: {r.get('frames')} frames, fps/2 s {r.get('fps_windows')}, "
                    f"freezes {r.get('freeze_count')} (longest {r.get('longest_freeze_s')} s), growth "
                    f"{[p.get('delay_growth_s') for p in r.get('phases', [])]} {r.get('error', '')}")
    except BaseException:
        B.kill_all_children()
        raise
    finally:
        if server is not None:
            server.stop()
        B.kill_all_children()
        if lab is not None:
            res["lab_left_after_teardown"] = lab.teardown()
        bins["rs"].unlink(missing_ok=True)  # the private copy; its sha256 is in the JSON
        res["uptime_end"] = uptime()
        res["load_after"] = B.load_avg()
        res["elapsed_s"] = round(time.monotonic() - B.T_START, 1)
        res["measure_s"] = round(time.monotonic() - t_measure, 1)
        out_path.write_text(json.dumps(res, indent=1, default=str) + "\n")
        log(f"raw results: {out_path}")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except B.BenchError as e:
        log(f"ERROR: {e}")
        B.kill_all_children()
        sys.exit(1)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); killing children, tearing the lab down")
        B.kill_all_children()
        sys.exit(130)

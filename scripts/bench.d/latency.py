"""Glass-to-glass latency: `scripts/bench --scenarios latency`.

A live source makes raw frames that carry the wall-clock time they were made
(tests/subscriber/timecode.py, written to `shmsink` by `gst-launch-1.0`); each publisher runs
the same pipeline on it (`shmsrc is-live=true do-timestamp=true ! x264enc tune=zerolatency`,
a keyframe every 2 s); LiveKit's Python SDK viewer decodes every frame with libwebrtc and
reads the time code back from the picture (subscriber.py --frame-log-code). A frame's
latency is the viewer's clock when it had the decoded frame minus the time in its picture:
one machine, one clock.

The floor is the same source encoded and decoded on the machine without the network path:
`... ! x264enc ! h264parse ! avdec_h264 thread-type=slice ! fdsink`, read by this process.

Which frames were keyframes: each pipeline also writes the encoder's output to a file (a `tee`
before the published branch); that file is decoded afterwards and its access units matched to
the frame numbers in their pictures, so the keyframes (and the 5 frames after each) are known
by number, whatever forced them.

Reported per scene and tool: p50 / p95 / p99 / max over all frames after a settling time, and
the same over the keyframes and over the 5 frames after each; plus an SVG plot of latency
over time with keyframes marked (first run of each tool and the floor).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

SUB_DIR = Path(__file__).resolve().parents[2] / "tests" / "subscriber"
sys.path.insert(0, str(SUB_DIR))
import timecode  # noqa: E402

TIMECODE = SUB_DIR / "timecode.py"

# (name, scene, width, height, kbit/s)
SCENES = {
    "flat-720p": ("flat", 1280, 720, 4000),
    "detailed-720p": ("detailed", 1280, 720, 4000),
    "flat-1080p": ("flat", 1920, 1080, 8000),
    "detailed-1080p": ("detailed", 1920, 1080, 8000),
}
DEFAULT_SCENES = "flat-720p,detailed-720p,flat-1080p,detailed-1080p"
FPS = 30
# Frames decoded in the first SETTLE seconds are not counted: the viewer's first frames wait
# for its subscription's first keyframe, which says nothing about a running stream.
SETTLE = 3.0
AFTER_KEY = 5


# More x264enc properties for every pipeline (`--latency-x264`).
X264_EXTRA = ""


def encoder(kbps: int) -> str:
    # veryfast: x264's default preset (medium) cannot keep 1080p30 of the detailed scene on a
    # 2-core machine beside the server and the viewer; every tool gets the same encoder.
    extra = f" {X264_EXTRA}" if X264_EXTRA else ""
    return (f"x264enc tune=zerolatency speed-preset=veryfast bitrate={kbps} key-int-max={FPS * 2}"
            f"{extra} ! video/x-h264,stream-format=byte-stream")


def source_caps(w: int, h: int) -> str:
    return f"video/x-raw,format=I420,width={w},height={h},framerate={FPS}/1"


def publish_pipeline(sock: Path, rec: Path, w: int, h: int, kbps: int) -> str:
    # The parser ends the published branch: the Go tool finds outputs by the pad template
    # caps of unlinked src pads, which a queue's (ANY) would not match.
    return (f"shmsrc socket-path={sock} is-live=true do-timestamp=true ! {source_caps(w, h)} ! "
            f"{encoder(kbps)} ! tee name=rec ! queue ! filesink location={rec} "
            "rec. ! queue ! h264parse")


def floor_pipeline(sock: Path, rec: Path, w: int, h: int, kbps: int) -> str:
    return (f"shmsrc socket-path={sock} is-live=true do-timestamp=true ! {source_caps(w, h)} ! "
            f"{encoder(kbps)} ! tee name=rec ! queue ! filesink location={rec} "
            "rec. ! queue ! h264parse ! avdec_h264 thread-type=slice ! "
            f"{source_caps(w, h)} ! fdsink fd=1 sync=false")


class Source:
    """timecode.py | gst-launch-1.0 fdsrc ! rawvideoparse ! shmsink: a live raw source any
    number of pipelines can read at `sock` (frames nobody reads are dropped)."""

    def __init__(self, b: Any, scene: str, w: int, h: int, sock: Path, log_path: Path) -> None:
        sock.unlink(missing_ok=True)
        self.sock = sock
        self.logf = open(log_path, "ab")
        frame = w * h * 3 // 2
        self.gen = b.spawn([sys.executable, str(TIMECODE), "--width", str(w), "--height", str(h),
                            "--fps", str(FPS), "--scene", scene],
                           stdout=subprocess.PIPE, stderr=self.logf)
        self.gst = subprocess.Popen(
            (["setpriv", "--pdeathsig", "KILL", "--"] if b.HAVE_SETPRIV else []) +
            ["gst-launch-1.0", "-q", "fdsrc", "fd=0", f"blocksize={frame}", "!", "rawvideoparse",
             f"width={w}", f"height={h}", "format=i420", f"framerate={FPS}/1", "!",
             "shmsink", f"socket-path={sock}", "sync=false", "wait-for-connection=false",
             f"shm-size={frame * 8}"],
            stdin=self.gen.stdout, stdout=subprocess.DEVNULL, stderr=self.logf,
            env=b.child_env(), start_new_session=True)
        with b._children_lock:
            b.CHILDREN.append(self.gst)
        self.gen.stdout.close()  # type: ignore[union-attr] - the pipe is the gst side's now
        self.b = b
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or self.gst.poll() is not None:
                self.stop()
                b.die(f"the time-code source did not start (log {log_path})")
            time.sleep(0.05)

    def stop(self) -> None:
        self.b.stop_child(self.gen, grace=2)
        self.b.stop_child(self.gst, grace=2)
        self.logf.close()
        self.sock.unlink(missing_ok=True)


def access_units(data: bytes) -> list[bool]:
    """Keyframe flag of each access unit of an Annex-B H.264 stream, in order."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    aus: list[bool] = []
    has_slice = False
    for s in starts:
        if s >= len(data):
            break
        t = data[s] & 0x1F
        is_slice = t in (1, 5)
        first_slice = is_slice and s + 1 < len(data) and data[s + 1] & 0x80 != 0
        if not aus or (has_slice and (t in (6, 7, 8, 9) or first_slice)):
            aus.append(False)
            has_slice = False
        if t == 5:
            aus[-1] = True
        has_slice |= is_slice
    return aus


def keyframe_numbers(b: Any, rec: Path, w: int, h: int, log_path: Path) -> set[int]:
    """Frame numbers (from their pictures) of the keyframes in the recorded encoder output."""
    try:
        data = rec.read_bytes()
    except OSError:
        return set()
    flags = access_units(data)
    size = w * h * 3 // 2
    keys: set[int] = set()
    i = 0
    with open(log_path, "ab") as errf:
        p = subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", f"location={rec}", "!", "h264parse",
                              "!", "avdec_h264", "!", source_caps(w, h), "!", "fdsink", "fd=1"],
                             stdout=subprocess.PIPE, stderr=errf, env=b.child_env())
        assert p.stdout is not None
        while True:
            buf = p.stdout.read(size)
            if len(buf) < size:
                break
            code = timecode.read(np.frombuffer(buf, np.uint8, count=w * h).reshape(h, w))
            if code is not None and i < len(flags) and flags[i]:
                keys.add(code[1])
            i += 1
        p.wait(timeout=30)
    if i != len(flags):
        b.log(f"  latency: {rec.name}: {i} decoded frames, {len(flags)} access units")
    return keys


def frames_from_log(path: Path) -> list[tuple[float, int, float]]:
    """(decode wall ms, frame number, age ms) of each decoded frame with a readable code."""
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("code_ms") is None:
            continue
        wall_ms = d["wall"] * 1000
        made = timecode.unwrap_ms(d["code_ms"], wall_ms)
        out.append((wall_ms, d["code_n"], wall_ms - made))
    return out


def receiver_from_log(path: Path, from_wall_ms: float) -> dict[str, Any] | None:
    """The viewer's libwebrtc statistics over the measured window (from `from_wall_ms`): the
    mean time a frame spent in its jitter buffer and in decoding, the jitter buffer's target
    at the end, NACKs and PLIs sent (ms)."""
    lines = []
    try:
        for line in path.read_text().splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "receiver" in d and d["wall"] * 1000 >= from_wall_ms:
                lines.append(d["receiver"])
    except OSError:
        return None
    if len(lines) < 2:
        return None
    a, z = lines[0], lines[-1]
    emitted = z["jitter_buffer_emitted"] - a["jitter_buffer_emitted"]
    decoded = z["frames_decoded"] - a["frames_decoded"]
    if emitted <= 0 or decoded <= 0:
        return None
    return {
        "jitter_buffer_ms": round(1000 * (z["jitter_buffer_delay_s"] - a["jitter_buffer_delay_s"]) / emitted, 1),
        "jitter_buffer_target_ms": round(
            1000 * (z["jitter_buffer_target_delay_s"] - a["jitter_buffer_target_delay_s"]) / emitted, 1),
        "decode_ms": round(1000 * (z["total_decode_time_s"] - a["total_decode_time_s"]) / decoded, 1),
        "processing_ms": round(1000 * (z["total_processing_delay_s"] - a["total_processing_delay_s"]) / decoded, 1),
        "nacks": z["nack_count"] - a["nack_count"], "plis": z["pli_count"] - a["pli_count"],
    }


def floor_reader(proc: subprocess.Popen, w: int, h: int, frames: list[tuple[float, int, float]]) -> None:
    size = w * h * 3 // 2
    buf = bytearray(size)
    view = memoryview(buf)
    assert proc.stdout is not None
    while True:
        got = 0
        while got < size:
            n = proc.stdout.readinto(view[got:])
            if not n:
                return
            got += n
        wall_ms = time.time() * 1000
        code = timecode.read(np.frombuffer(buf, np.uint8, count=w * h).reshape(h, w))
        if code is not None:
            frames.append((wall_ms, code[1], wall_ms - timecode.unwrap_ms(code[0], wall_ms)))


def pcts(xs: list[float]) -> dict[str, Any] | None:
    if not xs:
        return None
    a = np.array(xs)
    return {"n": len(xs), "p50": round(float(np.percentile(a, 50)), 1),
            "p95": round(float(np.percentile(a, 95)), 1), "p99": round(float(np.percentile(a, 99)), 1),
            "max": round(float(a.max()), 1)}


def analyse(frames: list[tuple[float, int, float]], keys: set[int]) -> dict[str, Any]:
    if not frames:
        return {"error": "no decoded frame had a readable time code"}
    t0 = frames[0][0]
    kept = [f for f in frames if f[0] - t0 >= SETTLE * 1000]
    after = {k + d for k in keys for d in range(1, AFTER_KEY + 1)}
    return {
        "all": pcts([f[2] for f in kept]),
        "key": pcts([f[2] for f in kept if f[1] in keys]),
        "after_key": pcts([f[2] for f in kept if f[1] in after]),
        "decoded": len(frames), "keyframes": len(keys),
        "span_s": round((frames[-1][0] - t0) / 1000, 1),
        # for the plot: seconds since the first frame, age, keyframe or not
        "series": [(round((f[0] - t0) / 1000, 3), round(f[2], 1), f[1] in keys) for f in frames],
    }


def run_floor(ctx: Any, b: Any, name: str, i: int) -> dict[str, Any]:
    scene, w, h, kbps = SCENES[name]
    tag = f"latency-{name}-{i}-floor"
    sock = ctx.run_dir / f"{tag}.shm"
    rec = ctx.run_dir / f"{tag}.h264"
    src = Source(b, scene, w, h, sock, ctx.logs(f"{tag}-source.log"))
    frames: list[tuple[float, int, float]] = []
    try:
        with open(ctx.logs(f"{tag}.log"), "ab") as errf:
            p = b.spawn(["gst-launch-1.0", "-q"] + floor_pipeline(sock, rec, w, h, kbps).split(),
                        stdout=subprocess.PIPE, stderr=errf)
            reader = threading.Thread(target=floor_reader, args=(p, w, h, frames), daemon=True)
            reader.start()
            time.sleep(ctx.args.latency_seconds + SETTLE)
            b.stop_child(p, grace=3, sig=2)  # SIGINT: gst-launch ends the pipeline
            reader.join(timeout=5)
    finally:
        src.stop()
    r = {"tool": "floor", "run": i, "scene": name}
    r.update(analyse(frames, keyframe_numbers(b, rec, w, h, ctx.logs(f"{tag}-keys.log"))))
    rec.unlink(missing_ok=True)
    return r


def run_tool(ctx: Any, b: Any, name: str, tool: str, i: int) -> dict[str, Any]:
    scene, w, h, kbps = SCENES[name]
    tag = f"latency-{name}-{i}-{tool}"
    sock = ctx.run_dir / f"{tag}.shm"
    rec = ctx.run_dir / f"{tag}.h264"
    flog = ctx.logs(f"{tag}-frames.jsonl")
    flog.unlink(missing_ok=True)
    room = ctx.room("latency", tool)
    src = Source(b, scene, w, h, sock, ctx.logs(f"{tag}-source.log"))
    secs = ctx.args.latency_seconds + SETTLE
    try:
        sub = b.Subscriber(ctx.server, room, ctx.logs(f"{tag}-sub.log"), duration=secs + 15,
                           extra=["--frame-log", str(flog), "--frame-log-code"])
        if not sub.wait_connected():
            sub.kill()
            return {"tool": tool, "run": i, "scene": name, "error": "subscriber did not connect"}
        stats = ctx.logs(f"{tag}-stats.jsonl") if tool == "rs" else None
        pub = b.Publisher(tool, ctx.bins, ctx.server, room, publish_pipeline(sock, rec, w, h, kbps),
                          ctx.logs(f"{tag}-pub.log"), stats_json=stats, stats_interval=1.0)
        # the measured window starts at the viewer's first decoded frame
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and pub.alive() and not (flog.exists() and flog.stat().st_size):
            time.sleep(0.1)
        pub.sample_for(secs)
        alive = pub.alive()
        pub.stop()
        sub.result(timeout=5, terminate=True)
    finally:
        src.stop()
    r: dict[str, Any] = {"tool": tool, "run": i, "scene": name, "publisher_alive_at_end": alive}
    frames = frames_from_log(flog)
    r.update(analyse(frames, keyframe_numbers(b, rec, w, h, ctx.logs(f"{tag}-keys.log"))))
    if frames:
        r["receiver"] = receiver_from_log(flog, frames[0][0] + SETTLE * 1000)
    if r.get("error"):
        r["error"] += f"; publisher log: {pub.log_tail()}"
    rec.unlink(missing_ok=True)
    return r


def svg_plot(series: dict[str, list[tuple[float, float, bool]]], title: str) -> str:
    """Latency over time, one line per tool, keyframes as dots: a small self-made SVG."""
    W, H, L, R, T, B = 900, 320, 55, 150, 30, 40
    colours = {"rs": "#d62728", "go": "#1f77b4", "floor": "#7f7f7f"}
    names = {"rs": "ours", "go": "Go tool", "floor": "floor (no network)"}
    xmax = max((s[-1][0] for s in series.values() if s), default=1.0) or 1.0
    ymax = max((p[1] for s in series.values() for p in s), default=1.0)
    ymax = max(50.0, float(np.ceil(ymax / 50.0) * 50))

    def x(t: float) -> float:
        return L + (W - L - R) * t / xmax

    def y(v: float) -> float:
        return H - B - (H - T - B) * min(v, ymax) / ymax

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
         f'font-size="12"><rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="18" font-size="14">{title}</text>']
    step = 50 if ymax <= 300 else 100
    for v in range(0, int(ymax) + 1, step):
        o.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                 f'<text x="{L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for s in range(0, int(xmax) + 1, 5):
        o.append(f'<text x="{x(s):.1f}" y="{H - B + 16}" text-anchor="middle">{s}</text>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 6}" text-anchor="middle">seconds since the '
             'viewer\'s first frame</text>')
    o.append(f'<text x="14" y="{(T + H - B) / 2}" transform="rotate(-90 14 {(T + H - B) / 2})" '
             'text-anchor="middle">age when decoded, ms</text>')
    for k, (tool, pts) in enumerate(series.items()):
        c = colours.get(tool, "#2ca02c")
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v, _ in pts)
        o.append(f'<polyline fill="none" stroke="{c}" stroke-width="1" points="{path}"/>')
        for t, v, key in pts:
            if key:
                o.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3.5" fill="{c}"/>')
        ly = T + 14 + 18 * k
        o.append(f'<line x1="{W - R + 10}" x2="{W - R + 30}" y1="{ly - 4}" y2="{ly - 4}" stroke="{c}" '
                 f'stroke-width="2"/><text x="{W - R + 36}" y="{ly}">{names.get(tool, tool)}</text>')
    ly = T + 14 + 18 * len(series)
    o.append(f'<circle cx="{W - R + 20}" cy="{ly - 4}" r="3.5" fill="#555"/>'
             f'<text x="{W - R + 36}" y="{ly}">keyframe</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def run(ctx: Any, b: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    names = ctx.args.latency_scene_list
    for name in names:
        for i in range(ctx.args.runs):
            for tool in ["floor"] + ctx.tools:
                r = run_floor(ctx, b, name, i) if tool == "floor" else run_tool(ctx, b, name, tool, i)
                rows.append(r)
                a, k = r.get("all") or {}, r.get("key") or {}
                rx = r.get("receiver") or {}
                b.log(f"latency {name} run {i} {tool}: p50 {a.get('p50')} p95 {a.get('p95')} "
                      f"p99 {a.get('p99')} max {a.get('max')} ms over {a.get('n')} frames; "
                      f"keyframes p50 {k.get('p50')} max {k.get('max')} ms ({r.get('keyframes')}); "
                      f"viewer's jitter buffer {rx.get('jitter_buffer_ms')} ms, decode "
                      f"{rx.get('decode_ms')} ms, nacks {rx.get('nacks')} {r.get('error', '')}")
        firsts = {r["tool"]: r["series"] for r in rows
                  if r["scene"] == name and r["run"] == 0 and r.get("series")}
        if firsts:
            scene, w, h, kbps = SCENES[name]
            svg = ctx.run_dir / f"latency-{name}.svg"
            svg.write_text(svg_plot(firsts, f"{scene} scene, {w}x{h}, {kbps // 1000} Mbit/s: "
                                            "age of each decoded frame (first run)"))
            b.log(f"latency plot: {svg}")
    for r in rows:
        r.pop("series", None)  # plotted; too long for the results file
    return rows


def summarize(rows: list[dict[str, Any]], median: Any) -> dict[str, Any]:
    """Per scene and tool: the median over runs of each percentile, and its spread."""
    out: dict[str, Any] = {}
    for r in rows:
        out.setdefault(r["scene"], {}).setdefault(r["tool"], []).append(r)
    s: dict[str, Any] = {}
    for scene, tools in out.items():
        for tool, rs in tools.items():
            d: dict[str, Any] = {"runs": len(rs)}
            for part in ("all", "key", "after_key"):
                for q in ("p50", "p95", "p99", "max"):
                    xs = [r[part][q] for r in rs if r.get(part)]
                    if xs:
                        d[f"{part}.{q}"] = median(xs)
                        d[f"{part}.{q}.range"] = [min(xs), max(xs)]
            for key in ("jitter_buffer_ms", "decode_ms", "nacks"):
                xs = [r["receiver"][key] for r in rs if r.get("receiver")]
                if xs:
                    d[f"receiver.{key}"] = median(xs)
            s.setdefault(scene, {})[tool] = d
    return s


def markdown(summary: dict[str, Any]) -> list[str]:
    L = ["", "Glass to glass (ms from the frame made to the viewer's decoded frame; median of runs "
         "of each percentile; `floor`: encoded and decoded on the machine, no network):", "",
         "| scene | tool | p50 | p95 | p99 | max | keyframes p50 / max | 5 after a keyframe p50 / max "
         "| viewer: jitter buffer / decode (mean) |",
         "|---|---|---|---|---|---|---|---|---|"]
    for scene, tools in summary.items():
        for tool in ("floor", "rs", "go"):
            d = tools.get(tool)
            if not d:
                continue

            def g(k: str) -> str:
                v = d.get(k)
                return "–" if v is None else f"{v:.0f}"

            rx = (f"{g('receiver.jitter_buffer_ms')} / {g('receiver.decode_ms')}"
                  if d.get("receiver.jitter_buffer_ms") is not None else "–")
            L.append(f"| {scene} | {tool} | {g('all.p50')} | {g('all.p95')} | {g('all.p99')} | "
                     f"{g('all.max')} | {g('key.p50')} / {g('key.max')} | "
                     f"{g('after_key.p50')} / {g('after_key.max')} | {rx} |")
    return L

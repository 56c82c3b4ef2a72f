#!/usr/bin/env python3
"""Start-up timeline: where the time from process spawn to the first decoded frame goes.

Run it through `scripts/bench-timeline`. One livekit-server 1.13.5 on 127.0.0.1 (bench.py's
loopback config, but with `logging: {level: debug}`), and per run: a subscriber
(tests/subscriber/subscriber.py --print-events) joins a fresh room, then ONE publisher is
spawned (ours, then the Go tool, alternating) with the Go README's 720p H.264 + Opus pipeline.
Every milestone is a CLOCK_REALTIME wall-clock time read from a log:

  ours      its tracing log (GST_PUBLISHER_LOG=gstreamer_publisher=trace; RFC 3339, µs, UTC)
  Go        its own log (zap console, ms, UTC; it always logs at info level, --verbose does
            nothing), which gives pion's signalling/ICE/DTLS states and "published track"
  server    livekit-server's debug log (zap console, ms, UTC), filtered by room and identity
  sub       the subscriber's events (time.time(), 0.1 ms)

and is printed in ms since the spawn (time.time() just before Popen). With --runs N the table
shows the median of each milestone over the runs that have it (n is shown when some lack it).
Logs and the raw JSON go to tools/bench-results/timeline-<time>/.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402  (spawn/stop/kill helpers, Server, Subscriber, pipelines)

ROOT = B.ROOT
PIPELINE = B.STARTUP_PIPELINE
TOOLS = {"rs": "ours", "go": "Go"}

# ------------------------------------------------------------------------------ log parsing

_ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z")


def iso_ts(s: str) -> float | None:
    m = _ISO.match(s)
    if not m:
        return None
    return dt.datetime.fromisoformat(m.group(1)).replace(tzinfo=dt.timezone.utc).timestamp()


def zap_lines(path: Path) -> list[tuple[float, str, str, dict[str, Any]]]:
    """zap console lines (livekit-server, the Go tool): (time, caller, message, fields)."""
    out = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        t = iso_ts(line)
        if t is None:
            continue
        parts = line.split("\t", 5)
        if len(parts) < 5:
            continue
        fields: dict[str, Any] = {}
        if len(parts) == 6:
            try:
                fields = json.loads(parts[5])
            except json.JSONDecodeError:
                fields = {"_raw": parts[5]}
        out.append((t, parts[3], parts[4], fields))
    return out


def ours_lines(path: Path) -> list[tuple[float, str, str]]:
    """Our tracing fmt lines: (time, level, rest of the first line plus continuation lines)."""
    out: list[tuple[float, str, str]] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        t = iso_ts(line)
        if t is None:
            if out:  # a continuation (the SDP of an offer/answer)
                t0, lvl, msg = out[-1]
                out[-1] = (t0, lvl, msg + "\n" + line)
            continue
        rest = line.split(" ", 1)[1].lstrip() if " " in line else ""
        lvl, _, msg = rest.partition(" ")
        out.append((t, lvl, msg.strip()))
    return out


def first(items: list[Any], pred: Callable[[Any], bool], after: float = 0.0) -> float | None:
    ts = [it[0] for it in items if it[0] >= after and pred(it)]
    return min(ts) if ts else None


def rtpmap(sdp: str) -> dict[int, str]:
    return {int(pt): name for pt, name in re.findall(r"a=rtpmap:(\d+) ([^/\s]+)/", sdp)}


# ------------------------------------------------------------------------------ milestones

# (key, label, source). Keys starting with "rs." / "go." exist for one tool only.
ROWS: list[tuple[str, str, str]] = [
    ("pub.first_log", "publisher's first log line", "pub"),
    ("rs.playing", "pipeline built, set to PLAYING", "pub"),
    ("go.found_source", "pipeline built, sources found (PLAYING comes after the join)", "pub"),
    ("rs.ws_start", "WebSocket connect starts", "pub"),
    ("srv.ws", "server: signal connection opened", "server"),
    ("srv.join_sent", "server: join response sent", "server"),
    ("rs.ws_up", "WebSocket up", "pub"),
    ("rs.join", "join response received", "pub"),
    ("rs.pc_start", "publisher PC: creation starts (str0m Rtc + DTLS certificate)", "pub"),
    ("rs.rtc_built", "publisher PC: str0m Rtc built", "pub"),
    ("rs.pc_created", "publisher PC: host sockets bound", "pub"),
    ("pub.offer1", "first offer made (data channels)", "pub"),
    ("srv.offer1", "server: first offer received", "server"),
    ("pub.answer1", "first answer applied", "pub"),
    ("pub.ice", "ICE connected", "pub"),
    ("srv.ice", "server: ICE connected", "server"),
    ("pub.dtls", "DTLS connected", "pub"),
    ("srv.dtls", "server: peer connection connected (DTLS)", "server"),
    ("rs.dc_open", "data channel _reliable open", "pub"),
    ("rs.video_caps", "video encoder's caps known (x264enc running; pipeline thread)", "pub"),
    ("rs.video_found", "... the run loop takes the video output in", "pub"),
    ("rs.first_video_frame", "first encoded video frame reaches the session", "pub"),
    ("pub.addtrack_video", "AddTrackRequest (video) sent", "pub"),
    ("srv.addtrack_video", "server: AddTrackRequest (video) received", "server"),
    ("pub.trackpublished_video", "TrackPublishedResponse (video) received", "pub"),
    ("go.playing", "pipeline set to PLAYING (after both PublishTrack calls)", "pub"),
    ("pub.offer_video", "offer with the video section made", "pub"),
    ("srv.offer_video", "server: offer with the video section received", "server"),
    ("pub.answer_video", "answer for it applied", "pub"),
    ("srv.track_published", "server: mediaTrack published (video)", "server"),
    ("rs.video_live", "video track live (first keyframe asked)", "pub"),
    ("rs.first_keyframe_routed", "first keyframe written to str0m", "pub"),
    ("rs.first_rtp_video", "first video RTP packet sent", "pub"),
    ("rs.first_video_frame_sent", "first video frame's last packet sent", "pub"),
    ("srv.first_rtp_video", "server: first video RTP received", "server"),
    ("sub.track_published", "subscriber: track_published (video)", "sub"),
    ("srv.sub_offer", "server: subscriber's offer received (after the video track)", "server"),
    ("srv.downtrack_bound", "server: subscriber's video downtrack bound", "server"),
    ("srv.pli", "server: first PLI to the publisher (layer lock)", "server"),
    ("rs.pli_answered", "keyframe request accepted after the downtrack bound", "pub"),
    ("rs.keyframe_after_pli", "keyframe routed after that request", "pub"),
    ("rs.kf_after_bound", "first keyframe routed after the downtrack bound", "pub"),
    ("rs.kf_after_bound_sent", "... its last packet sent (after the pacer)", "pub"),
    ("srv.keyframe_forwarded", "server: first keyframe forwarded to the subscriber", "server"),
    ("sub.track_subscribed", "subscriber: track_subscribed (video)", "sub"),
    ("sub.first_audio", "subscriber: first decoded audio frame", "sub"),
    ("sub.first_video", "subscriber: FIRST DECODED VIDEO FRAME", "sub"),
]
# not milestones in time order, but counts/notes for the report
EXTRA_KEYS = ["rs.plis_ignored", "srv.plis_before_forward", "rs.pacer_p50_ms", "rs.pacer_max_ms"]


def server_milestones(path: Path, room: str, pub_id: str, sub_id: str, t0: float) -> dict[str, float | None]:
    lines = [ln for ln in zap_lines(path) if ln[0] >= t0 - 1 and
             (ln[3].get("room") == room or room in ln[3].get("_raw", ""))]

    def who(f: dict[str, Any]) -> str:
        return f.get("participant", "")

    pub = [ln for ln in lines if who(ln[3]) == pub_id]
    sub = [ln for ln in lines if who(ln[3]) == sub_id]
    m: dict[str, float | None] = {}
    m["srv.ws"] = first(pub, lambda ln: ln[2] in ("starting signal connection", "join request validated"))
    m["srv.join_sent"] = first(pub, lambda ln: ln[2] == "sent signal response"
                               and "join" in (ln[3].get("response") or {}))
    offers = sorted(ln[0] for ln in pub if ln[2] == "received offer" and ln[3].get("transport") == "PUBLISHER")
    m["srv.offer1"] = offers[0] if offers else None
    m["srv.ice"] = first(pub, lambda ln: ln[2] == "ice connection state change"
                         and ln[3].get("state") == "connected" and ln[3].get("transport") == "PUBLISHER")
    m["srv.dtls"] = first(pub, lambda ln: ln[2] == "peer connection state change"
                          and ln[3].get("state") == "connected" and ln[3].get("transport") == "PUBLISHER")
    m["srv.addtrack_video"] = first(pub, lambda ln: ln[2] == "add track request"
                                    and (ln[3].get("request") or {}).get("type") == "VIDEO")
    m["srv.offer_video"] = first(pub, lambda ln: ln[2] == "received offer" and ln[3].get("transport") == "PUBLISHER"
                                 and "m=video" in json.dumps(ln[3].get("offer", "")))
    pubd = [ln for ln in pub if ln[2] == "mediaTrack published" and ln[3].get("kind") == "video"]
    m["srv.track_published"] = min(ln[0] for ln in pubd) if pubd else None
    track = pubd[0][3].get("trackID") if pubd else None
    m["srv.first_rtp_video"] = first(pub, lambda ln: ln[2] == "rtp receiver stream start"
                                     and str(ln[3].get("mime", "")).startswith("video"))
    if track:
        tp = m["srv.track_published"] or 0.0
        m["srv.sub_offer"] = first(sub, lambda ln: ln[2] == "received offer", after=tp)
        m["srv.downtrack_bound"] = first(sub, lambda ln: ln[2] == "downtrack bound" and ln[3].get("trackID") == track)
        m["srv.pli"] = first(pub, lambda ln: ln[2] == "send pli" and ln[3].get("trackID") == track)
        m["srv.keyframe_forwarded"] = first(sub, lambda ln: ln[2] == "forwarded key frame"
                                            and ln[3].get("trackID") == track)
        fwd = m["srv.keyframe_forwarded"]
        m["srv.plis_before_forward"] = float(sum(
            1 for ln in sub if ln[2] == "sending PLI for layer lock" and ln[3].get("trackID") == track
            and (fwd is None or ln[0] <= fwd)))
    return m


def ours_milestones(path: Path, downtrack_bound: float | None) -> dict[str, float | None]:
    lines = ours_lines(path)
    m: dict[str, float | None] = {}
    m["pub.first_log"] = lines[0][0] if lines else None

    def has(s: str) -> Callable[[Any], bool]:
        return lambda ln: s in ln[2]

    m["rs.playing"] = first(lines, has("going to PLAYING"))
    m["rs.ws_start"] = first(lines, has("connecting step=Resolve"))
    m["rs.ws_up"] = first(lines, lambda ln: ln[2].startswith("connected to "))
    m["rs.join"] = first(lines, lambda ln: ln[2] == "join response")
    m["rs.pc_start"] = first(lines, lambda ln: "creating the peer connection" in ln[2] and "Publisher" in ln[2])
    m["rs.rtc_built"] = first(lines, lambda ln: "str0m Rtc built" in ln[2] and "Publisher" in ln[2])
    m["rs.pc_created"] = first(lines, lambda ln: "host UDP sockets bound" in ln[2] and "Publisher" in ln[2])
    m["pub.offer1"] = first(lines, has("publisher offer:"))
    m["pub.answer1"] = first(lines, has("publisher answer:"))
    m["pub.ice"] = first(lines, lambda ln: ln[2].startswith("ICE Connected") and "Publisher" in ln[2])
    m["pub.dtls"] = first(lines, lambda ln: ln[2].startswith("DTLS connected") and "Publisher" in ln[2])
    m["rs.dc_open"] = first(lines, has("data channel _reliable open"))
    # which output is the video one, and its element
    # The pipeline's OutputAdded line names the video element; the session's id of the video
    # output (not always the pipeline's) is the one whose first keyframe was awaited.
    pipe_ids, video_el = set(), None
    for _, _, msg in lines:
        mm = re.search(r'OutputAdded\(Output \{ id: (OutputId\(\d+\)), element: "([^"]+)", pad: "[^"]*", codec: (\w+)', msg)
        if mm and mm.group(3) in ("H264", "Vp8", "Vp9", "Av1"):
            pipe_ids.add(mm.group(1))
            video_el = mm.group(2)
    video_ids = {mm.group(1) for _, _, msg in lines
                 if (mm := re.search(r"first keyframe of the live track routed output=(OutputId\(\d+\))", msg))}
    video_ids = video_ids or pipe_ids
    m["rs.video_caps"] = first(lines, lambda ln: "OutputAdded(Output" in ln[2]
                               and any(f"id: {v}," in ln[2] for v in pipe_ids))
    m["rs.video_found"] = first(lines, lambda ln: ln[2].startswith("found output") and " video " in ln[2])
    is_video = (lambda ln: any(f"output={v}" in ln[2] for v in video_ids))
    m["rs.first_video_frame"] = first(lines, lambda ln: "frame from the pipeline" in ln[2] and is_video(ln))
    if video_el:
        m["pub.addtrack_video"] = first(lines, has(f"{video_el}: AddTrackRequest sent"))
        m["pub.trackpublished_video"] = first(lines, lambda ln: ln[2].startswith(f"{video_el}: TrackPublishedResponse"))
        m["rs.video_live"] = first(lines, has(f"{video_el}.src is live as track"))
    m["pub.offer_video"] = first(lines, lambda ln: "publisher offer:" in ln[2] and "m=video" in ln[2])
    ov = m["pub.offer_video"]
    m["pub.answer_video"] = first(lines, has("publisher answer:"), after=ov) if ov else None
    m["rs.first_keyframe_routed"] = first(lines, lambda ln: "first keyframe of the live track routed" in ln[2]
                                          and is_video(ln))
    # the video payload types, from the answer that has the video section
    pts: set[int] = set()
    for t, _, msg in lines:
        if "publisher answer:" in msg and "m=video" in msg:
            video_part = msg[msg.index("m=video"):]
            pts = {pt for pt, name in rtpmap(video_part).items() if name.upper() in ("H264", "VP8", "VP9", "AV1")}
            break

    def rtp(ln: Any, what: str) -> bool:
        mm = re.search(r"pt=(\d+)", ln[2])
        return what in ln[2] and "pc=Publisher" in ln[2] and bool(mm) and int(mm.group(1)) in pts

    first_pkt = [ln for ln in lines if rtp(ln, "first RTP packet sent")]
    # Each routed video frame ends with one packet with the marker bit on the video SSRC: the
    # k-th routed frame (from the first keyframe of the live track on) is the k-th such packet.
    ssrcs = {re.search(r"ssrc=(\d+)", ln[2]).group(1) for ln in first_pkt}
    routed_from = m["rs.first_keyframe_routed"]
    frames = [ln for ln in lines if "frame from the pipeline" in ln[2] and is_video(ln)]
    if routed_from is not None:
        k0 = max((k for k, ln in enumerate(frames) if ln[0] <= routed_from), default=None)
        frames = frames[k0:] if k0 is not None else []
    else:
        frames = []
    ends = [ln[0] for ln in lines if "RTP packet with the marker bit sent" in ln[2]
            and "first RTP" not in ln[2] and any(f"ssrc={x} " in ln[2] + " " for x in ssrcs)]
    pairs = list(zip(frames, ends))
    if pairs:
        delays = [(e - f[0]) * 1000 for f, e in pairs if f[0] <= routed_from + 1.0]
        m["rs.pacer_p50_ms"] = round(statistics.median(delays), 1)
        m["rs.pacer_max_ms"] = round(max(delays), 1)
        if downtrack_bound is not None:
            kf = [(f, e) for f, e in pairs if f[0] >= downtrack_bound and "keyframe=true" in f[2]]
            if kf:
                m["rs.kf_after_bound"], m["rs.kf_after_bound_sent"] = kf[0][0][0], kf[0][1]
    m["rs.first_rtp_video"] = min((ln[0] for ln in first_pkt), default=None)
    marker = [ln for ln in lines if rtp(ln, "first RTP packet with the marker bit sent")
              or (rtp(ln, "first RTP packet sent") and "marker=true" in ln[2])]
    m["rs.first_video_frame_sent"] = min((ln[0] for ln in marker), default=None)
    if downtrack_bound is not None and video_el:
        asked = first(lines, has(f"{video_el}: keyframe requested"), after=downtrack_bound)
        m["rs.pli_answered"] = asked
        m["rs.keyframe_after_pli"] = (first(lines, lambda ln: "keyframe routed" in ln[2] and is_video(ln), after=asked)
                                      if asked else None)
        fwd_end = asked if asked else float("inf")
        m["rs.plis_ignored"] = float(sum(1 for ln in lines if downtrack_bound <= ln[0] <= fwd_end
                                         and f"{video_el}: keyframe request ignored" in ln[2]))
    return m


def go_milestones(path: Path) -> dict[str, float | None]:
    lines = zap_lines(path)
    m: dict[str, float | None] = {}
    m["pub.first_log"] = lines[0][0] if lines else None
    m["go.found_source"] = first(lines, lambda ln: ln[2] == "found source")
    offers = sorted(ln[0] for ln in lines if ln[2] == "signaling state changed to have-local-offer")
    stables = sorted(ln[0] for ln in lines if ln[2] == "signaling state changed to stable")
    m["pub.offer1"] = offers[0] if offers else None
    m["pub.answer1"] = stables[0] if stables else None
    m["pub.ice"] = first(lines, lambda ln: ln[2] == "ICE connection state changed: connected")
    m["pub.dtls"] = first(lines, lambda ln: ln[2] == "peer connection state changed: connected")
    m["pub.trackpublished_video"] = first(lines, lambda ln: ln[2] == "published track"
                                          and ln[3].get("source") == "CAMERA")
    pubs = [ln[0] for ln in lines if ln[2] == "published track"]
    m["go.playing"] = max(pubs) if pubs else None  # p.pipeline.Start() follows the last PublishTrack
    tp = m["pub.trackpublished_video"]
    if tp is not None:
        m["pub.offer_video"] = min((t for t in offers if t >= tp), default=None)
        ov = m["pub.offer_video"]
        m["pub.answer_video"] = min((t for t in stables if ov is not None and t >= ov), default=None)
    return m


def sub_milestones(rep: dict[str, Any], pub_id: str) -> dict[str, float | None]:
    evs = [e for e in rep.get("events", []) if e.get("identity") in (pub_id, None) and e.get("t_wall")]

    def ev(pred: Callable[[dict[str, Any]], bool]) -> float | None:
        ts = [e["t_wall"] for e in evs if pred(e)]
        return min(ts) if ts else None

    return {
        "sub.track_published": ev(lambda e: e["type"] == "track_published" and e.get("kind") == "video"),
        "sub.track_subscribed": ev(lambda e: e["type"] == "track_subscribed" and e.get("kind") == "video"),
        "sub.first_audio": ev(lambda e: e["type"] == "first_frame" and e.get("kind") == "audio"),
        "sub.first_video": ev(lambda e: e["type"] == "first_frame" and e.get("kind") == "video"),
    }


# ------------------------------------------------------------------------------ one run

def run_once(tool: str, i: int, binary: Path, server: B.Server, run_dir: Path,
             pipeline: str = PIPELINE) -> dict[str, Any]:
    room = f"timeline-{tool}-{i}-{secrets.token_hex(3)}"
    pub_id = f"pub-{tool}"
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    sub = B.Subscriber(server, room, logs / f"{i}-{tool}-sub.log", duration=20, wait_tracks=2, exit_after=1)
    if not sub.wait_connected():
        sub.kill()
        return {"tool": tool, "run": i, "error": "subscriber did not connect"}
    time.sleep(0.3)
    env = B.child_env()
    argv = [str(binary), "--url", server.url, "--token", server.token(room, pub_id)]
    if tool == "rs":
        env["GST_PUBLISHER_LOG"] = "gstreamer_publisher=trace"
    argv += ["--"] + pipeline.split()
    pub_log = logs / f"{i}-{tool}-pub.log"
    with open(pub_log, "wb") as f:
        t0 = time.time()
        proc = B.spawn(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
    rep = sub.result(timeout=25)
    alive = proc.poll() is None
    code = B.stop_child(proc, grace=5)
    time.sleep(0.3)  # let the server's log catch up
    srv = server_milestones(server.log, room, pub_id, "bench-sub", t0)
    m = ours_milestones(pub_log, srv.get("srv.downtrack_bound")) if tool == "rs" else go_milestones(pub_log)
    m.update(srv)
    m.update(sub_milestones(rep, pub_id))
    rel = {k: (round((v - t0) * 1000, 1) if k not in EXTRA_KEYS else v)
           for k, v in m.items() if v is not None}
    r: dict[str, Any] = {"tool": tool, "run": i, "room": room, "t_spawn": t0, "ms": rel,
                         "publisher_alive_at_end": alive, "publisher_exit": code}
    if "sub.first_video" not in rel:
        r["error"] = "no video frame decoded"
    return r


# ------------------------------------------------------------------------------ report

def table(results: list[dict[str, Any]], tools: list[str]) -> str:
    ok = {t: [r for r in results if r["tool"] == t and "error" not in r] for t in tools}

    def med(t: str, key: str) -> tuple[float | None, int]:
        xs = [r["ms"][key] for r in ok[t] if key in r["ms"]]
        return (statistics.median(xs) if xs else None), len(xs)

    def cell(t: str, key: str) -> str:
        v, n = med(t, key)
        if v is None:
            return "–"
        s = f"{v:.0f}"
        if n < len(ok[t]):
            s += f" (n={n})"
        return s

    hdr = "| milestone (ms since spawn, median) | source | " + " | ".join(
        f"{TOOLS[t]} (n={len(ok[t])})" for t in tools) + " |"
    out = [hdr, "|---|---|" + "---|" * len(tools)]
    for key, label, src in ROWS:
        if key.startswith(("rs.", "go.")) and key[:2] not in tools:
            continue
        cells = [cell(t, key) if not key.startswith(("rs.", "go.")) or key[:2] == t else "" for t in tools]
        if all(c in ("–", "") for c in cells):
            continue
        out.append(f"| {label} | {src} | " + " | ".join(cells) + " |")
    notes = []
    for t in tools:
        for k, what in (("rs.plis_ignored", "server PLIs ignored by our 500 ms keyframe-request spacing "
                         "between the downtrack bound and the accepted request"),
                        ("srv.plis_before_forward", "PLIs the server sent before it forwarded a keyframe"),
                        ("rs.pacer_p50_ms", "video frames' delay from the session to their last packet "
                         "on the wire (str0m's pacer), first second of the live track, median"),
                        ("rs.pacer_max_ms", "... and the largest")):
            xs = [r["ms"][k] for r in ok[t] if k in r["ms"]]
            if xs:
                notes.append(f"{TOOLS[t]}: {what}: per run {', '.join(f'{x:.0f}' for x in xs)}")
    return "\n".join(out) + ("\n\n" + "\n".join(f"* {n}" for n in notes) if notes else "")


def per_run(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        ms = r.get("ms", {})
        out.append(f"run {r['run']} {TOOLS[r['tool']]}: first video {ms.get('sub.first_video', '–')} ms, "
                   f"subscribed {ms.get('sub.track_subscribed', '–')}, server track published "
                   f"{ms.get('srv.track_published', '–')}, keyframe forwarded {ms.get('srv.keyframe_forwarded', '–')}"
                   + (f"  [{r['error']}]" if r.get("error") else ""))
    return "\n".join(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs per tool (default 5); medians are printed")
    p.add_argument("--skip-go", action="store_true", help="only this project")
    p.add_argument("--build", action="store_true", help="cargo build --release first (default: use "
                   "target/release/gstreamer-publisher as it is)")
    p.add_argument("--binary", default=None, help="our binary (default target/release/gstreamer-publisher)")
    p.add_argument("--go-binary", default=str(B.GO_BIN), help="the Go tool (default tools/bin/gstreamer-publisher-go)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed first start of each tool")
    p.add_argument("--build-timeout", type=float, default=1800)
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument("--pipeline", default=PIPELINE, help="the pipeline both tools publish (default: the Go "
                   "README's 720p H.264 + Opus example with format=I420 pinned, as scripts/bench uses)")
    a = p.parse_args(argv)
    a.no_build = not a.build
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, B._on_signal)
    atexit.register(B.kill_all_children)

    def watchdog(_s: int, _f: Any) -> None:
        raise KeyboardInterrupt("watchdog")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(int(120 + args.runs * 2 * 40))

    started = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = B.RESULTS_DIR / f"timeline-{started}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not B.LK_BIN.exists():
        B.die(f"{B.LK_BIN} not found — run scripts/setup first")
    bins: dict[str, Path] = {}
    if args.binary:
        snap = run_dir / "gstreamer-publisher"
        shutil.copy2(args.binary, snap)
        meta = {"binary": args.binary}
    else:
        snap, meta = B.build_ours(args, run_dir, run_dir / "build.log")  # a private copy
    bins["rs"] = snap
    if b"DTLS connected" not in snap.read_bytes():
        B.log("note: our binary lacks the start-up debug lines (src/rtc, src/session): "
              "some of our milestones will be missing")
    if not args.skip_go:
        go = Path(args.go_binary)
        if not go.exists():
            B.die(f"{go} not found (scripts/bench builds it) — or use --skip-go")
        bins["go"] = go
    tools = [t for t in ("rs", "go") if t in bins]
    B.log(f"logs in {run_dir.relative_to(ROOT)}; ours: {meta}")
    server = B.Server(run_dir, log_level="debug")
    results: list[dict[str, Any]] = []
    try:
        if not args.no_warmup:
            for t in tools:
                r = run_once(t, -1, bins[t], server, run_dir, args.pipeline)
                B.log(f"warm-up {TOOLS[t]}: first video {r['ms'].get('sub.first_video', '–') if 'ms' in r else r}")
        for i in range(args.runs):
            for t in tools:
                r = run_once(t, i, bins[t], server, run_dir, args.pipeline)
                results.append(r)
                B.log(per_run([r]))
    finally:
        server.stop()
        if bins["rs"].parent == run_dir:
            bins["rs"].unlink(missing_ok=True)
        raw = {"started": started, "pipeline": args.pipeline, "ours": meta, "load": B.load_avg(),
               "results": results}
        out = Path(args.json) if args.json else run_dir / "timeline.json"
        out.write_text(json.dumps(raw, indent=1, default=str) + "\n")
        B.log(f"raw results: {out}")
    print(f"Pipeline: `{args.pipeline}`\n")
    print(table(results, tools))
    print("\nPer run:\n" + per_run(results))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except B.BenchError as e:
        B.log(f"ERROR: {e}")
        B.kill_all_children()
        sys.exit(1)
    except KeyboardInterrupt as e:
        B.log(f"interrupted ({e}); killing children")
        B.kill_all_children()
        sys.exit(130)

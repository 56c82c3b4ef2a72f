#!/usr/bin/env python3
"""Independent LiveKit subscriber for gstreamer-publisher's end-to-end tests.

It joins a room with LiveKit's official Python SDK (`livekit`, which wraps
libwebrtc), auto-subscribes to every track, decodes every frame, and prints ONE
JSON object on stdout when it ends. Logs go to stderr only.

    subscriber.py --url ws://127.0.0.1:PORT --api-key K --api-secret S --room R
                  [--identity sub] [--duration SECONDS]
                  [--wait-tracks N] [--exit-after-frames N] [--print-events]
                  [--frame-log PATH [--frame-log-edge] [--frame-log-code]]

Times (`*_seconds`, `t`) are seconds since this process started (monotonic);
`*_t_wall` fields are unix times (float) so a test can relate them to its own clock.

--frame-log PATH (optional; off by default) writes one JSON line per decoded video frame
(the publisher's frames only: not the server's blank frames, not frames decoded after an
unsubscribe), written as the frame arrives:
    {"sid": track sid, "wall": unix time of arrival, "mono": this process's monotonic
     seconds (the `t` clock above), "ts_us": the SDK's VideoFrameEvent.timestamp_us,
     "w": width, "h": height}
With --frame-log-edge each line also has "edge_x": the column (in pixels of a 1280-wide
picture) of the strongest dark-to-bright step in rows 80-120 of 720, and "edge_step": that
step's height in luma levels. For `videotestsrc pattern=smpte horizontal-speed=N` that step is
the scrolled picture's seam, at (-N * frame index) mod 1280: the frame's index, i.e. its
capture time, read from the picture itself (scripts/bench-constrained uses it to tell how far
behind real time the frames are; timestamp_us is the receiver's own render time).
With --frame-log-code each line also has "code_ms" and "code_n": the wall-clock time code and
frame number drawn into the picture by tests/subscriber/timecode.py (its source, for
`scripts/bench --scenarios latency`), or null where the picture holds no readable code;
"wall" minus "code_ms" is the frame's age when decoded (glass to glass, same machine). About
once a second it also writes a line {"sid", "wall", "receiver": {...}} of libwebrtc's inbound
statistics for the track (running totals: frames decoded, jitter-buffer delay and count, decode,
assembly and processing time), which tell where a frame's time went on the viewer's side.

Exit codes: 0 it ran (whatever it saw), 2 it could not connect (JSON has
"connected": false and "error"), 3 the hard timeout fired (JSON still printed,
with "hard_timeout": true), 4 bad usage / internal error.

Ends: after --duration seconds counted from the moment the connection was
established; earlier when --wait-tracks / --exit-after-frames are met (at
least N tracks each with at least M decoded frames: video frames for video
tracks, 10 ms audio frames for audio tracks; either option alone implies 1 for
the other); on SIGTERM/SIGINT; or when the room disconnects us. A watchdog
thread prints what it has and exits by itself if anything hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

T0_MONO = time.monotonic()


def now() -> float:
    return round(time.monotonic() - T0_MONO, 4)


def wall() -> float:
    return round(time.time(), 4)


log = logging.getLogger("subscriber")

# Sizes of the blank key frames livekit-server sends when it closes (or mutes) a
# subscriber's downtrack: VP8 8x8, H264 2x2. Never a real publisher's size here.
SERVER_BLANK_SIZES = {(8, 8), (2, 2)}

_output_lock = threading.Lock()
_output_done = False


def emit_result(obj: dict[str, Any], code: int) -> None:
    """Print the single JSON result and leave at once (native threads of the SDK
    must not be able to keep the process alive)."""
    global _output_done
    with _output_lock:
        if not _output_done:
            _output_done = True
            try:
                sys.stdout.write(json.dumps(obj) + "\n")
                sys.stdout.flush()
            except Exception:  # noqa: BLE001 - nothing better to do
                pass
            try:
                sys.stderr.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def seam_edge(data: Any, w: int, h: int) -> tuple[float, float]:
    """(column scaled to a 1280-wide picture, height) of the strongest dark-to-bright luma step
    across rows 80-120 of 720 (scaled), the left edge wrapping around (see --frame-log-edge)."""
    import numpy as np

    y = np.frombuffer(data, dtype=np.uint8, count=w * h).reshape(h, w)
    row = y[h * 80 // 720: max(h * 120 // 720, h * 80 // 720 + 1)].astype(np.int32).mean(axis=0)
    dif = np.diff(np.concatenate([row[-1:], row]))
    i = int(np.argmax(dif))
    return round(i * 1280 / w, 1), round(float(dif[i]), 1)


# Decoded frames the SDK's native stream holds while this process is busy. Its default is
# 1: a frame that comes while one waits is dropped, and two come together whenever a frame
# completed by a resend frees the one after it, so "frames" counted fewer than libwebrtc
# decoded (1-4 % of them over a 5 % lossy link).
VIDEO_QUEUE_FRAMES = 16


def open_video_stream(track: Any) -> Any:
    """`rtc.VideoStream(track)` with a native queue of VIDEO_QUEUE_FRAMES frames (the
    SDK's own request, as livekit 1.2.1 makes it, plus `queue_size_frames`)."""
    from livekit import rtc
    from livekit.rtc._ffi_client import FfiClient
    from livekit.rtc._proto import ffi_pb2, video_frame_pb2

    class QueuedVideoStream(rtc.VideoStream):
        def _create_owned_stream(self) -> Any:
            req = ffi_pb2.FfiRequest()
            new = req.new_video_stream
            new.track_handle = track._ffi_handle.handle
            new.type = video_frame_pb2.VideoStreamType.VIDEO_STREAM_NATIVE
            new.normalize_stride = True
            new.queue_size_frames = VIDEO_QUEUE_FRAMES
            return FfiClient.instance.request(req).new_video_stream.stream

    return QueuedVideoStream(track)


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    try:
        name = enum_type.Name(value)
    except Exception:  # noqa: BLE001
        return str(value)
    if name.startswith(prefix):
        name = name[len(prefix):]
    return name.lower()


class TrackStats:
    def __init__(self, sid: str, participant: str) -> None:
        self.sid = sid
        self.participant = participant
        self.kind = "unknown"
        self.mime = ""
        self.name = ""
        self.source = ""
        self.simulcasted = False
        # the publication's audio features as the server announces them ("no_dtx", "stereo")
        self.audio_features: list[str] = []
        self.published_seconds: float | None = None
        self.unpublished_seconds: float | None = None
        self.subscribed_seconds: float | None = None
        self.subscribed_t_wall: float | None = None
        self.unsubscribed_seconds: float | None = None
        self.subscriptions = 0
        self.subscribed = False
        self.published = True
        # decoded frames (video frames for video, 10 ms frames for audio)
        self.frames = 0
        self.first_frame_seconds: float | None = None
        self.first_frame_t_wall: float | None = None
        self.last_frame_seconds: float | None = None
        self.max_gap_seconds = 0.0
        # frames decoded after the track was unsubscribed (not counted above)
        self.late_frames = 0
        # livekit-server's blank flush frames (video only; not counted above)
        self.blank_frames = 0
        # video
        self.width = 0
        self.height = 0
        self.sizes: list[list[int]] = []
        self.buffer_types: list[str] = []
        self.first_timestamp_us: int | None = None
        self.last_timestamp_us: int | None = None
        self.luma_sum = 0.0
        self.luma_samples = 0
        self.last_luma_sample = -1.0
        # audio
        self.audio_samples = 0
        self.sample_rate = 0
        self.channels = 0
        self.sq_sum = 0.0
        self.sq_count = 0
        self.peak = 0.0
        self.silent_frames = 0

    def on_frame(self, t: float) -> float:
        """Book a decoded frame at time t; returns the gap to the previous one."""
        gap = 0.0
        if self.first_frame_seconds is None:
            self.first_frame_seconds = t
            self.first_frame_t_wall = wall()
        elif self.last_frame_seconds is not None:
            gap = t - self.last_frame_seconds
            if gap > self.max_gap_seconds:
                self.max_gap_seconds = gap
        self.last_frame_seconds = t
        self.frames += 1
        return gap

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "sid": self.sid,
            "participant": self.participant,
            "kind": self.kind,
            "mime": self.mime,
            "name": self.name,
            "source": self.source,
            "simulcasted": self.simulcasted,
            "audio_features": self.audio_features,
            "published": self.published,
            "subscribed": self.subscribed,
            "subscriptions": self.subscriptions,
            "published_seconds": self.published_seconds,
            "unpublished_seconds": self.unpublished_seconds,
            "subscribed_seconds": self.subscribed_seconds,
            "subscribed_t_wall": self.subscribed_t_wall,
            "unsubscribed_seconds": self.unsubscribed_seconds,
            "frames": self.frames,
            "first_frame_seconds": self.first_frame_seconds,
            "first_frame_t_wall": self.first_frame_t_wall,
            "last_frame_seconds": self.last_frame_seconds,
            "max_gap_seconds": round(self.max_gap_seconds, 4),
            "late_frames": self.late_frames,
            "blank_frames": self.blank_frames,
        }
        span = None
        if self.first_frame_seconds is not None and self.last_frame_seconds is not None:
            span = self.last_frame_seconds - self.first_frame_seconds
        if self.kind == "video":
            d.update(
                {
                    "width": self.width,
                    "height": self.height,
                    "sizes": self.sizes,
                    "buffer_types": self.buffer_types,
                    "fps": round((self.frames - 1) / span, 2) if span and self.frames > 1 else 0.0,
                    "first_timestamp_us": self.first_timestamp_us,
                    "last_timestamp_us": self.last_timestamp_us,
                    "luma_mean": round(self.luma_sum / self.luma_samples, 2)
                    if self.luma_samples
                    else None,
                }
            )
        elif self.kind == "audio":
            rate = self.sample_rate or 48000
            d.update(
                {
                    "audio_frames": self.frames,
                    "audio_samples": self.audio_samples,
                    "audio_seconds": round(self.audio_samples / rate, 3),
                    "sample_rate": self.sample_rate,
                    "channels": self.channels,
                    # RMS and peak of all decoded samples, full scale = 1.0
                    "rms": round((self.sq_sum / self.sq_count) ** 0.5, 5) if self.sq_count else 0.0,
                    "peak": round(self.peak, 5),
                    "silent_frames": self.silent_frames,
                }
            )
        return d


class Subscriber:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tracks: dict[str, TrackStats] = {}
        self.events: list[dict[str, Any]] = []
        self.connected = False
        self.connect_seconds: float | None = None
        self.connect_t_wall: float | None = None
        self.end_reason = ""
        self.error: str | None = None
        self.stop = asyncio.Event()
        self.tasks: dict[str, asyncio.Task] = {}
        # --frame-log: line-buffered, so every line is on disk even when the process
        # leaves through os._exit (emit_result, the watchdog)
        self.frame_log = open(args.frame_log, "w", buffering=1) if args.frame_log else None
        self.room_sid = ""
        self.wait_tracks = args.wait_tracks
        self.exit_after = args.exit_after_frames
        if self.wait_tracks is not None and self.exit_after is None:
            self.exit_after = 1
        if self.exit_after is not None and self.wait_tracks is None:
            self.wait_tracks = 1

    # ---------------------------------------------------------------- events
    def event(self, type_: str, **fields: Any) -> None:
        ev: dict[str, Any] = {"t": now(), "t_wall": wall(), "type": type_}
        ev.update(fields)
        self.events.append(ev)
        if self.args.print_events:
            try:
                sys.stderr.write("EVENT " + json.dumps(ev) + "\n")
                sys.stderr.flush()
            except Exception:  # noqa: BLE001
                pass

    def stats_for(self, sid: str, participant: str, publication: Any = None) -> TrackStats:
        st = self.tracks.get(sid)
        if st is None:
            st = TrackStats(sid, participant)
            self.tracks[sid] = st
        if publication is not None:
            self.fill_from_publication(st, publication)
        return st

    def fill_from_publication(self, st: TrackStats, pub: Any) -> None:
        from livekit import rtc

        try:
            st.kind = enum_name(rtc.TrackKind, pub.kind, "KIND_")
            st.mime = pub.mime_type or st.mime
            st.name = pub.name or st.name
            st.source = enum_name(rtc.TrackSource, pub.source, "SOURCE_")
            st.simulcasted = bool(pub.simulcasted)
            from livekit.rtc._proto import track_pb2
            st.audio_features = [enum_name(track_pb2.AudioTrackFeature, f, "TF_")
                                 for f in pub.audio_features]
        except Exception as e:  # noqa: BLE001
            log.warning("could not read publication info: %s", e)

    def check_done(self) -> None:
        if self.wait_tracks is None or self.exit_after is None:
            return
        ready = sum(1 for st in self.tracks.values() if st.frames >= self.exit_after)
        if ready >= self.wait_tracks and not self.stop.is_set():
            self.end_reason = "frames"
            self.stop.set()

    # ---------------------------------------------------------------- media
    async def read_video(self, track: Any, st: TrackStats) -> None:
        from livekit import rtc

        import numpy as np

        stream = open_video_stream(track)
        luma_types = {
            rtc.VideoBufferType.I420,
            rtc.VideoBufferType.I420A,
            rtc.VideoBufferType.I422,
            rtc.VideoBufferType.I444,
            rtc.VideoBufferType.NV12,
        }
        gen = st.subscriptions
        stats_logged = -1.0
        try:
            async for ev in stream:
                t = now()
                f = ev.frame
                if not st.subscribed or st.subscriptions != gen:
                    # decoded after the track was unsubscribed: not the publisher's
                    st.late_frames += 1
                    continue
                w, h = f.width, f.height
                if (w, h) in SERVER_BLANK_SIZES:
                    # livekit-server flushes a closing/muted downtrack with 0.2 s of
                    # blank key frames (VP8 8x8, H264 2x2; sfu/downtrack.go
                    # writeBlankFrameRTP): the server's frames, not the publisher's
                    if st.blank_frames == 0:
                        self.event("server_blank_frame", sid=st.sid, width=w, height=h)
                    st.blank_frames += 1
                    continue
                first = st.frames == 0
                gap = st.on_frame(t)
                if gap > 1.0:
                    # decoding resumed after a stall (network loss, server freeze)
                    self.event(
                        "video_resumed", sid=st.sid, kind="video", identity=st.participant,
                        gap_seconds=round(gap, 3),
                    )
                if [w, h] not in st.sizes:
                    st.sizes.append([w, h])
                if (w, h) != (st.width, st.height) and not first:
                    self.event("video_size_changed", sid=st.sid, width=w, height=h)
                st.width, st.height = w, h
                bt = enum_name(rtc.VideoBufferType, f.type, "")
                if bt not in st.buffer_types:
                    st.buffer_types.append(bt)
                if st.first_timestamp_us is None:
                    st.first_timestamp_us = ev.timestamp_us
                st.last_timestamp_us = ev.timestamp_us
                if self.frame_log is not None:
                    try:
                        line = {
                            "sid": st.sid, "wall": round(time.time(), 6),
                            "mono": round(time.monotonic() - T0_MONO, 6),
                            "ts_us": ev.timestamp_us, "w": w, "h": h,
                        }
                        if self.args.frame_log_edge and f.type in luma_types:
                            line["edge_x"], line["edge_step"] = seam_edge(f.data, w, h)
                        if self.args.frame_log_code and f.type in luma_types:
                            import timecode

                            y = np.frombuffer(f.data, dtype=np.uint8, count=w * h)
                            code = timecode.read(y.reshape(h, w))
                            line["code_ms"], line["code_n"] = code if code else (None, None)
                            if t - stats_logged >= 1.0:
                                stats_logged = t
                                asyncio.ensure_future(self.log_receiver_stats(track, st.sid))
                        self.frame_log.write(json.dumps(line) + "\n")
                    except Exception as e:  # noqa: BLE001 - a full disk must not stop decoding
                        log.warning("frame log: %s", e)
                        self.frame_log = None
                # mean luma, sampled about twice a second (cheap)
                if f.type in luma_types and t - st.last_luma_sample >= 0.5:
                    st.last_luma_sample = t
                    try:
                        y = np.frombuffer(f.data, dtype=np.uint8, count=w * h)
                        st.luma_sum += float(y[::61].mean())
                        st.luma_samples += 1
                    except Exception as e:  # noqa: BLE001
                        log.debug("luma sample failed: %s", e)
                if first:
                    self.event(
                        "first_frame", sid=st.sid, kind="video", identity=st.participant,
                        width=w, height=h,
                    )
                self.check_done()
        except asyncio.CancelledError:
            pass
        finally:
            try:
                await asyncio.wait_for(stream.aclose(), 2)
            except BaseException:  # noqa: BLE001
                pass

    async def log_receiver_stats(self, track: Any, sid: str) -> None:
        """One frame-log line of libwebrtc's receive statistics of `track` (with
        --frame-log-code): where a frame's time went on this side (jitter buffer, decoding),
        as running totals in seconds."""
        try:
            for s in await track.get_stats():
                if s.WhichOneof("stats") != "inbound_rtp":
                    continue
                i = s.inbound_rtp.inbound
                line = {"sid": sid, "wall": round(time.time(), 6), "receiver": {
                    "frames_decoded": i.frames_decoded,
                    "jitter_buffer_delay_s": i.jitter_buffer_delay,
                    "jitter_buffer_emitted": i.jitter_buffer_emitted_count,
                    "jitter_buffer_target_delay_s": i.jitter_buffer_target_delay,
                    "jitter_buffer_minimum_delay_s": i.jitter_buffer_minimum_delay,
                    "total_decode_time_s": i.total_decode_time,
                    "total_assembly_time_s": i.total_assembly_time,
                    "total_processing_delay_s": i.total_processing_delay,
                    "nack_count": i.nack_count, "pli_count": i.pli_count,
                }}
                if self.frame_log is not None:
                    self.frame_log.write(json.dumps(line) + "\n")
        except Exception as e:  # noqa: BLE001 - statistics are a bonus, never a failure
            log.debug("receiver statistics: %s", e)

    async def read_audio(self, track: Any, st: TrackStats) -> None:
        from livekit import rtc

        import numpy as np

        stream = rtc.AudioStream(
            track, sample_rate=self.args.audio_sample_rate, num_channels=self.args.audio_channels
        )
        gen = st.subscriptions
        stats_logged = -1.0
        try:
            async for ev in stream:
                t = now()
                f = ev.frame
                if not st.subscribed or st.subscriptions != gen:
                    st.late_frames += 1
                    continue
                first = st.frames == 0
                st.on_frame(t)
                st.sample_rate = f.sample_rate
                st.channels = f.num_channels
                st.audio_samples += f.samples_per_channel
                try:
                    a = np.frombuffer(f.data, dtype=np.int16).astype(np.float64) / 32768.0
                    if a.size:
                        sq = float(np.dot(a, a))
                        st.sq_sum += sq
                        st.sq_count += a.size
                        pk = float(np.max(np.abs(a)))
                        if pk > st.peak:
                            st.peak = pk
                        if pk < 1e-3:
                            st.silent_frames += 1
                except Exception as e:  # noqa: BLE001
                    log.debug("audio stats failed: %s", e)
                if first:
                    self.event(
                        "first_frame", sid=st.sid, kind="audio", identity=st.participant,
                        sample_rate=f.sample_rate, channels=f.num_channels,
                    )
                self.check_done()
        except asyncio.CancelledError:
            pass
        finally:
            try:
                await asyncio.wait_for(stream.aclose(), 2)
            except BaseException:  # noqa: BLE001
                pass

    # ---------------------------------------------------------------- room
    def attach(self, room: Any) -> None:
        from livekit import rtc

        @room.on("participant_connected")
        def _pc(p: Any) -> None:
            self.event("participant_connected", identity=p.identity, sid=p.sid)

        @room.on("participant_disconnected")
        def _pd(p: Any) -> None:
            self.event("participant_disconnected", identity=p.identity, sid=p.sid)

        @room.on("track_published")
        def _tp(pub: Any, p: Any) -> None:
            st = self.stats_for(pub.sid, p.identity, pub)
            st.published = True
            if st.published_seconds is None:
                st.published_seconds = now()
            self.event(
                "track_published", sid=pub.sid, identity=p.identity, kind=st.kind,
                mime=st.mime, name=st.name, source=st.source,
            )

        @room.on("track_unpublished")
        def _tu(pub: Any, p: Any) -> None:
            st = self.stats_for(pub.sid, p.identity)
            st.published = False
            st.unpublished_seconds = now()
            self.event("track_unpublished", sid=pub.sid, identity=p.identity, kind=st.kind)

        @room.on("track_subscribed")
        def _ts(track: Any, pub: Any, p: Any) -> None:
            st = self.stats_for(pub.sid, p.identity, pub)
            st.subscribed = True
            st.subscriptions += 1
            if st.subscribed_seconds is None:
                st.subscribed_seconds = now()
                st.subscribed_t_wall = wall()
            self.event(
                "track_subscribed", sid=pub.sid, identity=p.identity, kind=st.kind,
                mime=st.mime, name=st.name,
            )
            old = self.tasks.pop(pub.sid, None)
            if old is not None:
                old.cancel()
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                if self.args.video_quality:
                    # a simulcast layer, as a viewer with a small window would pick
                    quality = getattr(rtc.VideoQuality, f"VIDEO_QUALITY_{self.args.video_quality.upper()}")
                    try:
                        pub.set_video_quality(quality)
                        self.event("video_quality_set", sid=pub.sid, quality=self.args.video_quality,
                                   simulcasted=True)
                    except ValueError as e:
                        self.event("video_quality_set", sid=pub.sid, quality=self.args.video_quality,
                                   simulcasted=False, error=str(e))
                self.tasks[pub.sid] = asyncio.ensure_future(self.read_video(track, st))
            elif track.kind == rtc.TrackKind.KIND_AUDIO:
                self.tasks[pub.sid] = asyncio.ensure_future(self.read_audio(track, st))

        @room.on("track_unsubscribed")
        def _tus(track: Any, pub: Any, p: Any) -> None:
            st = self.stats_for(pub.sid, p.identity)
            st.subscribed = False
            st.unsubscribed_seconds = now()
            self.event("track_unsubscribed", sid=pub.sid, identity=p.identity, kind=st.kind)

        @room.on("track_subscription_failed")
        def _tsf(p: Any, sid: str, error: str) -> None:
            self.event("track_subscription_failed", sid=sid, identity=p.identity, error=str(error))

        @room.on("track_muted")
        def _tm(p: Any, pub: Any) -> None:
            self.event("track_muted", sid=pub.sid, identity=p.identity)

        @room.on("track_unmuted")
        def _tum(p: Any, pub: Any) -> None:
            self.event("track_unmuted", sid=pub.sid, identity=p.identity)

        @room.on("reconnecting")
        def _rc() -> None:
            self.event("reconnecting")

        @room.on("reconnected")
        def _rd() -> None:
            self.event("reconnected")

        @room.on("disconnected")
        def _dc(reason: Any) -> None:
            self.event("disconnected", reason=enum_name(rtc.DisconnectReason, reason, ""))
            if not self.stop.is_set():
                self.end_reason = self.end_reason or "disconnected"
                self.stop.set()

    def report(self, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "connected": self.connected,
            "room": self.args.room,
            "room_sid": self.room_sid,
            "identity": self.args.identity,
            "connect_seconds": self.connect_seconds,
            "connect_t_wall": self.connect_t_wall,
            "start_t_wall": round(time.time() - (time.monotonic() - T0_MONO), 4),
            "end_seconds": now(),
            "end_reason": self.end_reason,
            "tracks": [st.to_json() for st in list(self.tracks.values())],
            "events": list(self.events),
        }
        if self.error is not None:
            out["error"] = self.error
        out.update(extra)
        return out

    async def run(self) -> int:
        from livekit import api, rtc

        args = self.args
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal)
            except (NotImplementedError, RuntimeError):
                pass

        token = (
            api.AccessToken(args.api_key, args.api_secret)
            .with_identity(args.identity)
            .with_name(args.identity)
            .with_grants(
                api.VideoGrants(
                    room_join=True,
                    room=args.room,
                    can_subscribe=True,
                    can_publish=False,
                    can_publish_data=False,
                )
            )
            .to_jwt()
        )

        room = rtc.Room(loop=loop)
        self.attach(room)
        opts = rtc.RoomOptions(auto_subscribe=True, connect_timeout=args.connect_timeout)
        self.event("connecting", url=args.url)
        try:
            await asyncio.wait_for(room.connect(args.url, token, opts), args.connect_timeout + 5)
        except BaseException as e:  # noqa: BLE001 - any failure here is "could not connect"
            self.error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            self.end_reason = "connect_failed"
            self.event("connect_failed", error=self.error)
            log.error("connect failed: %s", self.error)
            return 2

        self.connected = True
        self.connect_seconds = now()
        self.connect_t_wall = wall()
        try:
            self.room_sid = await asyncio.wait_for(room.sid, 2)
        except BaseException:  # noqa: BLE001
            self.room_sid = ""
        self.event("connected", room=room.name, room_sid=self.room_sid)
        # participants and publications already in the room when we joined
        for p in list(room.remote_participants.values()):
            self.event("participant_present", identity=p.identity, sid=p.sid)
            for pub in list(p.track_publications.values()):
                st = self.stats_for(pub.sid, p.identity, pub)
                if st.published_seconds is None:
                    st.published_seconds = now()
                self.event(
                    "track_present", sid=pub.sid, identity=p.identity, kind=st.kind,
                    mime=st.mime, name=st.name, source=st.source,
                )

        deadline = args.duration
        if not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), deadline)
            except asyncio.TimeoutError:
                self.end_reason = self.end_reason or "duration"
        self.event("ending", reason=self.end_reason)

        for task in list(self.tasks.values()):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=2)
        try:
            await asyncio.wait_for(room.disconnect(), 3)
        except BaseException as e:  # noqa: BLE001
            log.warning("disconnect: %s", e)
        return 0

    def _on_signal(self) -> None:
        if not self.stop.is_set():
            self.end_reason = "signal"
            self.stop.set()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--api-secret", default=os.environ.get("LIVEKIT_API_SECRET"),
                   help="API secret (default: $LIVEKIT_API_SECRET; the environment keeps it out of argv)")
    p.add_argument("--room", required=True)
    p.add_argument("--identity", default="sub")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to stay, counted from connect")
    p.add_argument("--wait-tracks", type=int, default=None, help="end early once N tracks have frames")
    p.add_argument("--exit-after-frames", type=int, default=None, help="frames each of those tracks needs")
    p.add_argument("--connect-timeout", type=float, default=10.0)
    p.add_argument("--hard-timeout", type=float, default=None,
                   help="seconds after start when the watchdog ends the process (default duration + connect timeout + 20)")
    p.add_argument("--audio-sample-rate", type=int, default=48000)
    p.add_argument("--audio-channels", type=int, default=1)
    p.add_argument("--print-events", action="store_true", help="print each event as a JSON line on stderr")
    p.add_argument("--video-quality", choices=["low", "medium", "high"], default=None,
                   help="ask for this simulcast layer of every video track")
    p.add_argument("--frame-log", metavar="PATH", default=None,
                   help="write one JSON line per decoded video frame to PATH: "
                        "{sid, wall, mono, ts_us, w, h} (default: off)")
    p.add_argument("--frame-log-edge", action="store_true",
                   help="with --frame-log: also log edge_x/edge_step, the seam of a scrolled "
                        "test picture (videotestsrc horizontal-speed), which tells the frame's index")
    p.add_argument("--frame-log-code", action="store_true",
                   help="with --frame-log: also log code_ms/code_n, the time code of "
                        "tests/subscriber/timecode.py read from each decoded picture")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not args.api_secret:
        p.error("--api-secret (or LIVEKIT_API_SECRET) is required")
    return args


def main(argv: list[str]) -> None:
    try:
        args = parse_args(argv)
    except SystemExit as e:
        os._exit(4 if e.code else 0)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s subscriber %(levelname)s %(name)s: %(message)s",
    )
    # the SDK's own logger is chatty at INFO
    if not args.verbose:
        logging.getLogger("livekit").setLevel(logging.WARNING)

    import warnings

    warnings.filterwarnings("ignore", message=".*HMAC key.*")  # short dev secrets are fine here
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sub = Subscriber(args)

    hard = args.hard_timeout
    if hard is None:
        hard = args.duration + args.connect_timeout + 20.0

    def watchdog() -> None:
        log.error("hard timeout (%.1fs) reached, exiting", hard)
        sub.end_reason = "hard_timeout"
        emit_result(sub.report(hard_timeout=True), 3)

    timer = threading.Timer(hard, watchdog)
    timer.daemon = True
    timer.start()

    try:
        code = loop.run_until_complete(sub.run())
    except BaseException as e:  # noqa: BLE001
        log.exception("subscriber failed")
        sub.error = f"{type(e).__name__}: {e}"
        emit_result(sub.report(), 4)
        return
    emit_result(sub.report(), code)


if __name__ == "__main__":
    main(sys.argv[1:])

/* Browser side of tests/browser/subscriber.js (served from loopback, run in
 * headless Chromium). It joins the room with livekit-client, auto-subscribes to
 * every track, attaches each one to a media element, polls
 * RTCRtpReceiver.getStats() and builds the same report shape as
 * tests/subscriber/subscriber.py. Driven by the runner through
 * window.__sub.connect(cfg) / window.__sub.finish(reason); it tells the runner
 * about events and "done" through window.__lkNotify (puppeteer exposeFunction).
 */
(() => {
  'use strict';

  const LK = window.LivekitClient;
  // livekit-server's blank key frames on a closing/muted downtrack (VP8 8x8, H264 2x2)
  const SERVER_BLANK_SIZES = new Set(['8x8', '2x2']);

  const S = {
    cfg: null,
    room: null,
    tracks: new Map(), // publication sid -> TrackStats
    events: [],
    connected: false,
    connectSeconds: null,
    connectTWall: null,
    roomSid: '',
    endReason: '',
    error: null,
    poller: null,
    polling: false,
    doneSent: false,
    finished: null,
    ice: null,
    iceGuard: { dropped_candidates: 0, dropped_ice_servers: 0, signalled_local_candidates: [], unsignalled_local_candidates: [] },
    pcs: [],
    iceReadAt: null,
  };

  const r4 = (x) => (x == null ? x : Math.round(x * 1e4) / 1e4);
  const now = () => r4((performance.timeOrigin + performance.now() - S.cfg.t0_ms) / 1000);
  const wall = () => r4(Date.now() / 1000);
  const errStr = (e) => {
    if (e == null) return 'unknown error';
    const name = e.name || (e.constructor && e.constructor.name) || 'Error';
    // the server echoes a rejected token in its message: keep tokens out of the report
    const msg = (e.message != null ? String(e.message) : String(e)).replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '<token>');
    return msg ? `${name}: ${msg}` : name;
  };

  function notify(msg) {
    try {
      if (typeof window.__lkNotify === 'function') window.__lkNotify(msg).catch(() => {});
    } catch (_) { /* runner gone */ }
  }

  function event(type, fields) {
    const ev = Object.assign({ t: now(), t_wall: wall(), type }, fields || {});
    S.events.push(ev);
    notify({ type: 'event', event: ev });
  }

  // ------------------------------------------------------------ loopback guard
  // Only loopback ICE servers and candidates reach RTCPeerConnection, so the
  // browser never sends media or STUN anywhere else even if a server hands out
  // other addresses (the runner can turn this off with --allow-non-loopback).
  function isLoopbackHost(h) {
    if (!h) return false;
    h = String(h).toLowerCase().replace(/^\[/, '').replace(/\]$/, '');
    return h === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::1' || h === '0:0:0:0:0:0:0:1';
  }
  function iceUrlHost(u) {
    // stun:host:port, turn:host:port?transport=udp, turns:[::1]:443
    const rest = String(u).replace(/^[a-z]+:/i, '').replace(/\?.*$/, '');
    if (rest.startsWith('[')) return rest.slice(1, rest.indexOf(']'));
    return rest.split(':')[0];
  }
  function candidateHost(line) {
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    const parts = String(line).replace(/^a=/, '').trim().split(/\s+/);
    return parts.length > 5 ? parts[4] : '';
  }
  function filterConfig(conf) {
    if (!conf || !Array.isArray(conf.iceServers)) return conf;
    const out = Object.assign({}, conf);
    out.iceServers = conf.iceServers.filter((s) => {
      const urls = Array.isArray(s.urls) ? s.urls : [s.urls || s.url];
      const ok = urls.every((u) => isLoopbackHost(iceUrlHost(u)));
      if (!ok) S.iceGuard.dropped_ice_servers++;
      return ok;
    });
    return out;
  }
  function filterSdp(sdp) {
    return sdp
      .split(/\r\n/)
      .filter((l) => {
        if (!l.startsWith('a=candidate:')) return true;
        const ok = isLoopbackHost(candidateHost(l));
        if (!ok) S.iceGuard.dropped_candidates++;
        return ok;
      })
      .join('\r\n');
  }
  // Every RTCPeerConnection livekit-client makes goes through this subclass: it is
  // remembered (S.pcs, for the ICE report) and, unless filter is false, sees
  // only loopback ICE servers and remote candidates.
  function installPeerConnectionHook(filter) {
    const Orig = window.RTCPeerConnection;
    if (!Orig || Orig.__hooked) return;
    class HookedPeerConnection extends Orig {
      constructor(conf, ...rest) {
        super(filter ? filterConfig(conf) : conf, ...rest);
        S.pcs.push(this);
      }
      setConfiguration(conf) { return super.setConfiguration(filter ? filterConfig(conf) : conf); }
      addIceCandidate(c, ...rest) {
        const line = c && (typeof c === 'string' ? c : c.candidate);
        if (filter && line && !isLoopbackHost(candidateHost(line))) {
          S.iceGuard.dropped_candidates++;
          return Promise.resolve();
        }
        return super.addIceCandidate(c, ...rest);
      }
      setRemoteDescription(desc, ...rest) {
        if (filter && desc && typeof desc.sdp === 'string') desc = { type: desc.type, sdp: filterSdp(desc.sdp) };
        return super.setRemoteDescription(desc, ...rest);
      }
      // our own candidates: only loopback ones are signalled to the server
      set onicecandidate(fn) {
        this.__onicecandidate = fn || null;
        super.onicecandidate = !fn ? null : (ev) => {
          const line = ev && ev.candidate && ev.candidate.candidate;
          if (line) {
            const host = candidateHost(line);
            if (filter && !isLoopbackHost(host)) {
              S.iceGuard.unsignalled_local_candidates.push(host);
              return undefined;
            }
            S.iceGuard.signalled_local_candidates.push(host);
          }
          return fn.call(this, ev);
        };
      }
      get onicecandidate() { return this.__onicecandidate || null; }
      get localDescription() { return filterDesc(super.localDescription); }
      get currentLocalDescription() { return filterDesc(super.currentLocalDescription); }
      get pendingLocalDescription() { return filterDesc(super.pendingLocalDescription); }
    }
    const filterDesc = (d) => (filter && d && typeof d.sdp === 'string' ? { type: d.type, sdp: filterSdp(d.sdp), toJSON() { return { type: this.type, sdp: this.sdp }; } } : d);
    HookedPeerConnection.__hooked = true;
    window.RTCPeerConnection = HookedPeerConnection;
  }

  // ------------------------------------------------------------ per track
  class TrackStats {
    constructor(sid, participant) {
      this.sid = sid;
      this.participant = participant;
      this.kind = 'unknown';
      this.mime = '';
      this.name = '';
      this.source = '';
      this.simulcasted = false;
      this.published = true;
      this.subscribed = false;
      this.subscriptions = 0;
      this.published_seconds = null;
      this.unpublished_seconds = null;
      this.subscribed_seconds = null;
      this.subscribed_t_wall = null;
      this.unsubscribed_seconds = null;
      this.stream_state = null;
      // frames: decoded video frames / 10 ms of received audio, summed over subscriptions
      this.baseFrames = 0;
      this.curFrames = 0;
      this.baseSamples = 0;
      this.curSamples = 0;
      this.first_frame_seconds = null;
      this.first_frame_t_wall = null;
      this.last_frame_seconds = null;
      this.max_gap = 0;
      this.lastProgress = -1; // framesDecoded (video) / non-concealed samples (audio) at last poll
      this.fpsFirst = null; // [t, framesDecoded] at first decoded frame seen by a poll
      this.fpsLast = null;
      this.width = 0;
      this.height = 0;
      this.sizes = [];
      this.blankSizes = [];
      this.peak = 0;
      this.inbound = null; // last inbound-rtp stats (plain object)
      this.codec = null; // its codec stats
      this.receiver = null;
      this.track = null;
      this.element = null;
      // requestVideoFrameCallback on the <video> element (frames actually presented)
      this.rendered = 0;
      this.renderedFirst = null;
      this.renderedLast = null;
      this.renderMaxGap = 0;
      this.renderedSize = null;
      this.rvfcGen = 0;
    }

    get frames() { return this.baseFrames + this.curFrames; }

    markFirst(t) {
      if (this.first_frame_seconds == null) {
        this.first_frame_seconds = t;
        this.first_frame_t_wall = wall();
        const f = { sid: this.sid, kind: this.kind, identity: this.participant };
        if (this.kind === 'video') Object.assign(f, { width: this.width, height: this.height });
        if (this.kind === 'audio' && this.codec) Object.assign(f, { sample_rate: this.codec.clockRate || 0, channels: this.codec.channels || 0 });
        event('first_frame', f);
      }
    }

    progress(t, value) {
      // value (framesDecoded for video, non-concealed samples for audio) grew
      // since the last poll: media was decoded between the two polls
      const grew = this.lastProgress < 0 ? value > 0 : value > this.lastProgress;
      if (grew) {
        if (this.last_frame_seconds != null) {
          const gap = t - this.last_frame_seconds;
          if (gap > this.max_gap) this.max_gap = gap;
          if (gap > 1.0) {
            event(this.kind === 'video' ? 'video_resumed' : 'audio_resumed',
              { sid: this.sid, kind: this.kind, identity: this.participant, gap_seconds: r4(gap) });
          }
        }
        this.last_frame_seconds = t;
      }
      this.lastProgress = value;
    }

    toJSON() {
      const d = {
        sid: this.sid,
        participant: this.participant,
        kind: this.kind,
        mime: this.mime,
        name: this.name,
        source: this.source,
        simulcasted: this.simulcasted,
        published: this.published,
        subscribed: this.subscribed,
        subscriptions: this.subscriptions,
        stream_state: this.stream_state,
        published_seconds: this.published_seconds,
        unpublished_seconds: this.unpublished_seconds,
        subscribed_seconds: this.subscribed_seconds,
        subscribed_t_wall: this.subscribed_t_wall,
        unsubscribed_seconds: this.unsubscribed_seconds,
        frames: this.frames,
        first_frame_seconds: this.first_frame_seconds,
        first_frame_t_wall: this.first_frame_t_wall,
        last_frame_seconds: this.last_frame_seconds,
        max_gap_seconds: r4(this.max_gap),
        max_frame_gap_s: r4(this.max_gap),
        // time since media last progressed (a stall still open when the report was made)
        since_last_frame_s: this.last_frame_seconds != null && S.cfg ? r4(now() - this.last_frame_seconds) : null,
        codec: (this.codec && this.codec.mimeType) || null,
        codec_fmtp: (this.codec && this.codec.sdpFmtpLine) || null,
      };
      const ib = this.inbound || {};
      const pick = (keys) => { for (const k of keys) d[k] = ib[k] != null ? ib[k] : null; };
      pick(['ssrc', 'packetsReceived', 'packetsLost', 'bytesReceived', 'jitter', 'nackCount']);
      if (this.kind === 'video') {
        let fps = 0;
        if (this.fpsFirst && this.fpsLast && this.fpsLast[0] > this.fpsFirst[0]) {
          fps = (this.fpsLast[1] - this.fpsFirst[1]) / (this.fpsLast[0] - this.fpsFirst[0]);
        }
        Object.assign(d, {
          width: this.width,
          height: this.height,
          sizes: this.sizes,
          blank_sizes: this.blankSizes,
          fps: Math.round(fps * 100) / 100,
        });
        pick(['framesDecoded', 'framesReceived', 'framesDropped', 'keyFramesDecoded', 'frameWidth', 'frameHeight',
          'framesPerSecond', 'freezeCount', 'totalFreezesDuration', 'pauseCount', 'totalPausesDuration',
          'pliCount', 'firCount', 'totalDecodeTime', 'decoderImplementation', 'powerEfficientDecoder']);
        const el = this.element;
        Object.assign(d, {
          element_width: el ? el.clientWidth : null,
          element_height: el ? el.clientHeight : null,
          rendered_frames: this.rendered,
          rendered_width: this.renderedSize ? this.renderedSize[0] : null,
          rendered_height: this.renderedSize ? this.renderedSize[1] : null,
          max_render_gap_s: r4(this.renderMaxGap),
        });
      } else if (this.kind === 'audio') {
        const rate = (this.codec && this.codec.clockRate) || 48000;
        const total = ib.totalSamplesReceived || 0;
        const concealed = ib.concealedSamples || 0;
        Object.assign(d, {
          audio_frames: this.frames,
          audio_samples: this.baseSamples + this.curSamples,
          audio_seconds: r4((this.baseSamples + this.curSamples) / rate),
          sample_rate: (this.codec && this.codec.clockRate) || 0,
          channels: (this.codec && this.codec.channels) || 0,
          // RMS from the receiver's audio energy, peak = highest audioLevel polled (full scale 1.0)
          rms: ib.totalSamplesDuration > 0 ? Math.round(Math.sqrt((ib.totalAudioEnergy || 0) / ib.totalSamplesDuration) * 1e5) / 1e5 : 0,
          peak: r4(this.peak),
          concealed_ratio: total > 0 ? r4(concealed / total) : null,
        });
        pick(['totalSamplesReceived', 'concealedSamples', 'silentConcealedSamples', 'concealmentEvents',
          'insertedSamplesForDeceleration', 'removedSamplesForAcceleration', 'audioLevel', 'totalAudioEnergy',
          'totalSamplesDuration', 'jitterBufferDelay', 'jitterBufferEmittedCount', 'decoderImplementation']);
        d.jitter_buffer_ms = ib.jitterBufferEmittedCount > 0
          ? r4((ib.jitterBufferDelay / ib.jitterBufferEmittedCount) * 1000) : null;
      }
      return d;
    }
  }

  function statsFor(sid, participant, pub) {
    let st = S.tracks.get(sid);
    if (!st) {
      st = new TrackStats(sid, participant);
      S.tracks.set(sid, st);
    }
    if (pub) fillFromPublication(st, pub);
    return st;
  }

  function fillFromPublication(st, pub) {
    try {
      st.kind = pub.kind || st.kind;
      st.mime = pub.mimeType || st.mime;
      st.name = pub.trackName || st.name;
      st.source = pub.source || st.source;
      st.simulcasted = !!pub.simulcasted;
    } catch (_) { /* keep what we had */ }
  }

  // ------------------------------------------------------------ media elements
  function attachTrack(st, track) {
    const media = document.getElementById('media');
    detachTrack(st);
    const el = track.attach();
    el.muted = false;
    el.autoplay = true;
    el.playsInline = true;
    el.dataset.sid = st.sid;
    if (st.kind === 'video') {
      const w = S.cfg.video_width;
      const h = S.cfg.video_height || (w ? Math.round((w * 9) / 16) : null);
      if (w) el.style.width = `${w}px`;
      if (h) el.style.height = `${h}px`;
      if (typeof el.requestVideoFrameCallback === 'function') {
        const gen = ++st.rvfcGen;
        const cb = (_ts, meta) => {
          if (gen !== st.rvfcGen) return;
          const t = now();
          st.rendered += 1;
          if (st.renderedFirst == null) st.renderedFirst = t;
          if (st.renderedLast != null && t - st.renderedLast > st.renderMaxGap) st.renderMaxGap = t - st.renderedLast;
          st.renderedLast = t;
          st.renderedSize = [meta.width, meta.height];
          el.requestVideoFrameCallback(cb);
        };
        el.requestVideoFrameCallback(cb);
      }
    }
    media.appendChild(el);
    const p = el.play && el.play();
    if (p && p.catch) p.catch((e) => event('play_failed', { sid: st.sid, error: errStr(e) }));
    st.element = el;
  }

  function detachTrack(st) {
    st.rvfcGen++;
    if (st.element) {
      try { if (st.track) st.track.detach(st.element); } catch (_) { /* already gone */ }
      try { st.element.remove(); } catch (_) { /* already gone */ }
      st.element = null;
    }
  }

  // ------------------------------------------------------------ stats
  async function pollTrack(st) {
    const rx = st.receiver;
    if (!rx) return null;
    let rep;
    try {
      rep = await rx.getStats();
    } catch (_) {
      return null;
    }
    let inbound = null;
    rep.forEach((s) => {
      if (s.type === 'inbound-rtp' && (!inbound || (s.packetsReceived || 0) >= (inbound.packetsReceived || 0))) inbound = s;
    });
    if (!inbound) return;
    const t = now();
    st.inbound = Object.assign({}, inbound);
    const codec = inbound.codecId ? rep.get(inbound.codecId) : null;
    if (codec) st.codec = Object.assign({}, codec);
    if (st.kind === 'video') {
      const fd = inbound.framesDecoded || 0;
      const w = inbound.frameWidth || 0;
      const h = inbound.frameHeight || 0;
      if (w && h) {
        if (SERVER_BLANK_SIZES.has(`${w}x${h}`)) {
          if (!st.blankSizes.some(([a, b]) => a === w && b === h)) st.blankSizes.push([w, h]);
        } else {
          if (!st.sizes.some(([a, b]) => a === w && b === h)) st.sizes.push([w, h]);
          if ((w !== st.width || h !== st.height) && st.width) event('video_size_changed', { sid: st.sid, width: w, height: h });
          st.width = w;
          st.height = h;
        }
      }
      st.curFrames = fd;
      if (fd > 0) {
        if (!st.fpsFirst) st.fpsFirst = [t, fd];
        if (fd > st.lastProgress) st.fpsLast = [t, fd];
        st.markFirst(t);
      }
      st.progress(t, fd);
    } else if (st.kind === 'audio') {
      const rate = (codec && codec.clockRate) || 48000;
      const total = inbound.totalSamplesReceived || 0;
      // decoded from packets: played-out samples less the ones concealment made up
      const real = Math.max(0, total - (inbound.concealedSamples || 0));
      st.curSamples = real;
      st.curFrames = Math.floor(real / (rate / 100));
      if (inbound.audioLevel != null && inbound.audioLevel > st.peak) st.peak = inbound.audioLevel;
      if (real > 0) st.markFirst(t);
      st.progress(t, real);
    }
    return true;
  }

  // selected candidate pair and all candidates of each live peer connection
  async function readIce() {
    const out = [];
    for (const pc of S.pcs) {
      if (pc.connectionState === 'closed') continue;
      let rep;
      try { rep = await pc.getStats(); } catch (_) { continue; }
      let pairId = null;
      rep.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
      const pair = pairId ? rep.get(pairId) : null;
      const cand = (id) => {
        const x = id ? rep.get(id) : null;
        return x ? { address: x.address || x.ip, port: x.port, protocol: x.protocol, type: x.candidateType } : null;
      };
      const all = (type) => {
        const l = [];
        rep.forEach((x) => { if (x.type === type) l.push(`${x.address || x.ip}:${x.port}/${x.protocol} ${x.candidateType}`); });
        return l;
      };
      let inbound = 0;
      rep.forEach((x) => { if (x.type === 'inbound-rtp') inbound++; });
      out.push({
        role: inbound > 0 ? 'subscriber' : 'other',
        connection_state: pc.connectionState,
        local: pair ? cand(pair.localCandidateId) : null,
        remote: pair ? cand(pair.remoteCandidateId) : null,
        local_candidates: all('local-candidate'),
        remote_candidates: all('remote-candidate'),
      });
    }
    S.ice = out;
  }

  async function pollAll(final) {
    if (S.polling) return;
    S.polling = true;
    try {
      for (const st of Array.from(S.tracks.values())) await pollTrack(st);
      const t = now();
      if (final || S.iceReadAt == null || t - S.iceReadAt >= 1.0) {
        S.iceReadAt = t;
        await readIce();
      }
      checkDone();
    } finally {
      S.polling = false;
    }
  }

  function checkDone() {
    const c = S.cfg;
    if (c.wait_tracks == null || c.exit_after_frames == null) return;
    let ready = 0;
    S.tracks.forEach((st) => { if (st.frames >= c.exit_after_frames) ready++; });
    if (ready >= c.wait_tracks) sendDone('frames');
  }

  function sendDone(reason) {
    if (S.doneSent) return;
    S.doneSent = true;
    S.endReason = S.endReason || reason;
    notify({ type: 'done', reason });
  }

  // ------------------------------------------------------------ room events
  function attachRoom(room) {
    const E = LK.RoomEvent;
    room.on(E.ParticipantConnected, (p) => event('participant_connected', { identity: p.identity, sid: p.sid }));
    room.on(E.ParticipantDisconnected, (p) => event('participant_disconnected', { identity: p.identity, sid: p.sid }));
    room.on(E.TrackPublished, (pub, p) => {
      const st = statsFor(pub.trackSid, p.identity, pub);
      st.published = true;
      if (st.published_seconds == null) st.published_seconds = now();
      event('track_published', { sid: pub.trackSid, identity: p.identity, kind: st.kind, mime: st.mime, name: st.name, source: st.source });
    });
    room.on(E.TrackUnpublished, (pub, p) => {
      const st = statsFor(pub.trackSid, p.identity);
      st.published = false;
      st.unpublished_seconds = now();
      event('track_unpublished', { sid: pub.trackSid, identity: p.identity, kind: st.kind });
    });
    room.on(E.TrackSubscribed, (track, pub, p) => {
      const st = statsFor(pub.trackSid, p.identity, pub);
      if (st.kind === 'unknown') st.kind = track.kind;
      st.subscribed = true;
      st.subscriptions += 1;
      if (st.subscribed_seconds == null) {
        st.subscribed_seconds = now();
        st.subscribed_t_wall = wall();
      }
      if (st.published_seconds == null) st.published_seconds = st.subscribed_seconds;
      st.track = track;
      st.receiver = track.receiver || null;
      st.lastProgress = -1;
      st.stream_state = track.streamState || null;
      event('track_subscribed', { sid: pub.trackSid, identity: p.identity, kind: st.kind, mime: st.mime, name: st.name });
      attachTrack(st, track);
    });
    room.on(E.TrackUnsubscribed, (track, pub, p) => {
      const st = statsFor(pub.trackSid, p.identity);
      st.subscribed = false;
      st.unsubscribed_seconds = now();
      // fold this subscription's counters; the next one gets a new receiver
      st.baseFrames += st.curFrames;
      st.baseSamples += st.curSamples;
      st.curFrames = 0;
      st.curSamples = 0;
      st.lastProgress = -1;
      detachTrack(st);
      st.receiver = null;
      st.track = null;
      event('track_unsubscribed', { sid: pub.trackSid, identity: p.identity, kind: st.kind });
    });
    room.on(E.TrackSubscriptionFailed, (sid, p, reason) => {
      event('track_subscription_failed', { sid, identity: p && p.identity, error: String(reason) });
    });
    room.on(E.TrackMuted, (pub, p) => event('track_muted', { sid: pub.trackSid, identity: p.identity }));
    room.on(E.TrackUnmuted, (pub, p) => event('track_unmuted', { sid: pub.trackSid, identity: p.identity }));
    room.on(E.TrackStreamStateChanged, (pub, state, p) => {
      const st = statsFor(pub.trackSid, p.identity);
      st.stream_state = state;
      event('track_stream_state', { sid: pub.trackSid, identity: p.identity, state });
    });
    room.on(E.AudioPlaybackStatusChanged, (canPlay) => event('audio_playback', { can_play: !!canPlay }));
    room.on(E.Reconnecting, () => event('reconnecting'));
    room.on(E.Reconnected, () => event('reconnected'));
    room.on(E.Disconnected, (reason) => {
      event('disconnected', { reason: reason == null ? '' : String(LK.DisconnectReason ? (LK.DisconnectReason[reason] || reason) : reason) });
      if (S.connected && !S.finished) sendDone('disconnected');
    });
  }

  function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
      promise,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000}s`)), ms); }),
    ]).finally(() => clearTimeout(timer));
  }

  // ------------------------------------------------------------ API for the runner
  async function connect(cfg) {
    S.cfg = cfg;
    if (!LK) {
      S.error = 'livekit-client bundle did not load';
      return { connected: false, error: S.error };
    }
    LK.setLogLevel(cfg.verbose ? 'debug' : 'warn');
    installPeerConnectionHook(!cfg.allow_non_loopback);
    const room = new LK.Room({ adaptiveStream: !!cfg.adaptive_stream, dynacast: false });
    S.room = room;
    attachRoom(room);
    event('connecting', { url: cfg.url });
    const ms = cfg.connect_timeout * 1000;
    try {
      await withTimeout(
        room.connect(cfg.url, cfg.token, { autoSubscribe: true, peerConnectionTimeout: ms, websocketTimeout: ms, maxRetries: 1 }),
        ms + 5000, 'connect');
    } catch (e) {
      S.error = errStr(e);
      S.endReason = 'connect_failed';
      event('connect_failed', { error: S.error });
      try { await withTimeout(room.disconnect(), 2000, 'disconnect'); } catch (_) { /* best effort */ }
      return { connected: false, error: S.error };
    }
    S.connected = true;
    S.connectSeconds = now();
    S.connectTWall = wall();
    try { S.roomSid = await withTimeout(room.getSid(), 2000, 'room sid'); } catch (_) { S.roomSid = ''; }
    event('connected', { room: room.name, room_sid: S.roomSid });
    room.remoteParticipants.forEach((p) => {
      event('participant_present', { identity: p.identity, sid: p.sid });
      p.trackPublications.forEach((pub) => {
        const st = statsFor(pub.trackSid, p.identity, pub);
        if (st.published_seconds == null) st.published_seconds = now();
        event('track_present', { sid: pub.trackSid, identity: p.identity, kind: st.kind, mime: st.mime, name: st.name, source: st.source });
      });
    });
    S.poller = setInterval(pollAll, Math.max(20, Math.round(cfg.stats_interval * 1000)));
    return { connected: true, connect_seconds: S.connectSeconds };
  }

  function report(extra) {
    const out = {
      connected: S.connected,
      room: S.cfg ? S.cfg.room : '',
      room_sid: S.roomSid,
      identity: S.cfg ? S.cfg.identity : '',
      connect_seconds: S.connectSeconds,
      connect_t_wall: S.connectTWall,
      start_t_wall: S.cfg ? r4(S.cfg.t0_ms / 1000) : null,
      end_seconds: S.cfg ? now() : null,
      end_reason: S.endReason,
      tracks: Array.from(S.tracks.values()).map((st) => st.toJSON()),
      events: S.events.slice(),
      browser: {
        user_agent: navigator.userAgent,
        livekit_client: LK ? LK.version : null,
        adaptive_stream: S.cfg ? !!S.cfg.adaptive_stream : null,
        video_width: S.cfg ? S.cfg.video_width : null,
        can_playback_audio: S.room ? !!S.room.canPlaybackAudio : null,
        ice: S.ice,
        loopback_guard: S.cfg && !S.cfg.allow_non_loopback ? S.iceGuard : null,
      },
    };
    if (S.error != null) out.error = S.error;
    return Object.assign(out, extra || {});
  }

  async function finish(reason) {
    if (S.finished) return S.finished;
    S.finished = (async () => {
      S.endReason = S.endReason || reason || 'duration';
      if (S.poller) clearInterval(S.poller);
      S.poller = null;
      // one last poll with the connection still up
      for (let i = 0; i < 50 && S.polling; i++) await new Promise((r) => setTimeout(r, 10));
      if (S.connected) {
        try { await withTimeout(pollAll(true), 2000, 'final stats'); } catch (_) { /* keep what we have */ }
      }
      event('ending', { reason: S.endReason });
      return report();
    })();
    return S.finished;
  }

  async function leave() {
    if (S.poller) clearInterval(S.poller);
    S.poller = null;
    if (S.room) {
      try { await withTimeout(S.room.disconnect(), 3000, 'disconnect'); } catch (_) { /* best effort */ }
    }
    return true;
  }

  window.__sub = {
    connect,
    finish, // final stats and the report; the room stays connected
    leave, // disconnect
    snapshot: (extra) => report(extra),
    receiveCodecs: () => {
      const caps = (k) => {
        try {
          const c = RTCRtpReceiver.getCapabilities(k);
          return Array.from(new Set(c.codecs.map((x) => x.mimeType)));
        } catch (_) { return []; }
      };
      return { video: caps('video'), audio: caps('audio') };
    },
  };
})();

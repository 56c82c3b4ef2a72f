#!/usr/bin/env node
/*
 * Browser subscriber for gstreamer-publisher's end-to-end tests.
 *
 * Joins a LiveKit room from Debian's headless Chromium (driven by puppeteer-core,
 * page = livekit-client's UMD bundle served by a tiny loopback HTTP server in
 * this process), auto-subscribes to every track, attaches each to a media
 * element, polls RTCRtpReceiver.getStats() and prints ONE JSON object on stdout
 * when it ends, with the top-level shape of tests/subscriber/subscriber.py
 * (connected, error, tracks[...], events[...]) plus browser figures. Logs go to
 * stderr only.
 *
 *   node tests/browser/subscriber.js --url ws://127.0.0.1:PORT --api-key K --api-secret S --room R
 *   (or the secret in env LIVEKIT_API_SECRET instead of --api-secret: argv is visible to all users)
 *        [--identity browser-sub] [--token JWT] [--duration SECONDS]
 *        [--wait-tracks N] [--exit-after-frames N] [--connect-timeout S] [--hard-timeout S]
 *        [--video-width PX] [--video-height PX] [--adaptive-stream]
 *        [--stats-interval S] [--viewport WxH] [--screenshot FILE.png] [--chromium PATH]
 *        [--chromium-arg ARG]... [--allow-non-loopback] [--print-events] [-v]
 *
 * Times (`*_seconds`, `t`) are seconds since this process started; `*_t_wall`
 * are unix times. Exit codes (as subscriber.py, plus 5): 0 it ran (whatever it
 * saw), 2 it could not connect (JSON has "connected": false and "error"), 3 the
 * hard timeout fired (JSON still printed, "hard_timeout": true), 4 bad usage /
 * internal error, 5 could not start (Chromium, the HTTP server or node_modules
 * missing: run scripts/setup-browser) - one line on stderr and a JSON with
 * "error" on stdout.
 */
'use strict';

const T0_MS = performance.timeOrigin; // process start, unix ms

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const HERE = __dirname;
const PROG = 'browser-subscriber';

// ------------------------------------------------------------------ logging
let VERBOSE = false;
function log(level, msg) {
  if (level === 'debug' && !VERBOSE) return;
  try {
    process.stderr.write(`${new Date().toISOString()} ${PROG} ${level.toUpperCase()}: ${msg}\n`);
  } catch (_) { /* stderr gone */ }
}
const nowS = () => Math.round((performance.timeOrigin + performance.now() - T0_MS) * 10) / 1e4;
const wallS = () => Math.round(Date.now() * 10) / 1e4;

// ------------------------------------------------------------------ CLI
const USAGE = `usage: subscriber.js --url ws://127.0.0.1:PORT (--api-key K --api-secret S --room R | --token JWT)
                     [--identity ID] [--duration S] [--wait-tracks N] [--exit-after-frames N]
                     [--connect-timeout S] [--hard-timeout S] [--video-width PX] [--video-height PX]
                     [--adaptive-stream] [--stats-interval S] [--viewport WxH] [--screenshot FILE.png]
                     [--chromium PATH] [--chromium-arg ARG]... [--allow-non-loopback]
                     [--print-events] [-v]

  --url URL             LiveKit server (ws:// or wss://; loopback only unless --allow-non-loopback)
  --api-key/--api-secret/--room
                        mint a subscribe-only token here (HS256; roomJoin, canSubscribe, no publish);
                        the secret may come from env LIVEKIT_API_SECRET instead (kept out of argv)
  --token JWT           use this token instead (room/identity taken from it unless given)
  --identity ID         participant identity (default browser-sub)
  --duration S          seconds to stay, counted from connect (default 10)
  --wait-tracks N       end early once N tracks have --exit-after-frames frames
  --exit-after-frames N frames each of those tracks needs (video frames / 10 ms of audio)
  --connect-timeout S   (default 10)
  --hard-timeout S      seconds after start when everything is torn down and the report
                        printed with "hard_timeout": true, exit 3 (default duration+connect+30)
  --video-width PX      CSS width of each <video> element (height PX*9/16 unless --video-height);
                        default: the video's own size. With --adaptive-stream the server picks
                        the simulcast layer / resolution from this size.
  --video-height PX
  --adaptive-stream     Room option adaptiveStream: true (visibility/size driven subscription)
  --stats-interval S    getStats() polling period (default 0.1); max_frame_gap_s has this resolution
  --viewport WxH        browser viewport (default 1280x720)
  --screenshot FILE     save a PNG screenshot of the page just before leaving
  --chromium PATH       browser binary (default $CHROMIUM or /usr/bin/chromium)
  --chromium-arg ARG    one more Chromium switch (repeatable; --disable-features=X and
                        --enable-features=X are merged with the runner's own lists)
  --allow-non-loopback  do not filter ICE servers/candidates and URLs to loopback
  --print-events        print each event as "EVENT {json}" on stderr
  -v, --verbose         page console, livekit-client debug logs, Chromium's stderr on stderr
  --audio-sample-rate, --audio-channels
                        accepted for drop-in compatibility with subscriber.py; ignored
                        (the browser reports the codec's clock rate / channels)
`;

class UsageError extends Error {}

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    allowPositionals: false,
    strict: true,
    options: {
      url: { type: 'string' },
      'api-key': { type: 'string' },
      'api-secret': { type: 'string' },
      room: { type: 'string' },
      identity: { type: 'string' },
      token: { type: 'string' },
      duration: { type: 'string', default: '10' },
      'wait-tracks': { type: 'string' },
      'exit-after-frames': { type: 'string' },
      'connect-timeout': { type: 'string', default: '10' },
      'hard-timeout': { type: 'string' },
      'video-width': { type: 'string' },
      'video-height': { type: 'string' },
      'adaptive-stream': { type: 'boolean', default: false },
      'stats-interval': { type: 'string', default: '0.1' },
      viewport: { type: 'string', default: '1280x720' },
      screenshot: { type: 'string' },
      chromium: { type: 'string' },
      'chromium-arg': { type: 'string', multiple: true, default: [] },
      'allow-non-loopback': { type: 'boolean', default: false },
      'print-events': { type: 'boolean', default: false },
      'audio-sample-rate': { type: 'string' },
      'audio-channels': { type: 'string' },
      verbose: { type: 'boolean', short: 'v', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true };
  const num = (name, { int = false, min = 0, optional = false } = {}) => {
    const v = values[name];
    if (v == null) {
      if (optional) return null;
      throw new UsageError(`--${name} is required`);
    }
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || (int && !Number.isInteger(n))) {
      throw new UsageError(`--${name}: expected ${int ? 'an integer' : 'a number'} >= ${min}, got '${v}'`);
    }
    return n;
  };
  const a = {
    url: values.url,
    apiKey: values['api-key'],
    // the secret from the environment keeps it out of argv (visible in ps to every user)
    apiSecret: values['api-secret'] || process.env.LIVEKIT_API_SECRET || undefined,
    room: values.room,
    identity: values.identity,
    token: values.token,
    duration: num('duration'),
    waitTracks: num('wait-tracks', { int: true, min: 1, optional: true }),
    exitAfterFrames: num('exit-after-frames', { int: true, min: 1, optional: true }),
    connectTimeout: num('connect-timeout', { min: 0.1 }),
    hardTimeout: num('hard-timeout', { min: 1, optional: true }),
    videoWidth: num('video-width', { int: true, min: 1, optional: true }),
    videoHeight: num('video-height', { int: true, min: 1, optional: true }),
    adaptiveStream: values['adaptive-stream'],
    statsInterval: num('stats-interval', { min: 0.02 }),
    screenshot: values.screenshot || null,
    chromium: values.chromium || process.env.CHROMIUM || '/usr/bin/chromium',
    chromiumArgs: values['chromium-arg'],
    allowNonLoopback: values['allow-non-loopback'],
    printEvents: values['print-events'],
    verbose: values.verbose,
  };
  const vp = /^(\d+)x(\d+)$/.exec(values.viewport);
  if (!vp) throw new UsageError(`--viewport: expected WxH, got '${values.viewport}'`);
  a.viewport = { width: Number(vp[1]), height: Number(vp[2]) };
  if (!a.url) throw new UsageError('--url is required');
  let u;
  try {
    u = new URL(a.url);
  } catch (_) {
    throw new UsageError(`--url: not a URL: '${a.url}'`);
  }
  if (!/^(wss?|https?):$/.test(u.protocol)) throw new UsageError(`--url: expected ws:// or wss://, got '${a.url}'`);
  if (!a.allowNonLoopback && !isLoopbackHost(u.hostname)) {
    throw new UsageError(`--url: ${u.hostname} is not a loopback address (pass --allow-non-loopback to allow it)`);
  }
  if (a.token) {
    const claims = decodeJwt(a.token);
    if (!claims) throw new UsageError('--token: not a JWT');
    a.identity = a.identity || claims.sub || '';
    a.room = a.room || (claims.video && claims.video.room) || '';
  } else {
    for (const [k, v] of [['api-key', a.apiKey], ['api-secret', a.apiSecret], ['room', a.room]]) {
      if (!v) {
        const alt = k === 'api-secret' ? ' (or env LIVEKIT_API_SECRET)' : '';
        throw new UsageError(`--${k} is required${alt} (or give --token)`);
      }
    }
    a.identity = a.identity || 'browser-sub';
    a.token = mintToken(a);
  }
  if (a.waitTracks != null && a.exitAfterFrames == null) a.exitAfterFrames = 1;
  if (a.exitAfterFrames != null && a.waitTracks == null) a.waitTracks = 1;
  if (a.hardTimeout == null) a.hardTimeout = a.duration + a.connectTimeout + 30;
  return a;
}

function isLoopbackHost(h) {
  h = String(h || '').toLowerCase().replace(/^\[/, '').replace(/\]$/, '');
  return h === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::1';
}

// ------------------------------------------------------------------ token (HS256 JWT)
const b64url = (x) => Buffer.from(x).toString('base64url');

function mintToken({ apiKey, apiSecret, identity, room }) {
  const t = Math.floor(Date.now() / 1000);
  const header = { alg: 'HS256', typ: 'JWT' };
  const claims = {
    iss: apiKey,
    sub: identity,
    name: identity,
    jti: identity,
    nbf: t - 5,
    exp: t + 6 * 3600,
    video: { roomJoin: true, room, canSubscribe: true, canPublish: false, canPublishData: false },
  };
  const data = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = crypto.createHmac('sha256', apiSecret).update(data).digest('base64url');
  return `${data}.${sig}`;
}

function decodeJwt(tok) {
  const parts = String(tok).split('.');
  if (parts.length !== 3) return null;
  try {
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch (_) {
    return null;
  }
}

// ------------------------------------------------------------------ resources
const R = {
  server: null,
  browser: null,
  browserPid: null,
  profileDir: null,
  page: null,
  cleaned: null,
};

function killBrowserSync() {
  const pid = R.browserPid;
  if (!pid) return;
  // puppeteer starts Chromium detached, as leader of its own process group
  for (const target of [-pid, pid]) {
    try { process.kill(target, 'SIGKILL'); } catch (_) { /* already gone */ }
  }
}

function removeProfileSync() {
  if (!R.profileDir) return;
  try { fs.rmSync(R.profileDir, { recursive: true, force: true, maxRetries: 3 }); } catch (_) { /* best effort */ }
  R.profileDir = null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what} timed out after ${ms / 1000}s`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

function processGone(pid) {
  try { process.kill(pid, 0); return false; } catch (_) { return true; }
}

async function cleanup() {
  if (R.cleaned) return R.cleaned;
  R.cleaned = (async () => {
    if (R.browser) {
      const proc = R.browser.process();
      try {
        await withTimeout(R.browser.close(), 4000, 'browser close');
      } catch (e) {
        log('warning', `closing Chromium: ${e.message}; killing it`);
      }
      killBrowserSync(); // the whole process group, in case a child lingers
      if (proc && proc.exitCode == null && proc.signalCode == null) {
        await withTimeout(new Promise((r) => proc.once('exit', r)), 2000, 'browser exit').catch(() => {});
      }
      for (let i = 0; i < 20 && R.browserPid && !processGone(R.browserPid); i++) await sleep(50);
      R.browser = null;
    }
    if (R.server) {
      const srv = R.server;
      R.server = null;
      try { srv.closeAllConnections(); } catch (_) { /* node < 18.2 */ }
      await withTimeout(new Promise((r) => srv.close(() => r())), 2000, 'http close').catch(() => {});
    }
    removeProfileSync();
  })();
  return R.cleaned;
}

process.on('exit', () => {
  // last resort on any exit path (also after an uncaught exception)
  killBrowserSync();
  removeProfileSync();
});

// ------------------------------------------------------------------ output
let emitted = false;
function emit(obj, code) {
  if (emitted) return;
  emitted = true;
  const line = `${JSON.stringify(obj)}\n`;
  try {
    fs.writeSync(1, line);
  } catch (e) {
    log('error', `could not write the report: ${e.message}`);
  }
  process.exitCode = code;
}

// ------------------------------------------------------------------ http server
function startServer() {
  const lkPath = require.resolve('livekit-client', { paths: [HERE] }); // "require" export: the UMD bundle
  const files = new Map([
    ['/', [path.join(HERE, 'page', 'index.html'), 'text/html; charset=utf-8']],
    ['/index.html', [path.join(HERE, 'page', 'index.html'), 'text/html; charset=utf-8']],
    ['/subscriber-page.js', [path.join(HERE, 'page', 'subscriber-page.js'), 'text/javascript; charset=utf-8']],
    ['/livekit-client.umd.js', [lkPath, 'text/javascript; charset=utf-8']],
  ]);
  const bodies = new Map();
  for (const [route, [file, type]] of files) bodies.set(route, [fs.readFileSync(file), type]);
  if (!/\.umd\.js$/.test(lkPath)) log('warning', `livekit-client resolved to ${lkPath}, expected its UMD bundle`);
  return new Promise((resolve, reject) => {
    const srv = http.createServer((req, res) => {
      const route = (req.url || '/').split('?')[0];
      const hit = req.method === 'GET' || req.method === 'HEAD' ? bodies.get(route) : null;
      if (!hit && route === '/favicon.ico') {
        res.writeHead(204);
        res.end();
        return;
      }
      if (!hit) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
        return;
      }
      res.writeHead(200, { 'content-type': hit[1], 'content-length': hit[0].length, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : hit[0]);
    });
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      srv.removeListener('error', reject);
      R.server = srv;
      resolve(`http://127.0.0.1:${srv.address().port}/`);
    });
  });
}

// ------------------------------------------------------------------ Chromium
function chromiumArgs(a) {
  const args = [
    '--headless=new',
    '--no-sandbox', // runs as root here
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-domain-reliability',
    '--disable-breakpad',
    '--no-pings',
    '--autoplay-policy=no-user-gesture-required',
    '--use-fake-ui-for-media-stream',
    '--hide-scrollbars',
    '--mute-audio', // decoded and played out (stats count it), never audible
    // WebRTC on loopback: without this the host candidates are mDNS names
    // (xxxx.local): the SFU would have to resolve them by multicast, and
    // Chromium answers mDNS queries on the LAN.
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    // gather the 127.0.0.1 host candidate too (Chromium skips loopback
    // interfaces otherwise), so the selected pair is 127.0.0.1 <-> 127.0.0.1
    '--allow-loopback-in-peer-connection',
    `--window-size=${a.viewport.width},${a.viewport.height}`,
  ];
  if (!a.allowNonLoopback) {
    // every host name except loopback ones fails to resolve: no stray lookups or fetches
    args.push('--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1');
  }
  if (a.verbose) args.push('--enable-logging=stderr', '--v=0');
  args.push(...a.chromiumArgs);
  return args;
}

async function launchBrowser(a) {
  process.env.PUPPETEER_SKIP_DOWNLOAD = '1';
  let puppeteer;
  try {
    puppeteer = require(require.resolve('puppeteer-core', { paths: [HERE] }));
  } catch (e) {
    throw new StartupError(`puppeteer-core not installed (${e.code || e.message}): run scripts/setup-browser`);
  }
  try {
    fs.accessSync(a.chromium, fs.constants.X_OK);
  } catch (_) {
    throw new StartupError(`Chromium not found at ${a.chromium}: run scripts/setup-browser`);
  }
  sweepStaleProfiles();
  R.profileDir = fs.mkdtempSync(path.join(os.tmpdir(), PROFILE_PREFIX));
  fs.writeFileSync(path.join(R.profileDir, 'owner.pid'), `${process.pid}\n`);
  const home = path.join(R.profileDir, 'home');
  fs.mkdirSync(home);
  const env = Object.assign({}, process.env, {
    HOME: home, // Chromium's ~/.pki, ~/.config, crash dirs: all inside the temp dir
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
  });
  delete env.LIVEKIT_API_SECRET; // the page gets a token, Chromium never the secret
  const args = chromiumArgs(a);
  log('debug', `launching ${a.chromium} ${args.join(' ')}`);
  try {
    R.browser = await puppeteer.launch({
      executablePath: a.chromium,
      headless: false, // --headless=new is in args, so puppeteer adds nothing of its own for it
      pipe: true, // CDP over fds 3/4: Chromium quits by itself if this process dies
      userDataDir: path.join(R.profileDir, 'profile'),
      args,
      env,
      dumpio: false,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      defaultViewport: a.viewport,
      timeout: 30000,
      protocolTimeout: Math.round((a.hardTimeout + 30) * 1000),
    });
  } catch (e) {
    throw new StartupError(`could not start Chromium (${a.chromium}): ${String(e.message).split('\n')[0]}`);
  }
  const proc = R.browser.process();
  R.browserPid = proc ? proc.pid : null;
  if (proc && a.verbose) {
    for (const s of [proc.stderr, proc.stdout]) {
      if (s) s.on('data', (d) => process.stderr.write(`chromium: ${d}`));
    }
  }
  return R.browser;
}

class StartupError extends Error {}

const PROFILE_PREFIX = 'browser-subscriber-';

// temp dirs left by runs that were SIGKILLed (Chromium itself quits when the CDP pipe closes)
function sweepStaleProfiles() {
  let names = [];
  try { names = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(PROFILE_PREFIX)); } catch (_) { return; }
  for (const n of names) {
    const dir = path.join(os.tmpdir(), n);
    try {
      const pid = Number(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8').trim());
      let alive = false;
      try { process.kill(pid, 0); alive = true; } catch (e) { alive = e.code === 'EPERM'; }
      if (pid > 0 && !alive) {
        fs.rmSync(dir, { recursive: true, force: true });
        log('debug', `removed stale ${dir}`);
      }
    } catch (_) { /* no owner file yet, or not ours: leave it */ }
  }
}

// ------------------------------------------------------------------ main
async function main() {
  let a;
  try {
    a = parseCli(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${PROG}: error: ${e.message} (see --help)\n`);
    process.exit(4);
  }
  if (a.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  VERBOSE = a.verbose;

  const mirror = { events: [], connected: false }; // node-side copy, for reports when the page is gone
  const base = (extra) => Object.assign({
    connected: mirror.connected,
    room: a.room,
    room_sid: '',
    identity: a.identity,
    connect_seconds: null,
    connect_t_wall: null,
    start_t_wall: Math.round(T0_MS * 10) / 1e4,
    end_seconds: nowS(),
    end_reason: '',
    tracks: [],
    events: mirror.events.slice(),
  }, extra);

  // ---- stop requests (signals) and "done" from the page
  let stopResolve;
  const stopped = new Promise((r) => { stopResolve = r; });
  let doneResolve;
  const done = new Promise((r) => { doneResolve = r; });
  let signals = 0;
  const onSignal = (sig) => {
    signals += 1;
    if (signals === 1) {
      log('info', `${sig}: ending`);
      stopResolve('signal');
    } else {
      log('warning', `second signal (${sig}): killing Chromium and leaving now`);
      killBrowserSync();
      removeProfileSync();
      if (!emitted) emit(base({ end_reason: 'signal', error: `interrupted (${sig})` }), 0);
      process.exit(128 + (os.constants.signals[sig] || 15));
    }
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => onSignal(sig));
  process.on('SIGPIPE', () => {});

  // ---- hard timeout: whatever happens, print something and leave
  const hard = setTimeout(async () => {
    log('error', `hard timeout (${a.hardTimeout}s) reached, exiting`);
    let rep = null;
    if (R.page) {
      rep = await withTimeout(R.page.evaluate((x) => window.__sub && window.__sub.snapshot(x), { hard_timeout: true }), 2000, 'snapshot')
        .catch(() => null);
    }
    if (!rep) rep = base({ error: 'hard timeout' });
    rep.end_reason = 'hard_timeout';
    rep.hard_timeout = true;
    await withTimeout(cleanup(), 6000, 'cleanup').catch(() => {});
    emit(rep, 3);
    process.exit(3);
  }, a.hardTimeout * 1000);
  hard.unref();

  let report = null;
  let code = 0;
  let browserInfo = {};
  try {
    // ---- start: http server, Chromium, page
    let pageUrl;
    try {
      pageUrl = await startServer();
    } catch (e) {
      if (e instanceof StartupError) throw e;
      throw new StartupError(`http server / page files: ${e.message} (run scripts/setup-browser)`);
    }
    log('debug', `page at ${pageUrl}`);
    const tLaunch = nowS();
    const browser = await launchBrowser(a);
    browserInfo.version = await browser.version().catch(() => null);
    browserInfo.launch_seconds = Math.round((nowS() - tLaunch) * 1000) / 1000;
    log('debug', `${browserInfo.version} up in ${browserInfo.launch_seconds}s`);
    browser.on('disconnected', () => {
      if (!R.cleaned) {
        log('error', 'Chromium went away');
        stopResolve('browser_exited');
      }
    });

    const page = (await browser.pages())[0] || (await browser.newPage());
    R.page = page;
    page.on('console', (m) => {
      const type = m.type();
      if (VERBOSE || type === 'error' || type === 'warn' || type === 'warning') log('debug', `page ${type}: ${m.text()}`);
    });
    page.on('pageerror', (e) => log('warning', `page error: ${e.message}`));
    if (!a.allowNonLoopback) {
      await page.setRequestInterception(true);
      page.on('request', (req) => {
        let ok = false;
        try {
          const u = new URL(req.url());
          ok = u.protocol === 'data:' || u.protocol === 'blob:' || isLoopbackHost(u.hostname);
        } catch (_) { ok = false; }
        if (ok) req.continue().catch(() => {});
        else {
          log('warning', `blocked request to ${req.url()}`);
          req.abort('blockedbyclient').catch(() => {});
        }
      });
    }
    await page.exposeFunction('__lkNotify', (msg) => {
      if (!msg || typeof msg !== 'object') return;
      if (msg.type === 'event' && msg.event) {
        mirror.events.push(msg.event);
        if (a.printEvents) process.stderr.write(`EVENT ${JSON.stringify(msg.event)}\n`);
      } else if (msg.type === 'done') {
        doneResolve(msg.reason || 'frames');
      }
    });
    try {
      await page.goto(pageUrl, { waitUntil: 'load', timeout: 15000 });
      const ok = await page.evaluate(() => !!(window.LivekitClient && window.__sub));
      if (!ok) throw new Error('page scripts did not load (livekit-client bundle or subscriber-page.js)');
    } catch (e) {
      throw new StartupError(`loading the page: ${e.message}`);
    }
    browserInfo.livekit_client = await page.evaluate(() => window.LivekitClient.version).catch(() => null);
    browserInfo.receive_codecs = await page.evaluate(() => window.__sub.receiveCodecs()).catch(() => null);

    // ---- connect
    const cfg = {
      url: a.url,
      token: a.token,
      room: a.room,
      identity: a.identity,
      t0_ms: T0_MS,
      connect_timeout: a.connectTimeout,
      wait_tracks: a.waitTracks,
      exit_after_frames: a.exitAfterFrames,
      adaptive_stream: a.adaptiveStream,
      video_width: a.videoWidth,
      video_height: a.videoHeight,
      stats_interval: a.statsInterval,
      allow_non_loopback: a.allowNonLoopback,
      verbose: a.verbose,
    };
    const first = await Promise.race([
      page.evaluate((c) => window.__sub.connect(c), cfg).then((r) => ({ r })),
      stopped.then((reason) => ({ stop: reason })),
    ]);
    let reason;
    if (first.stop) {
      reason = first.stop;
    } else if (!first.r.connected) {
      log('error', `connect failed: ${first.r.error}`);
      report = await withTimeout(page.evaluate(() => window.__sub.snapshot()), 3000, 'snapshot')
        .catch(() => base({ error: first.r.error, end_reason: 'connect_failed' }));
      code = 2;
    } else {
      mirror.connected = true;
      log('debug', `connected at ${first.r.connect_seconds}s; staying ${a.duration}s`);
      let timer;
      reason = await Promise.race([
        new Promise((r) => { timer = setTimeout(() => r('duration'), a.duration * 1000); }),
        done,
        stopped,
      ]);
      clearTimeout(timer);
    }
    if (!report) {
      report = await withTimeout(page.evaluate((r) => window.__sub.finish(r), reason), 10000, 'finish')
        .catch((e) => {
          log('error', `collecting the report: ${e.message}`);
          return base({ end_reason: reason, error: `collecting the report: ${e.message}` });
        });
      // after the figures are taken (a capture can stall the renderer), before leaving
      if (a.screenshot && reason !== 'browser_exited') {
        await withTimeout(page.screenshot({ path: a.screenshot }), 5000, 'screenshot')
          .catch((e) => log('warning', `screenshot: ${e.message}`));
      }
      if (reason !== 'browser_exited') {
        await withTimeout(page.evaluate(() => window.__sub.leave()), 5000, 'leave').catch(() => {});
      }
      if (reason === 'browser_exited') {
        report.error = report.error || 'Chromium exited unexpectedly';
        code = 4;
      }
    }
  } catch (e) {
    const msg = e instanceof StartupError ? e.message : `${e.name || 'Error'}: ${e.message}`;
    process.stderr.write(`${PROG}: error: ${msg}\n`);
    if (VERBOSE && e.stack) log('debug', e.stack);
    report = base({ connected: mirror.connected, error: msg, end_reason: e instanceof StartupError ? 'startup_failed' : 'internal_error' });
    code = e instanceof StartupError ? 5 : 4;
  }
  report.browser = Object.assign({}, browserInfo, report.browser || {});
  // tear down before printing; bounded so the report always comes out
  await withTimeout(cleanup(), 8000, 'cleanup').catch((e) => log('warning', e.message));
  clearTimeout(hard);
  emit(report, code);
  process.exit(code);
}

main().catch((e) => {
  process.stderr.write(`${PROG}: error: ${e && e.stack ? e.stack : e}\n`);
  killBrowserSync();
  removeProfileSync();
  if (!emitted) emit({ connected: false, error: String(e && e.message), tracks: [], events: [] }, 4);
  process.exit(4);
});

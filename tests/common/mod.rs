//! Shared harness for the end-to-end tests: a real `livekit-server` on loopback, the
//! independent Python subscriber (LiveKit's own SDK, decoding with libwebrtc), the
//! publisher binary, and child processes that never outlive their test.
//!
//! Use from a test file with `mod common;` and `use common::*;`.
//!
//! Every child process spawned here is
//! - killed (SIGKILL) and reaped when its guard is dropped, also when the test panics;
//! - sent SIGKILL by the kernel if the thread that spawned it ends (PR_SET_PDEATHSIG), so
//!   even a test binary killed from outside leaves nothing behind. Consequence: spawn a child
//!   from the thread that owns it (the test's own thread), not from a helper thread that
//!   returns early, and do not share one server between tests through a static.
//!
//! Prerequisites (`scripts/setup` installs them): `tools/bin/livekit-server` (or env
//! `LIVEKIT_SERVER_BIN`) and `.venv/bin/python` with the `livekit` SDK (or env
//! `SUBSCRIBER_PYTHON`). If they are missing the tests fail with "run scripts/setup first";
//! they never skip.
//!
//! Logs: each server/subscriber/publisher writes into its own temp dir; when a test panics
//! the tails of those logs are printed to stderr. Set `KEEP_TEST_LOGS=1` to keep the dirs.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// How long the server may take to answer `GET /` with 200.
pub const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------------------------------
// paths

/// Root of the crate (where Cargo.toml is).
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's binary, built by cargo for this test run.
pub fn publisher_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gstreamer-publisher"))
}

/// `$LIVEKIT_SERVER_BIN` or `<crate>/tools/bin/livekit-server`; panics when missing.
pub fn livekit_server_bin() -> PathBuf {
    let p = std::env::var_os("LIVEKIT_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("tools/bin/livekit-server"));
    if !p.is_file() {
        panic!(
            "livekit-server not found at {} — run scripts/setup first (or set LIVEKIT_SERVER_BIN)",
            p.display()
        );
    }
    p
}

/// `$SUBSCRIBER_PYTHON` or `<crate>/.venv/bin/python`; panics when missing.
pub fn subscriber_python() -> PathBuf {
    let p = std::env::var_os("SUBSCRIBER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join(".venv/bin/python"));
    if !p.exists() {
        panic!(
            "python venv not found at {} — run scripts/setup first (or set SUBSCRIBER_PYTHON)",
            p.display()
        );
    }
    p
}

pub fn subscriber_script() -> PathBuf {
    manifest_dir().join("tests/subscriber/subscriber.py")
}

/// A temp dir for one test's logs; kept when `KEEP_TEST_LOGS=1`.
pub fn test_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("gstpub-{prefix}-"))
        .tempdir()
        .expect("create temp dir");
    dir
}

fn keep_logs() -> bool {
    std::env::var_os("KEEP_TEST_LOGS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Last `n` lines of a text file (empty if unreadable).
pub fn tail_file(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    tail_str(&text, n)
}

/// Last `n` lines of `text`, each cut to 500 characters (server logs carry whole SDPs).
pub fn tail_str(text: &str, n: usize) -> String {
    const MAX: usize = 500;
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| match l.char_indices().nth(MAX) {
            Some((i, _)) => format!("{} …[{} more bytes]", &l[..i], l.len() - i),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------------------------------
// ports

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A port that is free for both TCP and UDP on 127.0.0.1, never handed out twice by this
/// process. Drawn at random below Linux's ephemeral range (32768+), so the kernel does not
/// give it to some outgoing connection meanwhile, and so parallel test binaries rarely clash.
pub fn free_port() -> u16 {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..2000 {
        let port: u16 = rng.random_range(20000..32000);
        let mut set = handed_out().lock().unwrap();
        if set.contains(&port) {
            continue;
        }
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        if tcp.is_ok() && udp.is_ok() {
            set.insert(port);
            return port;
        }
    }
    panic!("no free port found on 127.0.0.1");
}

// ------------------------------------------------------------------------------------------
// child processes

/// Make the child die (SIGKILL) when the thread that spawned it ends. See the module docs.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    extern "C" {
        fn prctl(option: std::os::raw::c_int, ...) -> std::os::raw::c_int;
        fn getppid() -> std::os::raw::c_int;
    }
    const PR_SET_PDEATHSIG: std::os::raw::c_int = 1;
    const SIGKILL: std::os::raw::c_ulong = 9;
    let parent = std::process::id() as std::os::raw::c_int;
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if getppid() != parent {
                // the parent died between fork and prctl
                return Err(std::io::Error::other("parent gone"));
            }
            Ok(())
        });
    }
}

/// Send a signal by name ("TERM", "INT", "STOP", "CONT", "KILL", ...) with the `kill` command.
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run kill");
    if !st.success() {
        eprintln!("harness: kill -{sig} {pid} failed ({st})");
    }
}

/// A child process that is killed and reaped on drop, and dies with its spawning thread.
pub struct ChildGuard {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawn `cmd` (stdin is /dev/null; stdout/stderr as configured on `cmd`).
    pub fn spawn(name: &str, mut cmd: Command) -> ChildGuard {
        cmd.stdin(Stdio::null());
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        ChildGuard {
            name: name.to_string(),
            child,
            status: None,
        }
    }

    /// Spawn with stdout and stderr appended to `log`.
    pub fn spawn_logged(name: &str, mut cmd: Command, log: &Path) -> ChildGuard {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let f2 = f.try_clone().expect("clone log file");
        cmd.stdout(Stdio::from(f)).stderr(Stdio::from(f2));
        Self::spawn(name, cmd)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Exit status if it has exited (non-blocking).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Wait up to `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait up to `timeout`; panics (after killing it) if it did not exit.
    pub fn wait_or_kill(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_timeout(timeout) {
            Some(st) => st,
            None => {
                self.kill();
                panic!("{} did not exit within {:?}", self.name, timeout);
            }
        }
    }

    pub fn signal(&mut self, sig: &str) {
        if self.is_running() {
            send_signal(self.pid(), sig);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> ExitStatus {
        self.signal("TERM");
        if let Some(st) = self.wait_timeout(grace) {
            return st;
        }
        self.kill();
        self.status.expect("status after kill")
    }

    /// SIGKILL (also wakes a SIGSTOPped process) and reap.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().expect("wait after kill"));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Output of [`run_with_timeout`].
#[derive(Debug)]
pub struct RunOutput {
    /// None when it timed out (and was killed).
    pub status: Option<ExitStatus>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl RunOutput {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

fn read_all_in_thread<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Run `cmd` to completion with captured stdout/stderr; killed after `timeout`.
pub fn run_with_timeout(name: &str, mut cmd: Command, timeout: Duration) -> RunOutput {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut g = ChildGuard::spawn(name, cmd);
    let out = read_all_in_thread(g.child.stdout.take().unwrap());
    let err = read_all_in_thread(g.child.stderr.take().unwrap());
    let status = g.wait_timeout(timeout);
    if status.is_none() {
        g.kill();
    }
    let elapsed = start.elapsed();
    RunOutput {
        status,
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed,
    }
}

// ------------------------------------------------------------------------------------------
// livekit-server

/// Extra configuration for [`LiveKitServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra top-level YAML lines (the config is parsed strictly: unknown keys are errors).
    pub extra_yaml: Vec<String>,
    /// Extra lines under `rtc:` (without indentation).
    pub extra_rtc_yaml: Vec<String>,
    /// Log level (default "info").
    pub log_level: Option<String>,
}

/// A `livekit-server` on 127.0.0.1 with its own ports, keys and temp dir; killed on drop.
pub struct LiveKitServer {
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    port: u16,
    udp_port: u16,
    api_key: String,
    api_secret: String,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<ChildGuard>,
    paused: bool,
}

impl LiveKitServer {
    /// Start a server and wait until `GET /` answers 200 (panics after 15 s).
    pub fn start() -> LiveKitServer {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> LiveKitServer {
        use rand::Rng;
        livekit_server_bin(); // panics early with "run scripts/setup first"
        let dir = test_dir("lk");
        let dir_path = dir.path().to_path_buf();
        let port = free_port();
        let udp_port = free_port();
        let mut rng = rand::rng();
        let api_key = format!("APItest{:08x}", rng.random::<u32>());
        let api_secret: String = (0..40)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
            .collect();

        let mut yaml = String::new();
        yaml.push_str(&format!("port: {port}\n"));
        yaml.push_str("bind_addresses: [127.0.0.1]\n");
        yaml.push_str(&format!("keys: {{{api_key}: {api_secret}}}\n"));
        yaml.push_str(&format!(
            "logging: {{level: {}}}\n",
            opts.log_level.as_deref().unwrap_or("info")
        ));
        yaml.push_str("turn: {enabled: false}\n");
        for l in &opts.extra_yaml {
            yaml.push_str(l);
            yaml.push('\n');
        }
        yaml.push_str("rtc:\n");
        yaml.push_str(&format!("  udp_port: {udp_port}\n"));
        yaml.push_str("  tcp_port: 0\n");
        yaml.push_str("  use_external_ip: false\n");
        yaml.push_str("  node_ip: 127.0.0.1\n");
        yaml.push_str("  enable_loopback_candidate: true\n");
        yaml.push_str("  interfaces: {includes: [lo]}\n");
        yaml.push_str("  ips: {includes: [127.0.0.1/32]}\n");
        yaml.push_str("  stun_servers: [127.0.0.1:3478]\n");
        for l in &opts.extra_rtc_yaml {
            yaml.push_str("  ");
            yaml.push_str(l);
            yaml.push('\n');
        }
        let config_path = dir_path.join("livekit.yaml");
        fs::write(&config_path, yaml).expect("write livekit config");
        let log_path = dir_path.join("livekit-server.log");

        let mut s = LiveKitServer {
            dir: Some(dir),
            dir_path,
            port,
            udp_port,
            api_key,
            api_secret,
            config_path,
            log_path,
            child: None,
            paused: false,
        };
        s.spawn_and_wait();
        s
    }

    fn spawn_and_wait(&mut self) {
        let mut cmd = Command::new(livekit_server_bin());
        cmd.arg("--config")
            .arg(&self.config_path)
            .current_dir(&self.dir_path);
        // keep the environment from adding config (LIVEKIT_KEYS etc. override the file)
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LIVEKIT_") {
                cmd.env_remove(&k);
            }
        }
        let _ = writeln!(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .expect("open log"),
            "=== harness: starting livekit-server on 127.0.0.1:{} (udp {})",
            self.port,
            self.udp_port
        );
        self.child = Some(ChildGuard::spawn_logged(
            "livekit-server",
            cmd,
            &self.log_path,
        ));
        self.paused = false;
        let deadline = Instant::now() + SERVER_READY_TIMEOUT;
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait() {
                panic!(
                    "livekit-server exited during start-up ({st}); log {}:\n{}",
                    self.log_path.display(),
                    tail_file(&self.log_path, 40)
                );
            }
            if http_get_status(self.port, "/", Duration::from_millis(500)) == Some(200) {
                return;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "livekit-server did not answer GET / with 200 within {:?}; log {}:\n{}",
                    SERVER_READY_TIMEOUT,
                    self.log_path.display(),
                    tail_file(&self.log_path, 40)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ws://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
    pub fn api_secret(&self) -> &str {
        &self.api_secret
    }
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
    /// The temp dir holding config and logs (also handy for a test's own files).
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }
    /// Pid of the running server; panics if it is stopped.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("livekit-server is not running")
            .pid()
    }
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.is_running())
    }

    /// Answers `GET /` with 200 right now?
    pub fn is_ready(&self) -> bool {
        http_get_status(self.port, "/", Duration::from_millis(500)) == Some(200)
    }

    /// Graceful stop: SIGTERM, SIGKILL after 5 s. No-op when already stopped.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.paused {
                c.signal("CONT");
            }
            c.terminate(Duration::from_secs(5));
        }
        self.paused = false;
    }

    /// Crash: SIGKILL at once. No-op when already stopped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
        self.paused = false;
    }

    /// Start again (same ports, keys and config) after `stop()`/`kill()`, or stop first.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait();
    }

    /// Start again after `stop()`/`kill()` (panics if it is running).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "livekit-server is still running");
        self.spawn_and_wait();
    }

    /// Freeze the server (SIGSTOP): sockets stay open, nothing answers. Returns once every
    /// thread of the server is stopped.
    pub fn pause(&mut self) {
        let c = self.child.as_mut().expect("livekit-server is not running");
        c.signal("STOP");
        let pid = c.pid();
        self.paused = true;
        if wait_until(Duration::from_secs(5), || {
            all_threads_stopped(pid).then_some(())
        })
        .is_none()
        {
            eprintln!("harness: livekit-server {pid} not fully stopped 5 s after SIGSTOP");
        }
    }

    /// Thaw after [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&mut self) {
        let c = self.child.as_mut().expect("livekit-server is not running");
        c.signal("CONT");
        let pid = c.pid();
        self.paused = false;
        let _ = wait_until(Duration::from_secs(5), || {
            (!all_threads_stopped(pid)).then_some(())
        });
    }
}

impl Drop for LiveKitServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- livekit-server log tail ({}):\n{}\n---",
                self.log_path.display(),
                tail_file(&self.log_path, 30)
            );
        }
        if keep_logs() || thread::panicking() {
            if let Some(d) = self.dir.take() {
                let p = d.keep();
                eprintln!("harness: kept livekit-server dir {}", p.display());
            }
        }
    }
}

/// Every thread of `pid` is in state T (stopped) according to /proc.
pub fn all_threads_stopped(pid: u32) -> bool {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for e in dir.flatten() {
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "tid (comm) S ...": the state follows the last ')'
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        match state {
            Some('T') | Some('t') => any = true,
            _ => return false,
        }
    }
    any
}

/// Status code of `GET path` on 127.0.0.1:port over HTTP/1.0, or None.
pub fn http_get_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    // "HTTP/1.0 200 OK"
    line.split_whitespace().nth(1)?.parse().ok()
}

// ------------------------------------------------------------------------------------------
// tokens

/// A join token for `room` signed with the server's key: canPublish, and canSubscribe as asked.
pub fn token(server: &LiveKitServer, room: &str, identity: &str, can_subscribe: bool) -> String {
    token_with(
        server.api_key(),
        server.api_secret(),
        room,
        identity,
        true,
        can_subscribe,
    )
}

/// A join token with explicit key/secret and grants.
pub fn token_with(
    api_key: &str,
    api_secret: &str,
    room: &str,
    identity: &str,
    can_publish: bool,
    can_subscribe: bool,
) -> String {
    livekit_token::AccessToken::with_api_key(api_key, api_secret)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(livekit_token::VideoGrants {
            room_join: true,
            room: room.to_string(),
            can_publish: Some(can_publish),
            can_subscribe: Some(can_subscribe),
            ..Default::default()
        })
        .to_jwt()
        .expect("mint token")
}

/// A unique room name for a test (rooms are auto-created by the server).
pub fn room_name(prefix: &str) -> String {
    use rand::Rng;
    format!("{prefix}-{:06x}", rand::rng().random::<u32>() & 0xff_ffff)
}

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
    log_path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Subscriber {
    /// Start `subscriber.py --url .. --api-key .. --api-secret .. --room ROOM --print-events ARGS`.
    /// `args` are passed through, e.g. `&["--duration", "6", "--wait-tracks", "2"]`.
    pub fn spawn(server: &LiveKitServer, room: &str, args: &[&str]) -> Subscriber {
        Self::spawn_with(
            &server.url(),
            server.api_key(),
            server.api_secret(),
            room,
            args,
        )
    }

    /// Same with explicit url/key/secret (e.g. a wrong secret).
    pub fn spawn_with(
        url: &str,
        api_key: &str,
        api_secret: &str,
        room: &str,
        args: &[&str],
    ) -> Subscriber {
        let py = subscriber_python();
        let dir = test_dir("sub");
        let log_path = dir.path().join("subscriber.log");
        let mut cmd = Command::new(py);
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
            log_path,
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
    pub fn track_by_sid(&self, sid: &str) -> Option<&TrackReport> {
        self.tracks.iter().find(|t| t.sid == sid)
    }
    pub fn tracks_of(&self, identity: &str) -> Vec<&TrackReport> {
        self.tracks
            .iter()
            .filter(|t| t.participant == identity)
            .collect()
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
    /// `t` (seconds since subscriber start) of the first event of type `ty`.
    pub fn event_time(&self, ty: &str) -> Option<f64> {
        self.first_event(ty, None).and_then(|e| e["t"].as_f64())
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

impl TrackReport {
    pub fn is_video(&self) -> bool {
        self.kind == "video"
    }
    pub fn is_audio(&self) -> bool {
        self.kind == "audio"
    }
}

// ------------------------------------------------------------------------------------------
// publisher

/// The publisher binary, logging into a temp dir; killed on drop.
pub struct Publisher {
    pub guard: ChildGuard,
    log_path: PathBuf,
    _dir: Option<tempfile::TempDir>,
    started: Instant,
    started_wall: f64,
}

/// `gstreamer-publisher --url URL --token TOKEN <extra> -- <pipeline words>`, with the
/// LIVEKIT_* variables of the test's environment removed. Adjust further as needed.
pub fn publisher_command(url: &str, token: &str, extra: &[&str], pipeline: &str) -> Command {
    let mut cmd = Command::new(publisher_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LIVEKIT_") {
            cmd.env_remove(&k);
        }
    }
    cmd.args(["--url", url, "--token", token]).args(extra);
    cmd.arg("--").args(pipeline.split_whitespace());
    cmd
}

impl Publisher {
    /// Spawn `cmd` (e.g. from [`publisher_command`]) with its output logged.
    pub fn spawn(cmd: Command) -> Publisher {
        let dir = test_dir("pub");
        let log_path = dir.path().join("publisher.log");
        let started_wall = unix_now();
        let started = Instant::now();
        let guard = ChildGuard::spawn_logged("gstreamer-publisher", cmd, &log_path);
        Publisher {
            guard,
            log_path,
            _dir: Some(dir),
            started,
            started_wall,
        }
    }

    /// Publish `pipeline` into `room` as `identity` (token minted for the server's keys).
    pub fn start(
        server: &LiveKitServer,
        room: &str,
        identity: &str,
        pipeline: &str,
        extra: &[&str],
    ) -> Publisher {
        let tok = token(server, room, identity, false);
        Self::spawn(publisher_command(&server.url(), &tok, extra, pipeline))
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }
    /// Unix time just before it was spawned (to relate to subscriber `*_t_wall` fields).
    pub fn started_wall(&self) -> f64 {
        self.started_wall
    }
    pub fn started(&self) -> Instant {
        self.started
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
    pub fn is_running(&mut self) -> bool {
        self.guard.is_running()
    }
    /// SIGINT/SIGTERM etc.
    pub fn signal(&mut self, sig: &str) {
        self.guard.signal(sig);
    }
    /// Wait for exit; None on timeout (still running).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.guard.wait_timeout(timeout)
    }
    /// Wait for exit, panicking with the log tail if it does not exit in time.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        match self.guard.wait_timeout(timeout) {
            Some(st) => st,
            None => {
                self.guard.kill();
                panic!(
                    "gstreamer-publisher did not exit within {timeout:?}; log:\n{}",
                    tail_file(&self.log_path, 40)
                );
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.guard.kill();
        if thread::panicking() {
            eprintln!(
                "--- publisher log tail ({}):\n{}\n---",
                self.log_path.display(),
                tail_file(&self.log_path, 40)
            );
        }
        if keep_logs() || thread::panicking() {
            if let Some(d) = self._dir.take() {
                eprintln!(
                    "harness: kept publisher log {}",
                    d.keep().join("publisher.log").display()
                );
            }
        }
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Poll `f` every 20 ms until it returns Some, or None after `timeout`.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

//! Child processes that never outlive their test, logs, ports, and small waits.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------
// paths

/// Root of the project (where its Cargo.toml is); this crate lives in `tests/harness`.
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the project root exists")
}

/// The project's binary, built by cargo for this test run: next to the `deps` folder that
/// holds the running test binary (`target/<profile>/deps/<test>` → `target/<profile>/`).
pub fn publisher_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = profile_dir.join("gstreamer-publisher");
    assert!(
        bin.is_file(),
        "{} is missing: cargo builds it for the integration tests (run them with cargo test)",
        bin.display()
    );
    bin
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
    tempfile::Builder::new()
        .prefix(&format!("gstpub-{prefix}-"))
        .disable_cleanup(keep_logs())
        .tempdir()
        .expect("create temp dir")
}

pub(crate) fn keep_logs() -> bool {
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
    pub(crate) child: Child,
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

pub(crate) fn read_all_in_thread<R: Read + Send + 'static>(mut r: R) -> JoinHandle<String> {
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

/// Pids and command lines of the live processes whose environment holds `var` (`NAME=value`):
/// a script's children inherit a marker from the test and can be found after it ended.
pub fn processes_with_env(var: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(env) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == var.as_bytes()) {
            let cmd = fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            found.push((pid, cmd));
        }
    }
    found
}

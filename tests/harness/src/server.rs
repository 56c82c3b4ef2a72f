//! A real livekit-server per test, on free loopback ports or inside a network lab, and tokens
//! for it.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::{self};
use std::time::{Duration, Instant};

use crate::lab::{self, Lab, Netns};
use crate::process::*;

/// How long the server may take to answer `GET /` with 200.
pub const SERVER_READY_TIMEOUT: Duration = Duration::from_secs(15);
// ------------------------------------------------------------------------------------------
// livekit-server

/// Extra configuration for [`LiveKitServer::start_with`] (and [`LabServerOptions::server`]).
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Extra top-level YAML lines (the config is parsed strictly: unknown keys are errors).
    pub extra_yaml: Vec<String>,
    /// Extra lines under `rtc:` (without indentation).
    pub extra_rtc_yaml: Vec<String>,
    /// Log level (default "info").
    pub log_level: Option<String>,
    /// Multi-node: the `host:port` of the Redis the nodes share (`redis: {address: ..}`;
    /// see [`Redis`](crate::cluster::Redis) and [`Cluster`](crate::cluster::Cluster)). None:
    /// a single node without Redis.
    pub redis: Option<String>,
    /// API key and secret; None: a fresh pair for this server. The nodes of a cluster share
    /// theirs, so a token is valid on every node.
    pub keys: Option<(String, String)>,
}

/// A server inside a lab ([`LiveKitServer::start_in_lab`]). Every lab has its own
/// namespaces, so the ports are fixed (see the `LAB_*` constants) and never clash.
#[derive(Debug, Clone, Default)]
pub struct LabServerOptions {
    /// ICE over TCP on [`LAB_ICE_TCP_PORT`] (`rtc.tcp_port`; off: 0).
    pub tcp_port: bool,
    /// The embedded TURN server: UDP on [`LAB_TURN_UDP_PORT`], TLS on [`LAB_TURN_TLS_PORT`] for
    /// [`LAB_TURN_DOMAIN`] with a certificate of a throw-away CA ([`LiveKitServer::ca_file`]).
    pub turn: bool,
    pub server: ServerOptions,
}

/// HTTP/WebSocket signalling of a lab server.
pub const LAB_HTTP_PORT: u16 = 7880;
/// ICE over TCP of a lab server (when [`LabServerOptions::tcp_port`]).
pub const LAB_ICE_TCP_PORT: u16 = 7881;
/// ICE over UDP (single-port mux) of a lab server.
pub const LAB_ICE_UDP_PORT: u16 = 7882;
/// Embedded TURN over UDP; also the STUN server handed to clients (nothing answers there
/// without TURN, as on loopback: no Google STUN is ever handed out).
pub const LAB_TURN_UDP_PORT: u16 = 3478;
/// Embedded TURN over TLS. It must be 443: livekit-server v1.13.5 always advertises
/// `turns:<domain>:443?transport=tcp` (roommanager.go).
pub const LAB_TURN_TLS_PORT: u16 = 443;
/// The TURN domain (its TLS certificate's name), resolved in the lab by `Lab::map_host`.
pub const LAB_TURN_DOMAIN: &str = "turn.lab.test";
/// Ports the TURN server relays from.
pub const LAB_RELAY_RANGE: (u16, u16) = (30000, 30099);

/// The embedded TURN server of a lab server.
#[derive(Debug, Clone)]
pub struct Turn {
    /// Name in the TLS certificate, resolving to the server's address inside the lab.
    pub domain: String,
    pub udp_port: u16,
    pub tls_port: u16,
    /// The throw-away CA that signed the TLS certificate: what a `turns:` client must trust.
    pub ca_cert: PathBuf,
    pub relay_range: (u16, u16),
}

/// A `livekit-server` with its own ports, keys and temp dir; killed on drop. On loopback
/// ([`start`](Self::start)) or in a lab's server namespace ([`start_in_lab`](Self::start_in_lab)).
pub struct LiveKitServer {
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    /// The address it binds to and advertises: 127.0.0.1, or the lab's server address.
    ip: Ipv4Addr,
    /// The lab namespace it runs in; None: the host.
    netns: Option<Netns>,
    port: u16,
    udp_port: u16,
    tcp_port: u16,
    turn: Option<Turn>,
    api_key: String,
    api_secret: String,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<ChildGuard>,
    paused: bool,
}

/// Where a server's sockets are: everything the config and the start-up differ in.
struct Site {
    ip: Ipv4Addr,
    netns: Option<Netns>,
    /// the one interface ICE may use
    interface: String,
    loopback_candidate: bool,
    port: u16,
    udp_port: u16,
    tcp_port: u16,
    /// TURN and its certificate + key
    turn: Option<(Turn, PathBuf, PathBuf)>,
}

impl LiveKitServer {
    /// Start a server on loopback and wait until `GET /` answers 200 (panics after 15 s).
    pub fn start() -> LiveKitServer {
        Self::start_with(ServerOptions::default())
    }

    /// On 127.0.0.1 with free ports (UDP ICE only, no TURN), and `opts`.
    pub fn start_with(opts: ServerOptions) -> LiveKitServer {
        let dir = test_dir("lk");
        let site = Site {
            ip: Ipv4Addr::LOCALHOST,
            netns: None,
            interface: "lo".into(),
            loopback_candidate: true,
            port: free_port(),
            udp_port: free_port(),
            tcp_port: 0,
            turn: None,
        };
        Self::start_at(dir, site, &opts)
    }

    /// In the lab's server namespace, bound to `lab.server_ip()` on the fixed `LAB_*` ports,
    /// ICE on the veth only, and ICE/TCP and TURN as `opts` asks. Its URL (`ws://<server
    /// ip>:7880`) is reachable from both namespaces: unimpaired from the server namespace
    /// (where [`Subscriber::spawn`](crate::Subscriber::spawn) runs its subscriber), across the
    /// lab's link from the publisher namespace (`spawn_publisher_in`). With TURN, the TURN
    /// domain resolves to the server in both namespaces (`Lab::map_host`), for processes
    /// started from now on. Declare the lab before the server, so that the server stops first.
    pub fn start_in_lab(lab: &Lab, opts: LabServerOptions) -> LiveKitServer {
        let dir = test_dir("lk-lab");
        let ip = lab.server_ip();
        let turn = opts.turn.then(|| {
            let pki = lab::make_test_pki(dir.path(), &[LAB_TURN_DOMAIN], &[ip])
                .unwrap_or_else(|e| panic!("test certificates for TURN/TLS: {e}"));
            lab.map_host(LAB_TURN_DOMAIN, ip)
                .unwrap_or_else(|e| panic!("map {LAB_TURN_DOMAIN} in the lab: {e}"));
            let turn = Turn {
                domain: LAB_TURN_DOMAIN.into(),
                udp_port: LAB_TURN_UDP_PORT,
                tls_port: LAB_TURN_TLS_PORT,
                ca_cert: pki.ca_cert,
                relay_range: LAB_RELAY_RANGE,
            };
            (turn, pki.cert, pki.key)
        });
        let site = Site {
            ip,
            netns: Some(lab.server_netns()),
            interface: lab.server_if().into(),
            loopback_candidate: false,
            port: LAB_HTTP_PORT,
            udp_port: LAB_ICE_UDP_PORT,
            tcp_port: if opts.tcp_port { LAB_ICE_TCP_PORT } else { 0 },
            turn,
        };
        Self::start_at(dir, site, &opts.server)
    }

    fn start_at(dir: tempfile::TempDir, site: Site, opts: &ServerOptions) -> LiveKitServer {
        use rand::Rng;
        livekit_server_bin(); // panics early with "run scripts/setup first"
        let dir_path = dir.path().to_path_buf();
        let (api_key, api_secret) = opts.keys.clone().unwrap_or_else(|| {
            let mut rng = rand::rng();
            let key = format!("APItest{:08x}", rng.random::<u32>());
            let secret: String = (0..40)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
                .collect();
            (key, secret)
        });
        let yaml = config_yaml(&site, &api_key, &api_secret, opts);
        let config_path = dir_path.join("livekit.yaml");
        fs::write(&config_path, yaml).expect("write livekit config");
        let log_path = dir_path.join("livekit-server.log");

        let mut s = LiveKitServer {
            dir: Some(dir),
            dir_path,
            ip: site.ip,
            netns: site.netns,
            port: site.port,
            udp_port: site.udp_port,
            tcp_port: site.tcp_port,
            turn: site.turn.map(|(t, _, _)| t),
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
        let mut cmd = lab::command_at(self.netns.as_ref(), livekit_server_bin());
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
            "=== harness: starting livekit-server on {}:{} (udp {}, tcp {}, turn {}){}",
            self.ip,
            self.port,
            self.udp_port,
            self.tcp_port,
            self.turn.as_ref().map_or("off".into(), |t| format!(
                "udp {} tls {}",
                t.udp_port, t.tls_port
            )),
            self.netns.as_ref().map_or(String::new(), |n| format!(
                " in network namespace {}",
                n.name()
            ))
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
            if self.is_ready() {
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

    /// `ws://IP:PORT` (IP: 127.0.0.1, or the lab's server address).
    pub fn url(&self) -> String {
        format!("ws://{}:{}", self.ip, self.port)
    }
    /// `http://IP:PORT`; a lab server's is reachable inside the lab only.
    pub fn http_url(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }
    /// The address it binds to and advertises in its ICE candidates.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// The lab namespace it runs in (None: the host). Clients that should reach it
    /// unimpaired run there.
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }
    /// ICE over TCP; 0 when off.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }
    /// The embedded TURN server, when on.
    pub fn turn(&self) -> Option<&Turn> {
        self.turn.as_ref()
    }
    /// The CA certificate that signed the TURN/TLS certificate (for `turns:` clients:
    /// `SSL_CERT_FILE` or a CA option), when TURN is on.
    pub fn ca_file(&self) -> Option<&Path> {
        self.turn.as_ref().map(|t| t.ca_cert.as_path())
    }
    pub fn api_key(&self) -> &str {
        &self.api_key
    }
    pub fn api_secret(&self) -> &str {
        &self.api_secret
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
    /// The node id of the running (or last) process, from its start-up line ("starting
    /// LiveKit server" … `"nodeID": "ND_…"`); livekit-server v1.13.5 draws a fresh one at every
    /// start (it cannot be configured). None before that line is logged.
    pub fn node_id(&self) -> Option<String> {
        self.log()
            .lines()
            .rev()
            .find(|l| l.contains("starting LiveKit server"))
            .and_then(|l| json_str_field(l, "nodeID"))
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

    /// Status of `GET path` asked from where the server runs (its namespace, or the host), or
    /// None when it does not answer within `timeout`.
    pub fn http_status(&self, path: &str, timeout: Duration) -> Option<u16> {
        let addr = SocketAddr::from((self.ip, self.port));
        match &self.netns {
            None => http_get_status_at(addr, path, timeout),
            Some(ns) => ns
                .run(|| http_get_status_at(addr, path, timeout))
                .unwrap_or_else(|e| panic!("enter the server's namespace: {e}")),
        }
    }

    /// Answers `GET /` with 200 right now?
    pub fn is_ready(&self) -> bool {
        self.http_status("/", Duration::from_millis(500)) == Some(200)
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

    /// Ask for a graceful shutdown (SIGTERM) and return at once (see [`stop`](Self::stop) for
    /// one that waits). livekit-server v1.13.5 (cmd/server/main.go, service/server.go `Stop`)
    /// then marks the node draining (no new rooms go to it) and waits, looking every 5 s,
    /// until the participants whose rooms it hosts have left, telling them nothing; a node
    /// that hosts none exits at once (the WebSockets it relayed to other nodes are cut). A
    /// second call (a second SIGTERM) forces it: it closes its rooms, sending every
    /// participant in them a leave (action DISCONNECT, reason SERVER_SHUTDOWN), and exits.
    /// No-op when stopped.
    pub fn shutdown(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if self.paused {
                c.signal("CONT");
                self.paused = false;
            }
            c.signal("TERM");
        }
    }

    /// Wait up to `timeout` for the server to exit by itself (after
    /// [`shutdown`](Self::shutdown)); true when it has (or was stopped already).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let exited = self
            .child
            .as_mut()
            .is_none_or(|c| c.wait_timeout(timeout).is_some());
        if exited {
            self.child = None;
        }
        exited
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

/// The string value of `"key": "value"` in a log line of livekit-server (its console format
/// ends in a JSON object of fields).
pub(crate) fn json_str_field(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\": \"");
    let start = line.find(&pat)? + pat.len();
    let len = line[start..].find('"')?;
    Some(line[start..start + len].to_string())
}

/// Every thread of `pid` is in state T (stopped) according to /proc.
fn all_threads_stopped(pid: u32) -> bool {
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
    http_get_status_at(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), path, timeout)
}

/// Status code of `GET path` on `addr` over HTTP/1.0, or None (from the calling thread's
/// network namespace).
pub fn http_get_status_at(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    // "HTTP/1.0 200 OK"
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The server's YAML (v1.13.5 parses it strictly: unknown keys are errors). ICE only on
/// `site.interface` and `site.ip`; the STUN server handed to clients is the server's own
/// address on 3478 (the embedded TURN answers there; without TURN nothing does, and the
/// client's STUN query merely times out), so livekit never hands out Google's.
///
/// TURN (lab only): bound to the server address, `allow_restricted_peer_cidrs` lets the relay
/// reach the SFU itself, whose address is private and so refused by default
/// (pkg/service/turn.go: CreatePermission toward the SFU gets 403 Forbidden without it).
/// `external_tls: false`: true means a load balancer terminates TLS, and there is none, so
/// livekit needs `cert_file`/`key_file` (PEM; the cert file holds the chain). Relay → SFU
/// traffic stays inside the server namespace, so the lab's knobs never cut it.
fn config_yaml(site: &Site, api_key: &str, api_secret: &str, opts: &ServerOptions) -> String {
    let ip = site.ip;
    let mut y = String::new();
    y.push_str(&format!("port: {}\n", site.port));
    y.push_str(&format!("bind_addresses: [{ip}]\n"));
    y.push_str(&format!("keys: {{{api_key}: {api_secret}}}\n"));
    y.push_str(&format!(
        "logging: {{level: {}}}\n",
        opts.log_level.as_deref().unwrap_or("info")
    ));
    if let Some(redis) = &opts.redis {
        y.push_str(&format!("redis: {{address: \"{redis}\"}}\n"));
    }
    for l in &opts.extra_yaml {
        y.push_str(l);
        y.push('\n');
    }
    y.push_str("rtc:\n");
    y.push_str(&format!("  udp_port: {}\n", site.udp_port));
    y.push_str(&format!("  tcp_port: {}\n", site.tcp_port));
    y.push_str("  use_external_ip: false\n");
    y.push_str(&format!("  node_ip: {ip}\n"));
    y.push_str(&format!(
        "  enable_loopback_candidate: {}\n",
        site.loopback_candidate
    ));
    y.push_str(&format!(
        "  interfaces: {{includes: [{}]}}\n",
        site.interface
    ));
    y.push_str(&format!("  ips: {{includes: [{ip}/32]}}\n"));
    y.push_str(&format!("  stun_servers: [\"{ip}:{LAB_TURN_UDP_PORT}\"]\n"));
    for l in &opts.extra_rtc_yaml {
        y.push_str("  ");
        y.push_str(l);
        y.push('\n');
    }
    let Some((turn, cert, key)) = &site.turn else {
        y.push_str("turn: {enabled: false}\n");
        return y;
    };
    y.push_str("turn:\n");
    y.push_str("  enabled: true\n");
    y.push_str(&format!("  bind_addresses: [{ip}]\n"));
    y.push_str(&format!("  domain: {}\n", turn.domain));
    y.push_str(&format!("  udp_port: {}\n", turn.udp_port));
    y.push_str(&format!("  tls_port: {}\n", turn.tls_port));
    y.push_str("  external_tls: false\n");
    y.push_str(&format!("  cert_file: {}\n", cert.display()));
    y.push_str(&format!("  key_file: {}\n", key.display()));
    y.push_str(&format!("  relay_range_start: {}\n", turn.relay_range.0));
    y.push_str(&format!("  relay_range_end: {}\n", turn.relay_range.1));
    y.push_str(&format!("  allow_restricted_peer_cidrs: [{ip}/32]\n"));
    y
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

/// Tests that measure timing or load the machine hold this, so they run one at a time within
/// a test binary.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A unique room name for a test (rooms are auto-created by the server).
pub fn room_name(prefix: &str) -> String {
    use rand::Rng;
    format!("{prefix}-{:06x}", rand::rng().random::<u32>() & 0xff_ffff)
}

//! A multi-node LiveKit on loopback: a throw-away Redis ([`Redis`]) and two or more
//! livekit-server nodes sharing it ([`Cluster`]), each node a [`LiveKitServer`] started with
//! [`ServerOptions::redis`] (its own HTTP port, UDP port and node id; the cluster's one key
//! pair).
//!
//! With Redis, livekit-server routes a room to one node (the node selector picks one among the
//! live nodes when the room is first used); a participant may connect to any node, whose
//! signalling is relayed to the room's node, and its media goes straight to the room's node
//! (whose ICE candidates it gets). [`Cluster::room_node`] tells which node that is.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::*;
use crate::server::*;

/// How long Redis may take to answer `PING`.
pub const REDIS_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// `$REDIS_SERVER_BIN` or `redis-server` on the PATH (Debian's package `redis-server`);
/// panics when missing.
pub fn redis_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "redis-server not found — run scripts/setup first (Debian package redis-server), \
                 or set REDIS_SERVER_BIN"
            )
        })
}

/// A `redis-server` of one test on a free loopback port, without persistence (`--save ""
/// --appendonly no`); killed on drop.
pub struct Redis {
    child: Option<ChildGuard>,
    port: u16,
    log_path: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Redis {
    /// Start it and wait until it answers `PING` (panics after 10 s).
    pub fn start() -> Redis {
        let bin = redis_server_bin();
        let dir = test_dir("redis");
        let port = free_port();
        let log_path = dir.path().join("redis-server.log");
        let mut cmd = Command::new(bin);
        cmd.args(["--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .current_dir(dir.path());
        let mut r = Redis {
            child: Some(ChildGuard::spawn_logged("redis-server", cmd, &log_path)),
            port,
            log_path,
            dir: Some(dir),
        };
        let deadline = Instant::now() + REDIS_READY_TIMEOUT;
        loop {
            if let Some(st) = r.child.as_mut().unwrap().try_wait() {
                panic!(
                    "redis-server exited during start-up ({st}):\n{}",
                    tail_file(&r.log_path, 20)
                );
            }
            if r.ping() {
                return r;
            }
            if Instant::now() >= deadline {
                panic!(
                    "redis-server did not answer PING on 127.0.0.1:{port} within {:?}:\n{}",
                    REDIS_READY_TIMEOUT,
                    tail_file(&r.log_path, 20)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, as livekit-server's `redis.address` wants it.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Answers `PING` with `+PONG` right now?
    pub fn ping(&self) -> bool {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let t = Duration::from_millis(500);
        let Ok(mut s) = TcpStream::connect_timeout(&addr, t) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(t));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
        if thread::panicking() {
            eprintln!(
                "--- redis-server log tail ({}):\n{}\n---",
                self.log_path.display(),
                tail_file(&self.log_path, 10)
            );
        }
        if keep_logs() || thread::panicking() {
            if let Some(d) = self.dir.take() {
                eprintln!("harness: kept redis-server dir {}", d.keep().display());
            }
        }
    }
}

/// Where livekit-server puts a room that is not on a live node yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Placement {
    /// LiveKit's default (`node_selector: {kind: any}`): any live node, at random.
    #[default]
    Any,
    /// On the node its participant connected to: every node is a region of its own
    /// (`region: nodeI`, `node_selector: {kind: regionaware, regions: …}`), and the
    /// region-aware selector picks the live node nearest to the node that was asked, that
    /// node itself while it is up (pkg/routing/selector/regionaware.go).
    FirstContact,
}

/// A Redis and `n` livekit-server nodes sharing it and one key pair, all on loopback.
/// Everything is killed on drop, the nodes before Redis.
pub struct Cluster {
    // declared (and so dropped) before `redis`
    nodes: Vec<LiveKitServer>,
    redis: Redis,
}

impl Cluster {
    /// Redis, then `n` nodes one after the other (each answering `GET /` before the next),
    /// rooms placed by LiveKit's default selector.
    pub fn start(n: usize) -> Cluster {
        Self::start_with(n, Placement::Any, ServerOptions::default())
    }

    /// As [`start`](Self::start), rooms placed as `placement` says, every node with `opts`
    /// (its `redis` and `keys` are the cluster's).
    pub fn start_with(n: usize, placement: Placement, opts: ServerOptions) -> Cluster {
        assert!(n >= 1, "a cluster has at least one node");
        let redis = Redis::start();
        let keys = opts.keys.clone().unwrap_or_else(|| {
            use rand::Rng;
            let mut rng = rand::rng();
            let key = format!("APIcluster{:08x}", rng.random::<u32>());
            let secret: String = (0..40)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
                .collect();
            (key, secret)
        });
        let node_opts = ServerOptions {
            redis: Some(redis.address()),
            keys: Some(keys),
            ..opts
        };
        let regions = (0..n)
            .map(|i| format!("{{name: node{i}, lat: 0, lon: {}}}", 10 * i))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = (0..n)
            .map(|i| {
                let mut o = node_opts.clone();
                if placement == Placement::FirstContact {
                    o.extra_yaml.push(format!("region: node{i}"));
                    o.extra_yaml.push(format!(
                        "node_selector: {{kind: regionaware, regions: [{regions}]}}"
                    ));
                }
                LiveKitServer::start_with(o)
            })
            .collect();
        Cluster { nodes, redis }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &LiveKitServer {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut LiveKitServer {
        &mut self.nodes[i]
    }

    pub fn nodes(&self) -> &[LiveKitServer] {
        &self.nodes
    }

    /// The index of the node that hosts `room` now, by the nodes' own logs: the latest
    /// "selected node for room" line for it (logged by whichever node a participant connected
    /// to), matched against each node's id (of its latest start). None before the room is
    /// used, or when it went to a node id that no node has any more (one restarted since).
    pub fn room_node(&self, room: &str) -> Option<usize> {
        let mut latest: Option<(String, String)> = None; // (timestamp, node id)
        for n in &self.nodes {
            for line in n.log().lines() {
                if !line.contains("selected node for room") {
                    continue;
                }
                if json_str_field(line, "room").as_deref() != Some(room) {
                    continue;
                }
                let Some(id) = json_str_field(line, "selectedNodeID") else {
                    continue;
                };
                // console lines start with an RFC 3339 timestamp: they sort as text
                let ts = line.split_whitespace().next().unwrap_or("").to_string();
                if latest.as_ref().is_none_or(|(t, _)| ts >= *t) {
                    latest = Some((ts, id));
                }
            }
        }
        let (_, id) = latest?;
        self.nodes
            .iter()
            .position(|n| n.node_id().as_deref() == Some(id.as_str()))
    }

    /// A short account of the nodes (index, URL, node id), for messages.
    pub fn describe(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "node {i}: {} ({})",
                    n.url(),
                    n.node_id().unwrap_or_else(|| "no node id yet".into())
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

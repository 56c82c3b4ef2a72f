//! A network lab for the end-to-end tests: two Linux network namespaces joined by one veth
//! pair, with knobs for rate limits, random loss and firewall-like blocks that can be turned
//! while the test runs.
//!
//! ```text
//!   namespace gpl-<pid>-<slot>-srv                 namespace gpl-<pid>-<slot>-pub
//!   (livekit-server, subscribers)                  (the publisher)
//!   lo up                                          lo up
//!   lab-srv  10.213.<slot>.1/30  <== veth ==>  lab-pub  10.213.<slot>.2/30
//!            tbf here limits Downlink                   tbf here limits Uplink
//!            nft ingress here: Uplink loss/blocks       nft ingress here: Downlink loss/blocks
//! ```
//!
//! Use from a test file with `use harness::lab;` (the module itself needs std only). A real
//! livekit-server inside a lab: `LiveKitServer::start_in_lab` (server.rs); the subscriber
//! then runs in the server namespace, the publisher with `spawn_publisher_in`.
//!
//! Isolation: the namespaces have no route but the connected /30 and `lo` (no default route,
//! nothing bridged or routed to the host), so nothing started inside them can reach any
//! address outside the lab. The veth is created directly inside the two namespaces; it never
//! exists in the host's namespace. Addresses come from 10.213.0.0/16, one /30 per lab ("slot");
//! since every lab is its own pair of namespaces, even a duplicate slot would not clash.
//! IPv6 is disabled on the veth (no link-local addresses, so ICE sees IPv4 only); `lo` keeps
//! `::1`.
//!
//! Processes: run a program inside a namespace with [`Lab::command_in`] (`ip netns exec NS
//! PROGRAM`, which execs, so the pid you get is the program's and a PR_SET_PDEATHSIG set in
//! `pre_exec` survives), or through a [`Netns`] handle ([`Lab::server_netns`],
//! [`Lab::publisher_netns`]), which does the same without borrowing the lab. Rust code can open sockets inside a namespace with [`Lab::run_in`]
//! (a helper thread that `setns`es); a socket stays in the namespace it was made in, so it can
//! then be used from any thread.
//!
//! Knobs (each takes effect at once, also while traffic flows; all are per lab):
//! - [`Lab::set_rate`] / [`Lab::set_rate_limit`] / [`Lab::clear_rate`]: `tc tbf` on the veth
//!   egress of the sending side (Uplink: `lab-pub` in the publisher namespace; Downlink:
//!   `lab-srv` in the server namespace).
//! - [`Lab::set_loss`]: random drops of every IPv4 packet (TCP, UDP, ICMP; not ARP) in one
//!   direction, with nftables `numgen random` at 0.01 % resolution.
//! - [`Lab::block_udp`]: drops all UDP crossing the veth, both ways (a UDP-blocking firewall
//!   on the publisher's access link); `lo` inside each namespace is never filtered, and
//!   neither is ARP, so TCP keeps working.
//! - [`Lab::block_port`]: drops TCP or UDP packets whose source or destination port is the
//!   given one, both ways.
//!
//! Drops happen at the *receiving* end of the veth (nftables `prerouting`, priority -300, i.e.
//! before conntrack): to both endpoints that looks exactly like loss on the wire. Dropping in
//! the sender's `output` chain instead would make `sendto()` fail with EPERM, which no real
//! network does. [`Lab::filter_counters`] tells how many packets the filters dropped/passed.
//! There is no delay/jitter knob: `netem` is not available in this kernel.
//!
//! Teardown, in order of strength:
//! 1. `Drop` (also while a test panics) kills whatever still runs inside the two namespaces and
//!    deletes them, which removes the veth, the qdiscs and the nftables tables with them.
//!    [`Lab::teardown`] does the same and reports errors.
//! 2. A watchdog per lab: a tiny `/bin/sh` in its own process group (so a terminal's Ctrl-C,
//!    which goes to the foreground process group, does not reach it) blocks reading a pipe
//!    whose only writer is the lab. When the test process ends in any way (SIGINT, SIGTERM,
//!    SIGKILL, abort), the pipe closes and the watchdog deletes the namespaces within
//!    milliseconds. This is what makes a SIGINT of `cargo test` leave nothing behind.
//! 3. [`Lab::new`] first removes stale labs: namespaces named `gpl-<pid>-…` (and their lock
//!    files and `/etc/netns/` entries) whose `<pid>` no longer exists. That covers a watchdog
//!    that was killed too, or a reboot-less crash of everything.
//!
//! Errors: when the lab cannot be made (not root, no `ip`/`tc` from iproute2, no `nft` from
//! nftables, namespaces or nf_tables not allowed here) `Lab::new` returns `Err` with the
//! reason; tests must fail with it (`Lab::new(..).expect(..)`), never skip.
//!
//! Drop order: declare the `Lab` *before* the things that run inside it (servers, publishers),
//! so that they are dropped first and end cleanly; if not, the lab kills them anyway.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every lab namespace name starts with this, then `<pid>-<slot>-`.
pub const NS_PREFIX: &str = "gpl-";
/// The veth end inside the server namespace.
pub const SERVER_IF: &str = "lab-srv";
/// The veth end inside the publisher namespace.
pub const PUBLISHER_IF: &str = "lab-pub";
/// Lock files (one per slot in use) live here; `/run` is a tmpfs like `/run/netns`.
pub const LOCK_DIR: &str = "/run/gpl-lab";
/// Number of /30 slots in 10.213.0.0/16 that labs are handed (10.213.<slot>.0/30).
pub const SLOTS: u32 = 256;

const NFT_TABLE: &str = "gpl_lab";
const NFT_CHAIN: &str = "ingress";

/// Which way packets travel across the lab's link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// publisher → server
    Uplink,
    /// server → publisher
    Downlink,
}

impl Direction {
    fn idx(self) -> usize {
        match self {
            Direction::Uplink => 0,
            Direction::Downlink => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A token-bucket limit for one direction (see [`Lab::set_rate_limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Rate in kbit/s (1 kbit = 1000 bit), counted on Ethernet frames (headers included).
    pub kbit: u32,
    /// Bucket size: how much may go out back-to-back at line rate.
    pub burst_bytes: u32,
    /// Longest a packet may wait in the queue; the queue holds `rate × latency + burst` bytes,
    /// beyond that packets are dropped (tail drop).
    pub latency_ms: u32,
}

impl RateLimit {
    /// `kbit` with the defaults: burst = max(20 ms at that rate, 6 KiB = 4 full frames),
    /// latency 200 ms (a modest access-link buffer: TCP reaches the rate, RTP sees queueing).
    pub fn new(kbit: u32) -> RateLimit {
        let burst = (u64::from(kbit) * 1000 / 8 * 20 / 1000).max(6 * 1024);
        RateLimit {
            kbit,
            burst_bytes: burst.min(u64::from(u32::MAX)) as u32,
            latency_ms: 200,
        }
    }
}

/// Packets counted by the filters at the receiving end of one direction since the filters
/// were last changed (every knob change re-creates the rules, and so resets the counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterCounters {
    pub dropped: u64,
    pub passed: u64,
}

#[derive(Clone, Debug, Default)]
struct Filters {
    /// loss per direction in basis points (1/100 %)
    loss_bp: [u32; 2],
    udp_blocked: bool,
    ports: BTreeSet<(Proto, u16)>,
}

#[derive(Clone, Debug)]
struct Tools {
    ip: PathBuf,
    tc: PathBuf,
    nft: PathBuf,
}

struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// One lab: two namespaces, one veth pair, the knobs. See the module docs.
pub struct Lab {
    hint: String,
    slot: u32,
    prefix: String,
    srv_ns: String,
    pub_ns: String,
    srv_ip: Ipv4Addr,
    pub_ip: Ipv4Addr,
    tools: Tools,
    lock_path: PathBuf,
    filters: Mutex<Filters>,
    rates: Mutex<[Option<RateLimit>; 2]>,
    watchdog: Mutex<Option<Watchdog>>,
    torn_down: bool,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("hint", &self.hint)
            .field("server_ns", &self.srv_ns)
            .field("publisher_ns", &self.pub_ns)
            .field("server_ip", &self.srv_ip)
            .field("publisher_ip", &self.pub_ip)
            .finish()
    }
}

// ------------------------------------------------------------------------------------------
// libc, declared here so the module needs std only

mod sys {
    use std::os::raw::c_int;
    extern "C" {
        pub fn geteuid() -> u32;
        pub fn setns(fd: c_int, nstype: c_int) -> c_int;
        pub fn kill(pid: c_int, sig: c_int) -> c_int;
    }
    pub const CLONE_NEWNET: c_int = 0x4000_0000;
    pub const SIGKILL: c_int = 9;
}

// ------------------------------------------------------------------------------------------
// running the tools

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // root's PATH usually has the sbin dirs; a sudo'ed or minimal one may not
    for d in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run to completion (stdin: `input` or /dev/null); Ok(stdout) on exit 0, else Err with stderr.
fn run(mut cmd: Command, input: Option<&str>) -> Result<String, String> {
    let line = cmdline(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("`{line}`: cannot run: {e}"))?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("`{line}`: writing stdin: {e}"))?;
    }
    let out: Output = child
        .wait_with_output()
        .map_err(|e| format!("`{line}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let mut msg = format!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if let Some(text) = input {
            msg.push_str(&format!("\ninput was:\n{text}"));
        }
        Err(msg)
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `gpl-<pid>-<slot>-<side>` → (pid, slot)
fn parse_ns_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix(NS_PREFIX)?;
    let mut it = rest.splitn(3, '-');
    let pid = it.next()?.parse().ok()?;
    let slot = it.next()?.parse().ok()?;
    it.next()?;
    Some((pid, slot))
}

fn netns_path(ns: &str) -> PathBuf {
    let run = Path::new("/run/netns").join(ns);
    if run.exists() {
        return run;
    }
    Path::new("/var/run/netns").join(ns)
}

/// Names of all named network namespaces (`ip netns list`).
pub fn list_namespaces() -> Result<Vec<String>, String> {
    let ip = find_tool("ip").ok_or("`ip` not found (install iproute2)")?;
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "list"]);
    let out = run(cmd, None)?;
    // lines look like "name" or "name (id: 3)"
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Names of the namespaces whose name starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Result<Vec<String>, String> {
    Ok(list_namespaces()?
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// Kill (SIGKILL) every process whose network namespace is `ns`, except this process.
fn kill_pids_in(ip: &Path, ns: &str) {
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "pids", ns]);
    let Ok(out) = run(cmd, None) else { return };
    let me = std::process::id();
    for pid in out.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        if pid != me && pid > 1 {
            // SAFETY: plain syscall
            unsafe {
                sys::kill(pid as i32, sys::SIGKILL);
            }
        }
    }
}

/// Delete a namespace by name; Ok if it was not there.
fn delete_ns(ip: &Path, ns: &str) -> Result<(), String> {
    kill_pids_in(ip, ns);
    let _ = fs::remove_dir_all(Path::new("/etc/netns").join(ns));
    if !netns_path(ns).exists() {
        return Ok(());
    }
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "delete", ns]);
    match run(cmd, None) {
        Ok(_) => Ok(()),
        Err(_) if !netns_path(ns).exists() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Remove what labs of dead processes left: namespaces `gpl-<pid>-…`, `/etc/netns/gpl-<pid>-…`
/// and lock files whose pid no longer runs. Returns the namespaces it deleted. Called by
/// [`Lab::new`]; safe to call any time (labs of live processes are left alone).
pub fn cleanup_stale() -> Result<Vec<String>, String> {
    let ip = find_tool("ip").ok_or("`ip` not found (install iproute2)")?;
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for ns in list_namespaces()? {
        if let Some((pid, _)) = parse_ns_name(&ns) {
            if !pid_alive(pid) {
                match delete_ns(&ip, &ns) {
                    Ok(()) => removed.push(ns),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if let Ok(rd) = fs::read_dir("/etc/netns") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some((pid, _)) = parse_ns_name(&name) {
                if !pid_alive(pid) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }
    if let Ok(rd) = fs::read_dir(LOCK_DIR) {
        for e in rd.flatten() {
            if lock_is_stale(&e.path()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(format!(
            "could not remove stale lab namespaces: {}",
            errors.join("; ")
        ))
    }
}

/// A lock file ("<pid> <hint>") is stale when its pid is gone (or it is unreadable and old).
fn lock_is_stale(path: &Path) -> bool {
    match fs::read_to_string(path) {
        Ok(s) => match s
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<u32>().ok())
        {
            Some(pid) => !pid_alive(pid),
            None => fs::metadata(path)
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(10))
                .unwrap_or(true),
        },
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Claim a free slot: hard-link a lock file with our pid to `slot-<n>` (atomic; fails when
/// taken). Returns (slot, lock path).
fn claim_slot(hint: &str) -> Result<(u32, PathBuf), String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    fs::create_dir_all(LOCK_DIR).map_err(|e| format!("create {LOCK_DIR}: {e}"))?;
    let tmp = Path::new(LOCK_DIR).join(format!(".tmp-{pid}-{n}"));
    fs::write(&tmp, format!("{pid} {hint}\n"))
        .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    let start = (pid.wrapping_mul(37).wrapping_add(n.wrapping_mul(11))) % SLOTS;
    let mut result = Err(format!("all {SLOTS} lab slots in {LOCK_DIR} are taken"));
    'slots: for i in 0..SLOTS {
        let slot = (start + i) % SLOTS;
        let path = Path::new(LOCK_DIR).join(format!("slot-{slot}"));
        for _attempt in 0..2 {
            match fs::hard_link(&tmp, &path) {
                Ok(()) => {
                    result = Ok((slot, path));
                    break 'slots;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if lock_is_stale(&path) {
                        let _ = fs::remove_file(&path);
                        continue; // try the same slot once more
                    }
                    continue 'slots;
                }
                Err(e) => {
                    result = Err(format!("lock {}: {e}", path.display()));
                    break 'slots;
                }
            }
        }
    }
    let _ = fs::remove_file(&tmp);
    result
}

const WATCHDOG_SH: &str = r#"
ip="$1"; srv="$2"; pub="$3"; lock="$4"
cleanup() {
  for ns in "$srv" "$pub"; do
    for p in $("$ip" netns pids "$ns" 2>/dev/null); do
      [ "$p" != "$$" ] && kill -9 "$p" 2>/dev/null
    done
    "$ip" netns delete "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
  rm -f "$lock"
}
trap '' INT HUP QUIT PIPE
trap 'cleanup; exit 0' TERM
# EOF once the lab is dropped or the test process is gone, however it ended
read -r line || true
cleanup
"#;

// ------------------------------------------------------------------------------------------
// the lab

impl Lab {
    /// Create a lab. `name_hint` (e.g. the test's name) is recorded in the lock file and shows
    /// in `Debug`. Fails (never panics) with the reason when the lab cannot be made.
    pub fn new(name_hint: &str) -> Result<Lab, String> {
        // SAFETY: plain syscall
        let euid = unsafe { sys::geteuid() };
        if euid != 0 {
            return Err(format!(
                "the network lab needs root (euid is {euid}): creating network namespaces, veth \
                 pairs, qdiscs and nftables rules requires CAP_SYS_ADMIN and CAP_NET_ADMIN"
            ));
        }
        let tool = |name: &str, pkg: &str| {
            find_tool(name).ok_or_else(|| {
                format!("network lab: `{name}` not found in PATH or /usr/sbin (install the Debian package {pkg})")
            })
        };
        let tools = Tools {
            ip: tool("ip", "iproute2")?,
            tc: tool("tc", "iproute2")?,
            nft: tool("nft", "nftables")?,
        };
        if let Err(e) = cleanup_stale() {
            eprintln!("lab: warning: {e}");
        }

        let hint: String = name_hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let (slot, lock_path) = claim_slot(&hint)?;
        let pid = std::process::id();
        let prefix = format!("{NS_PREFIX}{pid}-{slot}-");
        let mut lab = Lab {
            hint,
            slot,
            srv_ns: format!("{prefix}srv"),
            pub_ns: format!("{prefix}pub"),
            prefix,
            srv_ip: Ipv4Addr::new(10, 213, slot as u8, 1),
            pub_ip: Ipv4Addr::new(10, 213, slot as u8, 2),
            tools,
            lock_path,
            filters: Mutex::new(Filters::default()),
            rates: Mutex::new([None, None]),
            watchdog: Mutex::new(None),
            torn_down: false,
        };
        // the watchdog first, so that even a kill during set-up leaves nothing behind
        if let Err(e) = lab.spawn_watchdog() {
            let _ = fs::remove_file(&lab.lock_path);
            lab.torn_down = true;
            return Err(e);
        }
        if let Err(e) = lab.build() {
            // Drop tears down what was made
            return Err(format!("network lab: {e}"));
        }
        Ok(lab)
    }

    fn spawn_watchdog(&self) -> Result<(), String> {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WATCHDOG_SH)
            .arg("gpl-lab-watchdog")
            .arg(&self.tools.ip)
            .arg(&self.srv_ns)
            .arg(&self.pub_ns)
            .arg(&self.lock_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // own process group: a terminal's Ctrl-C does not reach it
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("network lab: cannot start the watchdog /bin/sh: {e}"))?;
        let stdin = child.stdin.take();
        *self.watchdog.lock().unwrap() = Some(Watchdog { child, stdin });
        Ok(())
    }

    fn ip(&self) -> Command {
        Command::new(&self.tools.ip)
    }

    fn ip_run(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.ip();
        cmd.args(args);
        run(cmd, None)
    }

    /// `ip netns exec NS <tool> args…`
    fn in_ns_run(
        &self,
        ns: &str,
        tool: &Path,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<String, String> {
        let mut cmd = self.command_in(ns, tool);
        cmd.args(args);
        run(cmd, input)
    }

    fn build(&self) -> Result<(), String> {
        for ns in [&self.srv_ns, &self.pub_ns] {
            self.ip_run(&["netns", "add", ns]).map_err(|e| {
                format!("cannot create network namespace {ns} (are namespaces allowed here?): {e}")
            })?;
        }
        // created directly inside the namespaces: never visible in the host's namespace
        self.ip_run(&[
            "link",
            "add",
            "name",
            SERVER_IF,
            "netns",
            &self.srv_ns,
            "type",
            "veth",
            "peer",
            "name",
            PUBLISHER_IF,
            "netns",
            &self.pub_ns,
        ])
        .map_err(|e| format!("cannot create the veth pair: {e}"))?;
        for (ns, ifname, ip) in [
            (&self.srv_ns, SERVER_IF, self.srv_ip),
            (&self.pub_ns, PUBLISHER_IF, self.pub_ip),
        ] {
            // no IPv6 on the veth (no link-local addresses for ICE to find); before link up
            let v6 = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
            let mut cmd = self.command_in(ns, "/bin/sh");
            cmd.arg("-c")
                .arg(format!("if [ -e {v6} ]; then echo 1 > {v6}; fi"));
            run(cmd, None)?;
            self.ip_run(&["-n", ns, "addr", "add", &format!("{ip}/30"), "dev", ifname])?;
            self.ip_run(&["-n", ns, "link", "set", ifname, "up"])?;
            self.ip_run(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // base (empty) filter tables: proves nftables works here
        self.apply_filters(&Filters::default())
            .map_err(|e| format!("nftables does not work in the lab namespaces: {e}"))?;
        // sanity: the only IPv4 routes are the connected /30 (no default route)
        for ns in [&self.srv_ns, &self.pub_ns] {
            let routes = self.ip_run(&["-n", ns, "-4", "route", "show", "table", "all"])?;
            for r in routes.lines() {
                let r = r.trim();
                let ok = r.is_empty()
                    || r.starts_with(&format!("10.213.{}.0/30 ", self.slot))
                    || r.starts_with("local ")
                    || r.starts_with("broadcast ")
                    || r.contains(" dev lo ");
                if !ok {
                    return Err(format!("unexpected route in {ns}: {r}"));
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------- accessors

    pub fn name_hint(&self) -> &str {
        &self.hint
    }
    /// `gpl-<pid>-<slot>-`: every namespace of this lab starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn slot(&self) -> u32 {
        self.slot
    }
    /// `10.213.<slot>.1`, on `lab-srv` in the server namespace.
    pub fn server_ip(&self) -> Ipv4Addr {
        self.srv_ip
    }
    /// `10.213.<slot>.2`, on `lab-pub` in the publisher namespace.
    pub fn publisher_ip(&self) -> Ipv4Addr {
        self.pub_ip
    }
    /// `10.213.<slot>.0/30`
    pub fn subnet(&self) -> String {
        format!("10.213.{}.0/30", self.slot)
    }
    pub fn server_ns(&self) -> &str {
        &self.srv_ns
    }
    pub fn publisher_ns(&self) -> &str {
        &self.pub_ns
    }
    /// The veth name inside the server namespace (for livekit's `rtc.interfaces.includes`).
    pub fn server_if(&self) -> &str {
        SERVER_IF
    }
    pub fn publisher_if(&self) -> &str {
        PUBLISHER_IF
    }

    /// `ip netns exec <ns> <program>`: add arguments, stdio, env as usual. `ip netns exec`
    /// execs the program, so the child's pid is the program's.
    pub fn command_in(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        netns_exec(&self.tools.ip, ns, program)
    }
    /// A handle on the server namespace that outlives this borrow (see [`Netns`]).
    pub fn server_netns(&self) -> Netns {
        Netns {
            name: self.srv_ns.clone(),
            ip_tool: self.tools.ip.clone(),
        }
    }
    /// A handle on the publisher namespace that outlives this borrow (see [`Netns`]).
    pub fn publisher_netns(&self) -> Netns {
        Netns {
            name: self.pub_ns.clone(),
            ip_tool: self.tools.ip.clone(),
        }
    }
    /// [`Lab::command_in`] the server namespace.
    pub fn server_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.command_in(&self.srv_ns, program)
    }
    /// [`Lab::command_in`] the publisher namespace.
    pub fn publisher_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.command_in(&self.pub_ns, program)
    }

    /// Run `f` on a helper thread that has entered namespace `ns`; sockets it creates belong
    /// to that namespace (and stay there when moved to other threads). A panic in `f` is
    /// passed on.
    pub fn run_in<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        run_in_netns(ns, f)
    }

    /// Make `name` resolve to `ip` for processes started with [`Lab::command_in`] in either
    /// namespace (`ip netns exec` bind-mounts `/etc/netns/<ns>/hosts` over `/etc/hosts`).
    /// Affects processes started afterwards. E.g. the TURN domain → `server_ip()`.
    pub fn map_host(&self, name: &str, ip: Ipv4Addr) -> Result<(), String> {
        for ns in [&self.srv_ns, &self.pub_ns] {
            let dir = Path::new("/etc/netns").join(ns);
            fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            let path = dir.join("hosts");
            let mut text = fs::read_to_string(&path).unwrap_or_else(|_| {
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into()
            });
            text.push_str(&format!("{ip}\t{name}\n"));
            fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------- knobs

    /// (namespace, interface) that sends packets of `dir` (where its qdisc goes).
    fn sender(&self, dir: Direction) -> (&str, &'static str) {
        match dir {
            Direction::Uplink => (&self.pub_ns, PUBLISHER_IF),
            Direction::Downlink => (&self.srv_ns, SERVER_IF),
        }
    }

    /// (namespace, interface) that receives packets of `dir` (where its drop rules go).
    fn receiver(&self, dir: Direction) -> (&str, &'static str) {
        match dir {
            Direction::Uplink => (&self.srv_ns, SERVER_IF),
            Direction::Downlink => (&self.pub_ns, PUBLISHER_IF),
        }
    }

    /// Limit `dir` to `kbit` kbit/s with [`RateLimit::new`]'s burst and queue.
    pub fn set_rate(&self, dir: Direction, kbit: u32) -> Result<(), String> {
        self.set_rate_limit(dir, RateLimit::new(kbit))
    }

    /// `tc qdisc replace … root tbf` on the sending side's veth; replaces any earlier limit.
    pub fn set_rate_limit(&self, dir: Direction, limit: RateLimit) -> Result<(), String> {
        if limit.kbit == 0 {
            return Err("set_rate: 0 kbit/s; use set_loss(dir, 100.0) to cut a direction".into());
        }
        if limit.burst_bytes < 1600 {
            return Err(format!(
                "set_rate: burst {} B is smaller than one frame; tbf would drop every full-size packet",
                limit.burst_bytes
            ));
        }
        let mut rates = self.rates.lock().unwrap();
        let (ns, ifname) = self.sender(dir);
        let rate = format!("{}kbit", limit.kbit);
        let burst = limit.burst_bytes.to_string();
        let latency = format!("{}ms", limit.latency_ms);
        self.in_ns_run(
            ns,
            &self.tools.tc,
            &[
                "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", &rate, "burst", &burst,
                "latency", &latency,
            ],
            None,
        )?;
        rates[dir.idx()] = Some(limit);
        Ok(())
    }

    /// Remove the rate limit of `dir` (no-op when none is set).
    pub fn clear_rate(&self, dir: Direction) -> Result<(), String> {
        let mut rates = self.rates.lock().unwrap();
        if rates[dir.idx()].is_none() {
            return Ok(());
        }
        let (ns, ifname) = self.sender(dir);
        self.in_ns_run(
            ns,
            &self.tools.tc,
            &["qdisc", "del", "dev", ifname, "root"],
            None,
        )?;
        rates[dir.idx()] = None;
        Ok(())
    }

    /// The rate limit currently set on `dir`.
    pub fn rate(&self, dir: Direction) -> Option<RateLimit> {
        self.rates.lock().unwrap()[dir.idx()]
    }

    /// Drop `percent` % (0–100, 0.01 % steps) of the packets of `dir` at random; 0 removes it.
    pub fn set_loss(&self, dir: Direction, percent: f64) -> Result<(), String> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!("set_loss: {percent} % is not within 0..=100"));
        }
        let mut f = self.filters.lock().unwrap();
        let mut next = f.clone();
        next.loss_bp[dir.idx()] = (percent * 100.0).round() as u32;
        self.apply_filters(&next)?;
        *f = next;
        Ok(())
    }

    /// The loss currently set on `dir`, in percent.
    pub fn loss(&self, dir: Direction) -> f64 {
        f64::from(self.filters.lock().unwrap().loss_bp[dir.idx()]) / 100.0
    }

    /// Drop (`true`) or pass again (`false`) every UDP packet crossing the veth, both ways.
    /// TCP, ICMP and ARP pass; `lo` inside the namespaces is untouched.
    pub fn block_udp(&self, blocked: bool) -> Result<(), String> {
        let mut f = self.filters.lock().unwrap();
        let mut next = f.clone();
        next.udp_blocked = blocked;
        self.apply_filters(&next)?;
        *f = next;
        Ok(())
    }

    /// Drop (`true`) or pass again (`false`) `proto` packets from or to `port`, both ways.
    pub fn block_port(&self, proto: Proto, port: u16, blocked: bool) -> Result<(), String> {
        let mut f = self.filters.lock().unwrap();
        let mut next = f.clone();
        if blocked {
            next.ports.insert((proto, port));
        } else {
            next.ports.remove(&(proto, port));
        }
        self.apply_filters(&next)?;
        *f = next;
        Ok(())
    }

    /// Remove every loss and block rule (rates stay).
    pub fn clear_filters(&self) -> Result<(), String> {
        let mut f = self.filters.lock().unwrap();
        let next = Filters::default();
        self.apply_filters(&next)?;
        *f = next;
        Ok(())
    }

    fn render_nft(f: &Filters, dir: Direction, ifname: &str) -> String {
        let iif = format!("iifname \"{ifname}\"");
        let mut rules = Vec::new();
        if f.udp_blocked {
            rules.push(format!(
                "{iif} meta l4proto udp counter drop comment \"block_udp\""
            ));
        }
        for (proto, port) in &f.ports {
            let p = proto.nft();
            rules.push(format!(
                "{iif} {p} dport {port} counter drop comment \"block_port\""
            ));
            rules.push(format!(
                "{iif} {p} sport {port} counter drop comment \"block_port\""
            ));
        }
        let bp = f.loss_bp[dir.idx()];
        if bp >= 10_000 {
            rules.push(format!(
                "{iif} meta nfproto ipv4 counter drop comment \"loss\""
            ));
        } else if bp > 0 {
            rules.push(format!(
                "{iif} meta nfproto ipv4 numgen random mod 10000 < {bp} counter drop comment \"loss\""
            ));
        }
        rules.push(format!("{iif} counter comment \"passed\""));
        let mut s = String::new();
        // "table; delete table; table {…}": one atomic transaction that replaces the table
        s.push_str(&format!(
            "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\n"
        ));
        s.push_str(&format!(
            "table inet {NFT_TABLE} {{\n  chain {NFT_CHAIN} {{\n"
        ));
        s.push_str("    type filter hook prerouting priority -300; policy accept;\n");
        for r in rules {
            s.push_str("    ");
            s.push_str(&r);
            s.push('\n');
        }
        s.push_str("  }\n}\n");
        s
    }

    fn apply_filters(&self, f: &Filters) -> Result<(), String> {
        for dir in [Direction::Uplink, Direction::Downlink] {
            let (ns, ifname) = self.receiver(dir);
            let text = Self::render_nft(f, dir, ifname);
            self.in_ns_run(ns, &self.tools.nft, &["-f", "-"], Some(&text))?;
        }
        Ok(())
    }

    /// The nftables rules that act on `dir` (with counters), as `nft list` prints them.
    pub fn filter_rules(&self, dir: Direction) -> Result<String, String> {
        let (ns, _) = self.receiver(dir);
        self.in_ns_run(
            ns,
            &self.tools.nft,
            &["list", "chain", "inet", NFT_TABLE, NFT_CHAIN],
            None,
        )
    }

    /// Packets of `dir` dropped by the lab's rules / passed, since the last knob change.
    pub fn filter_counters(&self, dir: Direction) -> Result<FilterCounters, String> {
        let text = self.filter_rules(dir)?;
        let mut c = FilterCounters::default();
        for line in text.lines() {
            let toks: Vec<&str> = line.split_whitespace().collect();
            let Some(i) = toks.iter().position(|t| *t == "packets") else {
                continue;
            };
            let Some(n) = toks.get(i + 1).and_then(|t| t.parse::<u64>().ok()) else {
                continue;
            };
            if toks.contains(&"drop") {
                c.dropped += n;
            } else {
                c.passed += n;
            }
        }
        Ok(c)
    }

    // ---------------------------------------------------------------------------- teardown

    /// Tear the lab down now and report problems (Drop does the same, printing them).
    pub fn teardown(mut self) -> Result<(), String> {
        let r = self.teardown_inner();
        self.torn_down = true;
        r
    }

    fn teardown_inner(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        for ns in [self.srv_ns.clone(), self.pub_ns.clone()] {
            if let Err(e) = delete_ns(&self.tools.ip, &ns) {
                errors.push(e);
            }
        }
        // The watchdog runs the same deletion again (harmless) and removes the lock file.
        // Wait for it before the slot is free, so that it cannot delete a namespace of the
        // same name made later by this process.
        if let Some(mut w) = self.watchdog.lock().unwrap().take() {
            drop(w.stdin.take());
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match w.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => {
                        errors.push("lab watchdog did not exit within 10 s; killed".into());
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        break;
                    }
                }
            }
        }
        let _ = fs::remove_file(&self.lock_path);
        match namespaces_with_prefix(&self.prefix) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => errors.push(format!("namespaces still there after teardown: {left:?}")),
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "lab {} teardown: {}",
                self.prefix,
                errors.join("; ")
            ))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.torn_down {
            self.torn_down = true;
            if let Err(e) = self.teardown_inner() {
                eprintln!("lab: {e}");
            }
        }
    }
}

fn netns_exec(ip: &Path, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// One namespace of a lab, as a value that does not borrow the [`Lab`]: what a server,
/// subscriber or publisher keeps to run programs and open sockets there. It does not keep the
/// namespace alive; the lab must outlive what runs inside (declare the lab first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns {
    name: String,
    ip_tool: PathBuf,
}

impl Netns {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `ip netns exec <ns> <program>` (see [`Lab::command_in`]).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        netns_exec(&self.ip_tool, &self.name, program)
    }
    /// Run `f` on a helper thread inside this namespace (see [`Lab::run_in`]).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        run_in_netns(&self.name, f)
    }
}

/// `program` in `netns`, or on the host (a plain [`Command`]) when `None`.
pub fn command_at(netns: Option<&Netns>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        Some(ns) => ns.command(program),
        None => Command::new(program),
    }
}

/// Run `f` on a helper thread inside the named network namespace (see [`Lab::run_in`]).
pub fn run_in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let path = netns_path(ns);
    let file = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let res = std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: setns on this thread only; the fd is valid while `file` lives
            if unsafe { sys::setns(file.as_raw_fd(), sys::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "setns({}): {}",
                    path.display(),
                    io::Error::last_os_error()
                ));
            }
            drop(file);
            Ok(f())
        })
        .join()
    });
    match res {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

// ------------------------------------------------------------------------------------------
// test certificates (for the TURN/TLS server of `LiveKitServer::start_in_lab`)

/// Files written by [`make_test_pki`].
#[derive(Clone, Debug)]
pub struct TestPki {
    /// the CA certificate: what a client must trust (e.g. `SSL_CERT_FILE` for rustls-native-certs
    /// / OpenSSL clients)
    pub ca_cert: PathBuf,
    /// server certificate (leaf, then CA) and its key: livekit's `turn.cert_file`/`key_file`
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A throw-away CA and a server certificate signed by it, valid for DNS `names` and IP `ips`,
/// made with the `openssl` CLI in `dir` (ECDSA P-256, 2 days).
pub fn make_test_pki(dir: &Path, names: &[&str], ips: &[Ipv4Addr]) -> Result<TestPki, String> {
    let openssl =
        find_tool("openssl").ok_or("`openssl` not found (install the Debian package openssl)")?;
    let p = |f: &str| dir.join(f);
    let s = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let mut san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    san.extend(ips.iter().map(|i| format!("IP:{i}")));
    let cn = names
        .first()
        .map(|n| n.to_string())
        .unwrap_or_else(|| ips[0].to_string());
    fs::write(
        p("leaf.ext"),
        format!(
            "subjectAltName={}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
            san.join(",")
        ),
    )
    .map_err(|e| format!("write leaf.ext: {e}"))?;
    let steps: Vec<Vec<String>> = vec![
        vec![
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &s("ca.key"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "req",
            "-x509",
            "-new",
            "-key",
            &s("ca.key"),
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=gstreamer-publisher test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &s("ca.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &s("server.key"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "req",
            "-new",
            "-key",
            &s("server.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &s("server.csr"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "x509",
            "-req",
            "-in",
            &s("server.csr"),
            "-CA",
            &s("ca.pem"),
            "-CAkey",
            &s("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            &s("leaf.ext"),
            "-out",
            &s("server.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for args in steps {
        let mut cmd = Command::new(&openssl);
        cmd.args(&args);
        run(cmd, None)?;
    }
    // chain file: leaf then CA
    let chain = format!(
        "{}{}",
        fs::read_to_string(p("server.pem")).map_err(|e| e.to_string())?,
        fs::read_to_string(p("ca.pem")).map_err(|e| e.to_string())?
    );
    fs::write(p("server-chain.pem"), chain).map_err(|e| e.to_string())?;
    Ok(TestPki {
        ca_cert: p("ca.pem"),
        cert: p("server-chain.pem"),
        key: p("server.key"),
    })
}

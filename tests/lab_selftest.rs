//! Self-test of the network lab (`tests/harness/src/lab.rs`) with real traffic between its two
//! namespaces: reachability and isolation, UDP blocking, random loss per direction, rate
//! limits, teardown (Drop, panic, explicit, stale labs, SIGINT/SIGKILL of the test process)
//! and a livekit-server running inside the server namespace with ICE/TCP and embedded TURN
//! (UDP + TLS). Needs root, iproute2, nftables, iputils-ping, openssl and
//! `tools/bin/livekit-server` (`scripts/setup`); without them the tests fail, never skip.

use harness::lab;

use harness::{http_get_status_at, tail_str, LabServerOptions, LiveKitServer};
use lab::{Direction, Lab, Proto};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn new_lab(name: &str) -> Lab {
    Lab::new(name).unwrap_or_else(|e| panic!("cannot build the network lab: {e}"))
}

/// Run to completion, killed after `timeout`; (exit ok, stdout+stderr).
fn output_with_timeout(mut cmd: Command, timeout: Duration) -> (bool, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let text = format!("{}{}", t_out.join().unwrap(), t_err.join().unwrap());
    (status.is_some_and(|s| s.success()), text)
}

/// A thread serving until `stop` is set; joined on drop.
struct Server {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn udp_echo(sock: UdpSocket) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s2.load(Ordering::SeqCst) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    });
    Server {
        stop,
        handle: Some(handle),
    }
}

fn tcp_echo(listener: TcpListener) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    listener.set_nonblocking(true).unwrap();
    let handle = thread::spawn(move || {
        while !s2.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 || c.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Server {
        stop,
        handle: Some(handle),
    }
}

/// Send `n` numbered datagrams, then collect echoes for up to `wait`; returns distinct echoes.
fn udp_roundtrips(sock: &UdpSocket, to: SocketAddr, n: u32, wait: Duration) -> usize {
    for i in 0..n {
        let _ = sock.send_to(&i.to_be_bytes(), to);
    }
    let mut got = HashSet::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 64];
    while got.len() < n as usize && Instant::now() < deadline {
        sock.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        if let Ok((4, _)) = sock.recv_from(&mut buf) {
            got.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
    }
    got.len()
}

/// One TCP echo round trip within `timeout`.
fn tcp_roundtrip(lab: &Lab, to: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut c = lab
        .run_in(lab.publisher_ns(), || {
            TcpStream::connect_timeout(&to, timeout)
        })?
        .map_err(|e| format!("connect {to}: {e}"))?;
    c.set_read_timeout(Some(timeout)).unwrap();
    c.write_all(b"hello lab").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 9];
    c.read_exact(&mut buf)
        .map_err(|e| format!("read echo: {e}"))?;
    if &buf != b"hello lab" {
        return Err(format!("bad echo {buf:?}"));
    }
    Ok(())
}

/// Count distinct numbered datagrams `n` sent from namespace `from_ns` to a fresh socket in
/// `to_ns` at `to_ip:port`.
fn udp_delivered(
    lab: &Lab,
    from_ns: &str,
    to_ns: &str,
    to_ip: Ipv4Addr,
    port: u16,
    n: u32,
) -> usize {
    let rx = lab
        .run_in(to_ns, || UdpSocket::bind((to_ip, port)))
        .unwrap()
        .expect("bind receiver");
    let tx = lab
        .run_in(from_ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .unwrap()
        .expect("bind sender");
    rx.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let reader = thread::spawn(move || {
        let mut got = HashSet::new();
        let mut buf = [0u8; 64];
        while let Ok((len, _)) = rx.recv_from(&mut buf) {
            if len == 4 {
                got.insert(u32::from_be_bytes(buf[..4].try_into().unwrap()));
            }
        }
        got.len()
    });
    thread::sleep(Duration::from_millis(20));
    for i in 0..n {
        tx.send_to(&i.to_be_bytes(), (to_ip, port))
            .expect("send_to");
        if i % 10 == 9 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    reader.join().unwrap()
}

/// Bulk TCP from `from_ns` to a sink at `to_ip:port` in `to_ns`; the sink measures for
/// `window` from its first byte. Returns Mbit/s of payload.
fn tcp_throughput(
    lab: &Lab,
    from_ns: &str,
    to_ns: &str,
    to_ip: Ipv4Addr,
    port: u16,
    window: Duration,
) -> f64 {
    let listener = lab
        .run_in(to_ns, || TcpListener::bind((to_ip, port)))
        .unwrap()
        .expect("bind sink");
    let sink = thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let t0 = *first.get_or_insert_with(Instant::now);
                    total += n as u64;
                    if t0.elapsed() >= window {
                        break;
                    }
                }
            }
        }
        let secs = first.map(|t| t.elapsed().as_secs_f64()).unwrap_or(1.0);
        let _ = c.shutdown(Shutdown::Both);
        total as f64 * 8.0 / secs / 1e6
    });
    let to = SocketAddr::from((to_ip, port));
    let mut c = lab
        .run_in(from_ns, || {
            TcpStream::connect_timeout(&to, Duration::from_secs(2))
        })
        .unwrap()
        .expect("connect to sink");
    c.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![0x5au8; 1 << 16];
    let deadline = Instant::now() + window + Duration::from_secs(3);
    while Instant::now() < deadline {
        match c.write(&chunk) {
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if sink.is_finished() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    drop(c);
    sink.join().unwrap()
}

// ------------------------------------------------------------------------------------------

#[test]
fn ping_between_namespaces_and_nothing_else_reachable() {
    let lab = new_lab("ping");
    let (srv, publ) = (lab.server_ip(), lab.publisher_ip());
    assert!(lab.server_ns().starts_with(lab.prefix()) && lab.server_ns().ends_with("-srv"));
    assert!(lab.publisher_ns().starts_with(lab.prefix()) && lab.publisher_ns().ends_with("-pub"));
    assert_eq!(srv.octets()[..2], [10, 213]);
    assert_eq!(srv.octets()[2], publ.octets()[2]);

    for (ns, target) in [(lab.publisher_ns(), srv), (lab.server_ns(), publ)] {
        let mut cmd = lab.command_in(ns, "ping");
        cmd.args(["-n", "-c", "3", "-i", "0.2", "-W", "2"])
            .arg(target.to_string());
        let (ok, out) = output_with_timeout(cmd, Duration::from_secs(10));
        assert!(
            ok && out.contains("3 received"),
            "ping {target} from {ns} failed:\n{out}"
        );
    }

    // no route but the connected /30 (and lo's local ones): nothing outside is reachable
    for ns in [lab.publisher_ns(), lab.server_ns()] {
        let mut cmd = lab.command_in(ns, "ip");
        cmd.args(["-4", "route", "show", "table", "main"]);
        let (ok, routes) = output_with_timeout(cmd, Duration::from_secs(5));
        assert!(ok, "ip route in {ns}: {routes}");
        let lines: Vec<&str> = routes.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "routes in {ns}: {routes}");
        assert!(
            lines[0].starts_with(&lab.subnet()),
            "routes in {ns}: {routes}"
        );
    }
    // the veth ends exist only inside the namespaces
    let mut cmd = Command::new("ip");
    cmd.args(["link", "show", lab.publisher_if()]);
    let (ok, _) = output_with_timeout(cmd, Duration::from_secs(5));
    assert!(
        !ok,
        "{} is visible in the host namespace",
        lab.publisher_if()
    );
    // loopback is up inside
    let l = lab
        .run_in(lab.publisher_ns(), || {
            UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        })
        .unwrap();
    assert!(l.is_ok(), "lo not usable in the publisher namespace: {l:?}");
}

#[test]
fn block_udp_drops_udp_while_tcp_passes() {
    let lab = new_lab("block_udp");
    let srv = lab.server_ip();
    let udp_addr = SocketAddr::from((srv, 9000));
    let tcp_addr = SocketAddr::from((srv, 9001));
    let _udp = udp_echo(
        lab.run_in(lab.server_ns(), || UdpSocket::bind(udp_addr))
            .unwrap()
            .unwrap(),
    );
    let _tcp = tcp_echo(
        lab.run_in(lab.server_ns(), || TcpListener::bind(tcp_addr))
            .unwrap()
            .unwrap(),
    );
    let client = lab
        .run_in(lab.publisher_ns(), || {
            UdpSocket::bind((lab.publisher_ip(), 0))
        })
        .unwrap()
        .unwrap();

    assert_eq!(
        udp_roundtrips(&client, udp_addr, 20, Duration::from_secs(2)),
        20,
        "UDP before blocking"
    );
    tcp_roundtrip(&lab, tcp_addr, Duration::from_secs(2)).expect("TCP before blocking");

    lab.block_udp(true).unwrap();
    let got = udp_roundtrips(&client, udp_addr, 20, Duration::from_millis(500));
    assert_eq!(
        got,
        0,
        "UDP passed although blocked:\n{}",
        lab.filter_rules(Direction::Uplink).unwrap()
    );
    tcp_roundtrip(&lab, tcp_addr, Duration::from_secs(2)).expect("TCP while UDP is blocked");
    let c = lab.filter_counters(Direction::Uplink).unwrap();
    assert!(c.dropped >= 20 && c.passed > 0, "uplink counters {c:?}");

    lab.block_udp(false).unwrap();
    assert_eq!(
        udp_roundtrips(&client, udp_addr, 20, Duration::from_secs(2)),
        20,
        "UDP after unblocking"
    );

    // one TCP port blocked: that port fails, UDP still passes
    lab.block_port(Proto::Tcp, 9001, true).unwrap();
    let r = tcp_roundtrip(&lab, tcp_addr, Duration::from_millis(500));
    assert!(r.is_err(), "TCP to a blocked port got through");
    assert_eq!(
        udp_roundtrips(&client, udp_addr, 5, Duration::from_secs(2)),
        5,
        "UDP with a TCP port blocked"
    );
    lab.block_port(Proto::Tcp, 9001, false).unwrap();
    tcp_roundtrip(&lab, tcp_addr, Duration::from_secs(2)).expect("TCP after unblocking the port");
    lab.block_port(Proto::Udp, 9000, true).unwrap();
    assert_eq!(
        udp_roundtrips(&client, udp_addr, 5, Duration::from_millis(300)),
        0,
        "UDP to a blocked port"
    );
}

#[test]
fn uplink_loss_drops_about_half_and_leaves_downlink_alone() {
    let lab = new_lab("loss");
    let (srv, publ) = (lab.server_ip(), lab.publisher_ip());
    let (sns, pns) = (lab.server_ns().to_string(), lab.publisher_ns().to_string());

    assert_eq!(
        udp_delivered(&lab, &pns, &sns, srv, 9100, 200),
        200,
        "uplink without loss"
    );

    lab.set_loss(Direction::Uplink, 50.0).unwrap();
    let up = udp_delivered(&lab, &pns, &sns, srv, 9101, 200);
    let lost = 1.0 - up as f64 / 200.0;
    eprintln!(
        "uplink with 50 % loss: {up}/200 delivered ({:.0} % lost)",
        lost * 100.0
    );
    assert!(
        (0.25..=0.75).contains(&lost),
        "uplink loss {lost:.2} not within 0.25..0.75"
    );
    let down = udp_delivered(&lab, &sns, &pns, publ, 9102, 200);
    assert_eq!(
        down, 200,
        "downlink lost datagrams although only the uplink is lossy"
    );

    lab.set_loss(Direction::Downlink, 100.0).unwrap();
    assert_eq!(
        udp_delivered(&lab, &sns, &pns, publ, 9103, 50),
        0,
        "downlink with 100 % loss"
    );

    lab.set_loss(Direction::Uplink, 0.0).unwrap();
    lab.set_loss(Direction::Downlink, 0.0).unwrap();
    assert_eq!(
        udp_delivered(&lab, &pns, &sns, srv, 9104, 200),
        200,
        "uplink after clearing loss"
    );
}

#[test]
fn uplink_rate_limit_caps_tcp() {
    let lab = new_lab("rate");
    let (srv, publ) = (lab.server_ip(), lab.publisher_ip());
    let (sns, pns) = (lab.server_ns().to_string(), lab.publisher_ns().to_string());

    let base = tcp_throughput(&lab, &pns, &sns, srv, 9200, Duration::from_millis(700));
    eprintln!("uplink unlimited: {base:.1} Mbit/s");
    assert!(base > 20.0, "unlimited uplink only {base:.1} Mbit/s");

    lab.set_rate(Direction::Uplink, 1000).unwrap();
    let limited = tcp_throughput(&lab, &pns, &sns, srv, 9201, Duration::from_secs(3));
    eprintln!("uplink at 1000 kbit: {limited:.3} Mbit/s");
    assert!(
        limited < 1.5,
        "uplink limited to 1000 kbit reached {limited:.3} Mbit/s"
    );
    assert!(
        limited > 0.6,
        "uplink limited to 1000 kbit only reached {limited:.3} Mbit/s"
    );

    let down = tcp_throughput(&lab, &sns, &pns, publ, 9202, Duration::from_millis(700));
    eprintln!("downlink while uplink is limited: {down:.1} Mbit/s");
    assert!(
        down > 20.0,
        "downlink only {down:.1} Mbit/s while the uplink is limited"
    );

    lab.clear_rate(Direction::Uplink).unwrap();
    assert!(lab.rate(Direction::Uplink).is_none());
    let again = tcp_throughput(&lab, &pns, &sns, srv, 9203, Duration::from_millis(700));
    eprintln!("uplink after clear_rate: {again:.1} Mbit/s");
    assert!(
        again > 20.0,
        "uplink after clear_rate only {again:.1} Mbit/s"
    );
}

#[test]
fn teardown_leaves_nothing_behind() {
    // explicit teardown
    let lab = new_lab("teardown");
    let prefix = lab.prefix().to_string();
    assert_eq!(lab::namespaces_with_prefix(&prefix).unwrap().len(), 2);
    lab.teardown().expect("teardown");
    assert!(lab::namespaces_with_prefix(&prefix).unwrap().is_empty());

    // drop while a test panics, with a process still running inside
    let seen = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(|| {
        let lab = new_lab("panics");
        // Not waited for on purpose: the lab's teardown must kill it, which is what is checked.
        #[allow(clippy::zombie_processes)]
        let child = lab.server_command("sleep").arg("30").spawn().unwrap();
        *seen.lock().unwrap() = Some((lab.prefix().to_string(), child.id()));
        panic!("test panics with the lab alive (expected)");
    });
    assert!(r.is_err());
    let (prefix, sleeper) = seen.lock().unwrap().take().unwrap();
    assert!(
        lab::namespaces_with_prefix(&prefix).unwrap().is_empty(),
        "namespaces left after a panic"
    );
    // the process inside was killed (now our un-reaped zombie)
    let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "process inside the lab survived: {stat}"
    );

    // stale labs of a dead process are removed by the next Lab::new
    let mut t = Command::new("true").spawn().unwrap();
    let dead = t.id();
    t.wait().unwrap();
    let stale = [format!("gpl-{dead}-999-srv"), format!("gpl-{dead}-999-pub")];
    for ns in &stale {
        let st = Command::new("ip")
            .args(["netns", "add", ns])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let stale_lock = PathBuf::from(lab::LOCK_DIR).join(format!("slot-stale-test-{dead}"));
    std::fs::write(&stale_lock, format!("{dead} stale\n")).unwrap();
    let lab = new_lab("after_stale");
    let left = lab::namespaces_with_prefix(&format!("gpl-{dead}-")).unwrap();
    assert!(left.is_empty(), "stale namespaces not removed: {left:?}");
    assert!(!stale_lock.exists(), "stale lock file not removed");
    drop(lab);
}

/// Helper for `sigint_or_sigkill_of_the_test_process_leaves_nothing`: run as a child with
/// LAB_SELFTEST_HOLD=1; holds a lab until killed. Without the variable it does nothing.
#[test]
#[ignore = "helper, run by another test"]
fn hold_lab_helper() {
    if std::env::var_os("LAB_SELFTEST_HOLD").is_none() {
        return;
    }
    let lab = new_lab("hold");
    // Not waited for on purpose: the lab's cleanup must kill it, which is what is checked.
    #[allow(clippy::zombie_processes)]
    let _sleeper = lab.server_command("sleep").arg("60").spawn().unwrap();
    println!("LAB_PREFIX={}", lab.prefix());
    std::io::stdout().flush().unwrap();
    thread::sleep(Duration::from_secs(60));
}

#[test]
fn sigint_or_sigkill_of_the_test_process_leaves_nothing() {
    use std::os::unix::process::CommandExt;
    for sig in ["INT", "KILL"] {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "hold_lab_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LAB_SELFTEST_HOLD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0); // like a foreground job: Ctrl-C goes to this whole group
        let mut child: Child = cmd.spawn().unwrap();
        let pgid = child.id();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let prefix = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    // libtest may print "test hold_lab_helper ... " on the same line
                    if let Some((_, p)) = l.split_once("LAB_PREFIX=") {
                        break p.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("helper ended without making a lab");
                }
            }
        };
        assert_eq!(lab::namespaces_with_prefix(&prefix).unwrap().len(), 2);
        // the whole process group, as a terminal does
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg("--")
            .arg(format!("-{pgid}"))
            .status()
            .unwrap();
        assert!(st.success());
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = lab::namespaces_with_prefix(&prefix).unwrap();
            if left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SIG{sig}: namespaces left: {left:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

// ------------------------------------------------------------------------------------------
// livekit-server in the server namespace

/// STUN Binding request; returns the XOR-MAPPED-ADDRESS of a success response.
fn stun_binding(sock: &UdpSocket, to: SocketAddr) -> Option<SocketAddrV4> {
    let tid: [u8; 12] = *b"gpl-lab-test";
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    req.extend_from_slice(&tid);
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        sock.send_to(&req, to).ok()?;
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let m = &buf[..n];
        if n < 20 || m[0..2] != [0x01, 0x01] || m[8..20] != tid {
            continue;
        }
        let mut i = 20;
        while i + 4 <= n {
            let ty = u16::from_be_bytes([m[i], m[i + 1]]);
            let len = u16::from_be_bytes([m[i + 2], m[i + 3]]) as usize;
            let v = &m[i + 4..(i + 4 + len).min(n)];
            if ty == 0x0020 && v.len() >= 8 && v[1] == 0x01 {
                let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
                let ip = Ipv4Addr::new(v[4] ^ 0x21, v[5] ^ 0x12, v[6] ^ 0xa4, v[7] ^ 0x42);
                return Some(SocketAddrV4::new(ip, port));
            }
            i += 4 + len.div_ceil(4) * 4;
        }
    }
    None
}

/// TURN Allocate without credentials: a TURN server answers 401 with its REALM.
fn turn_allocate_realm(sock: &UdpSocket, to: SocketAddr) -> Option<(u16, String)> {
    let tid: [u8; 12] = *b"gpl-lab-turn";
    // Allocate request, REQUESTED-TRANSPORT = UDP (17)
    let mut req = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    req.extend_from_slice(&tid);
    req.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        sock.send_to(&req, to).ok()?;
        let Ok((n, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let m = &buf[..n];
        if n < 20 || m[0..2] != [0x01, 0x13] || m[8..20] != tid {
            continue;
        }
        let (mut code, mut realm) = (0u16, String::new());
        let mut i = 20;
        while i + 4 <= n {
            let ty = u16::from_be_bytes([m[i], m[i + 1]]);
            let len = u16::from_be_bytes([m[i + 2], m[i + 3]]) as usize;
            let v = &m[i + 4..(i + 4 + len).min(n)];
            match ty {
                0x0009 if v.len() >= 4 => code = u16::from(v[2]) * 100 + u16::from(v[3]),
                0x0014 => realm = String::from_utf8_lossy(v).into_owned(),
                _ => {}
            }
            i += 4 + len.div_ceil(4) * 4;
        }
        return Some((code, realm));
    }
    None
}

#[test]
fn livekit_server_runs_in_the_server_namespace_with_turn() {
    let lab = new_lab("livekit");
    let server = LiveKitServer::start_in_lab(
        &lab,
        LabServerOptions {
            tcp_port: true,
            turn: true,
            ..Default::default()
        },
    );
    let srv = lab.server_ip();
    assert_eq!(server.url(), format!("ws://{srv}:{}", server.port()));
    let turn = server.turn().expect("TURN is on").clone();
    let show = || {
        format!(
            "config:\n{}\nlog:\n{}",
            std::fs::read_to_string(server.dir().join("livekit.yaml")).unwrap_or_default(),
            tail_str(&server.log(), 40)
        )
    };

    // HTTP 200 on http://<server_ip>:7880/ from the publisher namespace, across the veth
    let http = SocketAddr::from((srv, server.port()));
    let status = lab
        .run_in(lab.publisher_ns(), || {
            http_get_status_at(http, "/", Duration::from_secs(2))
        })
        .unwrap();
    assert_eq!(
        status,
        Some(200),
        "HTTP from the publisher namespace; {}",
        show()
    );

    // ICE/TCP port accepts connections
    let ice_tcp = SocketAddr::from((srv, server.tcp_port()));
    let c = lab
        .run_in(lab.publisher_ns(), || {
            TcpStream::connect_timeout(&ice_tcp, Duration::from_secs(2))
        })
        .unwrap();
    assert!(c.is_ok(), "ICE/TCP {ice_tcp}: {c:?}; {}", show());

    // embedded TURN over UDP answers STUN with the publisher's own address
    let turn_udp = SocketAddr::from((srv, turn.udp_port));
    let sock = lab
        .run_in(lab.publisher_ns(), || {
            UdpSocket::bind((lab.publisher_ip(), 0))
        })
        .unwrap()
        .unwrap();
    let mapped = stun_binding(&sock, turn_udp);
    assert_eq!(
        mapped.map(|a| *a.ip()),
        Some(lab.publisher_ip()),
        "STUN via TURN/UDP {turn_udp}; {}",
        show()
    );

    // …and is a TURN server (Allocate without credentials → 401, realm "livekit")
    let r = turn_allocate_realm(&sock, turn_udp);
    assert_eq!(
        r,
        Some((401, "livekit".to_string())),
        "TURN Allocate on {turn_udp}; {}",
        show()
    );

    // TURN/TLS on <domain>:443 with a certificate that verifies against the test CA, the
    // domain resolved inside the publisher namespace (start_in_lab mapped it)
    let domain = turn.domain.as_str();
    let mut cmd = lab.publisher_command("openssl");
    cmd.args(["s_client", "-brief", "-verify_return_error", "-connect"])
        .arg(format!("{domain}:{}", turn.tls_port))
        .args(["-servername", domain, "-verify_hostname", domain, "-CAfile"])
        .arg(server.ca_file().expect("CA file with TURN"));
    let (ok, out) = output_with_timeout(cmd, Duration::from_secs(10));
    assert!(
        ok && out.contains("Verification: OK"),
        "TURN/TLS handshake failed:\n{out}\n{}",
        show()
    );

    // with UDP blocked, STUN fails but HTTP and TURN/TLS still work
    lab.block_udp(true).unwrap();
    assert_eq!(
        stun_binding(&sock, turn_udp),
        None,
        "STUN passed although UDP is blocked"
    );
    assert_eq!(
        lab.run_in(lab.publisher_ns(), || {
            http_get_status_at(http, "/", Duration::from_secs(2))
        })
        .unwrap(),
        Some(200)
    );
    // the readiness check runs inside the server namespace, unaffected by the lab's knobs
    assert!(server.is_ready());

    assert!(server.log().contains("Starting TURN server"), "{}", show());
}

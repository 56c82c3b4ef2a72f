//! A multi-node LiveKit: two livekit-server nodes sharing one Redis on loopback
//! ([`Cluster`]), and the publisher given both (`--url A --url B`, A first). The room lives
//! on one node; a participant connected to the other has its signalling relayed and its media
//! sent straight to the room's node. Real servers, real publisher binary, the independent
//! subscriber's decoded frames as the truth.
//!
//! The fault tests pin the room to a node ([`Placement::FirstContact`]: a room goes to the
//! node its first participant connected to), because what a node's death does depends on it:
//! killing the node that only relays the publisher's signalling leaves the room and the
//! subscriber alone, killing the room's node moves the room, and every participant with it.
//! The subscriber always connects to node B, the one that stays.
//!
//! One test at a time (a file-wide lock): they measure recovery times on a 2-core machine.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::*;
use serde_json::Value;

const LIVE_VP8: &str = "videotestsrc is-live=true ! video/x-raw,width=320,height=240 ! vp8enc deadline=1 keyframe-max-dist=300 name=cam";
const SIZE: (u64, u64) = (320, 240);
const IDENTITY: &str = "multi";
/// Node A (the publisher's first URL, the one that fails) and node B.
const A: usize = 0;
const B: usize = 1;
/// From a node's failure to video decoded again.
const RECOVERY: Duration = Duration::from_secs(10);

fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The publisher minting its own tokens, given node A's URL first and node B's second.
fn publisher_a_then_b(c: &Cluster, room: &str, log: &Path) -> ChildGuard {
    let (a, b) = (c.node(A).url(), c.node(B).url());
    spawn_publisher(
        c.node(A),
        Auth::Mint {
            room,
            identity: IDENTITY,
        },
        LIVE_VP8,
        log,
        &["--url", &a, "--url", &b, "--reconnect-timeout", "30"],
        &[],
    )
}

fn log_len(log: &Path) -> usize {
    std::fs::read(log).map(|b| b.len()).unwrap_or(0)
}

/// The publisher's log from byte `from` on.
fn log_since(log: &Path, from: usize) -> String {
    let b = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(b.get(from..).unwrap_or_default()).into_owned()
}

/// Waits until the publisher's log after byte `from` contains `needle`; panics with `what`.
fn wait_for_log_since(log: &Path, from: usize, needle: &str, timeout: Duration, what: &str) {
    if wait_until(timeout, || {
        log_since(log, from).contains(needle).then_some(())
    })
    .is_none()
    {
        panic!(
            "{what} (no \"{needle}\" within {timeout:?})\n{}",
            tail_file(log, 30)
        );
    }
}

/// The first video frame of ours the subscriber decoded after wall time `after` (a new track's
/// first frame, or frames again after a stall).
fn video_after(sub: &mut Subscriber, after: f64, timeout: Duration) -> Option<Value> {
    sub.wait_event(timeout, |e| {
        (e["type"] == "first_frame" || e["type"] == "video_resumed")
            && e["kind"] == "video"
            && e["identity"] == IDENTITY
            && e["t_wall"].as_f64().is_some_and(|t| t > after)
    })
}

/// A `first_frame` event is at the size published.
fn assert_size(ev: &Value) {
    if ev["type"] == "first_frame" {
        assert_eq!(
            (ev["width"].as_u64(), ev["height"].as_u64()),
            (Some(SIZE.0), Some(SIZE.1)),
            "decoded size: {ev}"
        );
    }
}

/// A two-node cluster with the room on node `room_on`, the publisher on A (`--url A --url B`)
/// live, and a subscriber on B that decodes its video.
struct Scene {
    // dropped in this order: the processes, then the cluster (nodes, then Redis)
    publisher: ChildGuard,
    sub: Subscriber,
    room: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
    c: Cluster,
}

impl Scene {
    fn start(prefix: &str, room_on: usize) -> Scene {
        let c = Cluster::start_with(2, Placement::FirstContact, ServerOptions::default());
        let (room, dir, log) = fresh_room(prefix);
        let live = |log: &Path| {
            wait_for_log(
                log,
                "is live as track",
                Duration::from_secs(20),
                "the publisher never went live through node A",
            )
        };
        let (publisher, mut sub) = if room_on == B {
            // the subscriber first, through B: the room goes to B
            let mut sub = Subscriber::spawn(c.node(B), &room, &["--duration", "120"]);
            sub.wait_event_type("connected", Duration::from_secs(20))
                .unwrap_or_else(|| {
                    panic!("the subscriber never joined through B\n{}", sub.stderr())
                });
            let p = publisher_a_then_b(&c, &room, &log);
            live(&log);
            (p, sub)
        } else {
            // the publisher first, through A: the room goes to A
            let p = publisher_a_then_b(&c, &room, &log);
            live(&log);
            (
                p,
                Subscriber::spawn(c.node(B), &room, &["--duration", "120"]),
            )
        };
        let first = video_after(&mut sub, 0.0, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no video decoded through B\n{}", tail_file(&log, 30)));
        assert_size(&first);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text.contains("trying the next server"),
            "node A, the first URL, answered and was used\n{text}"
        );
        assert_eq!(
            c.room_node(&room),
            Some(room_on),
            "where the room lives ({})",
            c.describe()
        );
        // some seconds of steady video before the fault
        std::thread::sleep(Duration::from_secs(2));
        Scene {
            publisher,
            sub,
            room,
            log,
            _dir: dir,
            c,
        }
    }

    /// After node A failed (the publisher's log had `from` bytes then): the publisher's
    /// WebSocket to A closed, it found A gone and rejoined, through B (the one node left).
    /// Returns its log since the failure.
    fn publisher_rejoined_through_b(&mut self, from: usize) -> String {
        let a_port = self.c.node(A).port();
        wait_for_log_since(
            &self.log,
            from,
            "rejoined the room",
            Duration::from_secs(20),
            "the publisher did not rejoin after node A went away",
        );
        let text = log_since(&self.log, from);
        eprintln!("cluster: the publisher's log since node A went away:\n{text}");
        assert!(
            text.contains("the signalling connection closed"),
            "the publisher was connected to node A (its first URL)\n{text}"
        );
        assert!(
            text.contains(&format!("cannot connect to 127.0.0.1:{a_port}")),
            "the publisher tried node A again and found it gone\n{text}"
        );
        assert!(
            !self.c.node_mut(A).is_running(),
            "node A is gone, so the rejoin went through B"
        );
        assert!(self.publisher.is_running(), "{}", tail_file(&self.log, 30));
        text
    }

    /// The subscriber on B (there all along) decodes our video again within `within` of
    /// `failed_at`. Returns the seconds it took.
    fn video_again_on_b(&mut self, failed_at: f64, within: Duration) -> f64 {
        let again =
            video_after(&mut self.sub, failed_at, Duration::from_secs(40)).unwrap_or_else(|| {
                panic!(
                    "the subscriber on B decoded no video after node A went away\n{}\n{}",
                    tail_file(&self.log, 30),
                    tail_str(&self.sub.stderr(), 30)
                )
            });
        assert_size(&again);
        let after = again["t_wall"].as_f64().unwrap() - failed_at;
        eprintln!(
            "cluster: the subscriber on B decoded video again {after:.2} s after node A went \
             away ({})",
            again["type"]
        );
        assert!(
            after < within.as_secs_f64(),
            "video decoded again {after:.2} s after node A went away, want < {within:?}\n{}\n{}",
            tail_file(&self.log, 30),
            tail_str(&self.sub.stderr(), 30)
        );
        after
    }

    /// A viewer who joins through B now decodes our video within [`RECOVERY`] of `failed_at`.
    fn fresh_viewer_on_b(&self, failed_at: f64) -> f64 {
        // an identity of its own: one that is in the room already would be replaced
        let mut fresh = Subscriber::spawn(
            self.c.node(B),
            &self.room,
            &["--duration", "30", "--identity", "viewer"],
        );
        let ev = video_after(&mut fresh, 0.0, Duration::from_secs(20)).unwrap_or_else(|| {
            panic!(
                "a viewer who joined through B decoded no video\n{}\n{}",
                tail_file(&self.log, 30),
                tail_str(&fresh.stderr(), 30)
            )
        });
        assert_size(&ev);
        let after = ev["t_wall"].as_f64().unwrap() - failed_at;
        eprintln!("cluster: a fresh viewer on B decoded video {after:.2} s after node A went away");
        assert!(
            after < RECOVERY.as_secs_f64(),
            "a fresh viewer decoded video {after:.2} s after node A went away"
        );
        after
    }

    /// Stop everything: the publisher with SIGINT (exit 0), the subscriber with its report;
    /// the cluster is killed on drop.
    fn finish(mut self) -> SubscriberReport {
        stop_cleanly(&mut self.publisher, &self.log, Duration::from_secs(3));
        self.sub.finish();
        let report = self.sub.wait_timeout(Duration::from_secs(20));
        for t in report.video_tracks() {
            assert_eq!(t.sizes, vec![(320, 240)], "{}", report.pretty());
        }
        report
    }
}

#[test]
fn publisher_on_node_a_and_subscriber_on_node_b_share_one_room() {
    let _s = serial();
    // LiveKit's own placement: the room goes to either node.
    let c = Cluster::start(2);
    let (room, _dir, log) = fresh_room("twonodes");
    let mut p = publisher_a_then_b(&c, &room, &log);
    let sub = Subscriber::spawn(
        c.node(B),
        &room,
        &[
            "--duration",
            "30",
            "--wait-tracks",
            "1",
            "--exit-after-frames",
            "120",
        ],
    );
    let report = sub.wait();
    let room_on = c.room_node(&room);
    eprintln!(
        "cluster: the room lives on node {room_on:?} ({})",
        c.describe()
    );
    stop_cleanly(&mut p, &log, Duration::from_secs(3));
    let v = report.video_tracks();
    assert_eq!(v.len(), 1, "{}", report.pretty());
    assert!(v[0].frames >= 120, "{}", report.pretty());
    assert_eq!(v[0].participant, IDENTITY);
    assert_eq!((v[0].width, v[0].height), (320, 240), "{}", report.pretty());
    assert_eq!(v[0].sizes, vec![(320, 240)], "{}", report.pretty());
    assert!(room_on.is_some(), "the room is on one of the nodes");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("trying the next server"),
        "node A answered first\n{text}"
    );
}

#[test]
fn node_a_killed_while_it_relays_the_publisher_video_is_back_on_b_within_10s() {
    let _s = serial();
    let mut s = Scene::start("kill-relay", B);
    let from = log_len(&s.log);
    let killed = wall();
    s.c.node_mut(A).kill();
    s.publisher_rejoined_through_b(from);
    s.video_again_on_b(killed, RECOVERY);
    // the room never moved
    assert_eq!(s.c.room_node(&s.room), Some(B));
    s.finish();
}

/// The room's own node dies, and the room with it. The publisher's rejoin through B takes
/// ~6 s, all of it in livekit-server v1.13.5: B still sends the join to A, whose registration
/// in Redis looks alive for 5 s, and gives up after two 3 s timeouts ("could not handle new
/// participant … request timed out" in B's log); then it makes the room again on B. The
/// subscriber's SDK is told later still: B relays its signalling to the dead A and gives up on
/// it only after ~10 s ("could not send signal message"), then the SDK rejoins. So a viewer who
/// joins through B measures our recovery (within 10 s), and the one who was there gets its
/// video back within 20 s.
#[test]
fn node_a_killed_while_it_hosts_the_room_the_room_moves_to_b_and_video_follows() {
    let _s = serial();
    let mut s = Scene::start("kill-host", A);
    let from = log_len(&s.log);
    let killed = wall();
    s.c.node_mut(A).kill();
    s.publisher_rejoined_through_b(from);
    s.fresh_viewer_on_b(killed);
    s.video_again_on_b(killed, Duration::from_secs(20));
    assert_eq!(s.c.room_node(&s.room), Some(B), "the room moved to B");
    s.finish();
}

/// SIGTERM to a node that hosts no participant (it only relays the publisher's signalling to
/// the room's node B): livekit-server v1.13.5 exits at once and cuts the WebSocket, without a
/// leave (it sends one only when it closes a room it hosts).
#[test]
fn node_a_stopped_gracefully_while_it_relays_the_publisher_video_is_back_on_b_within_10s() {
    let _s = serial();
    let mut s = Scene::start("term-relay", B);
    let from = log_len(&s.log);
    let stopped = wall();
    s.c.node_mut(A).shutdown();
    assert!(
        s.c.node_mut(A).wait_exit(Duration::from_secs(4)),
        "node A (no participant of its own) exits on SIGTERM at once"
    );
    let text = s.publisher_rejoined_through_b(from);
    s.video_again_on_b(stopped, RECOVERY);
    assert!(!text.contains("removed"), "{text}");
    assert_eq!(s.c.room_node(&s.room), Some(B));
    s.finish();
}

/// SIGTERM to the room's node: livekit-server v1.13.5 drains (takes no new room) and waits for
/// its participants to leave, telling them nothing; a second SIGTERM forces it to close the
/// room, with a leave (action DISCONNECT, reason SERVER_SHUTDOWN) to everyone in it.
///
/// The publisher takes that leave as a lost connection (not a removal: exit code 6 is for
/// being removed) and rejoins through B.
#[test]
fn node_a_drained_while_it_hosts_the_room_the_publisher_moves_to_b() {
    let _s = serial();
    let mut s = Scene::start("drain-host", A);
    let from = log_len(&s.log);
    s.c.node_mut(A).shutdown();
    // Draining: the room goes on on A.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        s.c.node_mut(A).is_running(),
        "node A waits for its participants"
    );
    assert!(
        !log_since(&s.log, from).contains("reconnecting"),
        "nothing happened to the publisher while A drains\n{}",
        tail_file(&s.log, 20)
    );
    let from = log_len(&s.log);
    let forced = wall();
    s.c.node_mut(A).shutdown();
    wait_for_log_since(
        &s.log,
        from,
        "SERVER_SHUTDOWN",
        Duration::from_secs(10),
        "the publisher got no leave from node A",
    );
    if let Some(st) = s.publisher.wait_timeout(Duration::from_secs(2)) {
        panic!(
            "the publisher ended ({st}) on node A's leave instead of moving to B\n{}",
            tail_file(&s.log, 10)
        );
    }
    assert!(
        s.c.node_mut(A).wait_exit(Duration::from_secs(10)),
        "node A exits"
    );
    wait_for_log_since(
        &s.log,
        from,
        "rejoined the room",
        Duration::from_secs(20),
        "the publisher did not rejoin through B after node A closed the room",
    );
    assert!(s.publisher.is_running(), "{}", tail_file(&s.log, 30));
    // The subscriber's SDK takes the same leave as the end (it disconnects): a viewer who
    // joins through B sees the publisher back.
    s.fresh_viewer_on_b(forced);
    stop_cleanly(&mut s.publisher, &s.log, Duration::from_secs(3));
}

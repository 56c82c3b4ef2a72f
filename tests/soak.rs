//! `scripts/soak --short` as CI runs it: a minute of 720p30 H.264 + Opus into a loopback
//! livekit-server, then six forced reconnects (three resumes: the publisher's signalling
//! socket destroyed with `ss -K`; three rejoins: the server SIGKILLed and restarted), with the
//! independent subscriber decoding all along. The script fails on RSS drift, fd or thread
//! growth, the subscriber no longer decoding, the publisher dying, or a forced reconnect that
//! did not recover; here it must pass, print its summary, and leave nothing running. And a
//! publisher that dies must fail it, with one clear line.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;

/// Pids and command lines of live processes whose environment carries `marker` (everything
/// the script starts inherits it).
fn processes_marked(marker: &str) -> Vec<(u32, String)> {
    processes_with_env(&format!("GSTPUB_SOAK_MARK={marker}"))
}

fn leftovers(marker: &str, timeout: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = processes_marked(marker);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn keep_test_logs() -> bool {
    std::env::var_os("KEEP_TEST_LOGS").is_some_and(|v| v != "0" && !v.is_empty())
}

fn soak_command(marker: &str, publisher: &Path, logs: &Path) -> Command {
    // The prerequisites the script needs, found the harness's way: a missing one fails here
    // with "run scripts/setup first", never skips.
    livekit_server_bin();
    let python = subscriber_python();
    let mut cmd = Command::new(manifest_dir().join("scripts/soak"));
    cmd.arg("--short")
        .arg("--log-dir")
        .arg(logs)
        .env("GSTPUB_SOAK_MARK", marker)
        .env("SOAK_PUBLISHER", publisher)
        .env("SOAK_PYTHON", python)
        .env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_TOKEN");
    cmd
}

#[test]
fn short_soak_stays_flat_through_forced_resumes_and_rejoins() {
    // It loads the machine (a 720p encoder and a decoding subscriber) and measures timings.
    let _serial = serial();
    let marker = format!("soak-{}-{}", std::process::id(), room_name("m"));
    let logs = test_dir("soak");
    let out = run_with_timeout(
        "soak",
        soak_command(&marker, &publisher_bin(), logs.path()),
        Duration::from_secs(300),
    );
    if out.code != Some(0) || keep_test_logs() {
        // the publisher's, server's and subscriber's logs, the frame log, the report
        eprintln!("soak: kept its logs in {}", logs.keep().display());
    }
    assert!(
        !out.timed_out(),
        "scripts/soak --short hung (over 300 s):\n{}\n{}",
        tail_str(&out.stdout, 40),
        tail_str(&out.stderr, 30)
    );
    assert_eq!(
        out.code,
        Some(0),
        "scripts/soak --short failed:\n{}\n{}",
        tail_str(&out.stdout, 40),
        tail_str(&out.stderr, 30)
    );
    let stdout = &out.stdout;
    // One line per sample, then the summary.
    let samples = stdout.lines().filter(|l| l.starts_with("sample ")).count();
    assert!(samples >= 12 + 6, "{samples} samples:\n{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("soak summary:")),
        "{stdout}"
    );
    for row in [
        "| RSS, MiB",
        "| peak RSS (VmHWM), MiB",
        "| open fds",
        "| threads",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(row)),
            "no row {row}:\n{stdout}"
        );
    }
    // Every forced reconnect recovered as what it was forced as.
    for (kind, how) in [
        ("resume", "3 forced, 3 recovered (3 as a resume)"),
        ("rejoin", "3 forced, 3 recovered (3 as a rejoin)"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("reconnects forced as {kind}")) && l.contains(how)),
            "{kind}: {how}:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.lines().last(),
        Some("soak: PASSED"),
        "{}",
        tail_str(stdout, 20)
    );
    let left = leftovers(&marker, Duration::from_secs(3));
    assert!(left.is_empty(), "left running after the soak: {left:?}");
}

#[test]
fn a_publisher_that_dies_fails_the_soak_with_one_clear_line() {
    let _serial = serial();
    let marker = format!("soak-dies-{}-{}", std::process::id(), room_name("m"));
    let logs = test_dir("soak-dies");
    // A "publisher" that exits at once, as a crashed one would.
    let out = run_with_timeout(
        "soak",
        soak_command(&marker, Path::new("/bin/false"), logs.path()),
        Duration::from_secs(90),
    );
    assert!(!out.timed_out(), "{}", tail_str(&out.stderr, 30));
    assert_eq!(
        out.code,
        Some(1),
        "{}\n{}",
        out.stdout,
        tail_str(&out.stderr, 30)
    );
    let failed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("soak: FAILED: "))
        .collect();
    assert_eq!(
        failed,
        ["soak: FAILED: the publisher died (exit code 1)"],
        "{}\n{}",
        out.stdout,
        tail_str(&out.stderr, 30)
    );
    let left = leftovers(&marker, Duration::from_secs(3));
    assert!(left.is_empty(), "left running after the soak: {left:?}");
}

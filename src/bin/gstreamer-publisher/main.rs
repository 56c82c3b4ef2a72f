//! `gstreamer-publisher`: publish a GStreamer pipeline's encoded outputs into a LiveKit room.

mod app;
mod cli;
mod report;

use std::process::ExitCode;
use std::sync::Arc;

use cli::Parsed;
use gstreamer_publisher::error::{exit, Error};
use gstreamer_publisher::redact::Redactor;
use tokio::sync::mpsc;

fn main() -> ExitCode {
    let config = match cli::parse_args() {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    if !config.dry_run {
        // The crypto library's one-time set-up, while GStreamer starts.
        gstreamer_publisher::warm_up();
    }
    // Every line we print passes through this: the user's token and secret, and anything
    // shaped like a token (servers echo them), are masked.
    let redactor = Arc::new(Redactor::new(config.secrets()));
    init_logging(
        config.verbose,
        config.quiet,
        config.log_json,
        Arc::clone(&redactor),
    );
    let fail = |e: Error| {
        eprintln!("error: {}", redactor.redact(&e.to_string()));
        ExitCode::from(e.exit_code() as u8)
    };

    if let Some(link) = config.viewer_link() {
        match link {
            // Asked for: the one place a token is printed, a subscribe-only one, on stdout.
            Ok(text) => {
                print!("{text}");
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
            }
            Err(e) => return fail(e),
        }
    }

    if config.dry_run {
        return match app::dry_run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        };
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME as u8);
        }
    };
    let stop_rx = spawn_signal_watcher();
    let result = runtime.block_on(async move {
        if !config.delay.is_zero() {
            tracing::info!(
                "publishing after {:.1} s (--delay)",
                config.delay.as_secs_f64()
            );
        }
        app::run(config, stop_rx).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Signals are watched on a thread of their own, so that a second SIGINT ends the process at
/// once even while the run loop is busy (e.g. waiting for the pipeline to stop). The first
/// one arrives on the returned channel.
fn spawn_signal_watcher() -> mpsc::UnboundedReceiver<()> {
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    let watcher = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let spawned = watcher.ok().and_then(|rt| {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || rt.block_on(watch_signals(stop_tx)))
            .ok()
    });
    if spawned.is_none() {
        eprintln!("warning: cannot watch SIGINT/SIGTERM");
    }
    stop_rx
}

/// SIGINT/SIGTERM ask the session to leave cleanly; a second one ends the process at once.
async fn watch_signals(stop: mpsc::UnboundedSender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot watch SIGINT/SIGTERM");
        return;
    };
    let mut count = 0;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        count += 1;
        if count == 1 {
            tracing::info!("stopping (press Ctrl-C again to quit at once)");
            let _ = stop.send(());
        } else {
            eprintln!("error: stopped at once by a second signal");
            std::process::exit(exit::FORCED);
        }
    }
}

fn init_logging(verbose: bool, quiet: bool, json: bool, redactor: Arc<Redactor>) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let default = if quiet {
        "error"
    } else if verbose {
        "warn,gstreamer_publisher=debug"
    } else {
        "warn,gstreamer_publisher=info"
    };
    let default: Targets = default.parse().expect("the default log filter parses");
    // `level` or `target=level` directives, comma-separated (e.g. `info,str0m=debug`).
    let (filter, unread) = match std::env::var("GST_PUBLISHER_LOG") {
        Ok(text) if !text.trim().is_empty() => match text.parse::<Targets>() {
            Ok(f) => (f, None),
            Err(e) => (default, Some((text, e))),
        },
        _ => (default, None),
    };
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(RedactingStderr(Arc::clone(&redactor)))
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        // One JSON object per line, for journald and log shippers.
        registry.with(logs.json()).init();
    } else {
        registry
            .with(logs.with_ansi(std::io::stderr().is_terminal()))
            .init();
    }
    if let Some((text, e)) = unread {
        tracing::warn!(
            "GST_PUBLISHER_LOG={}: {e}; logging at the default level. Give `level` or `target=level` directives, e.g. `info,str0m=debug`",
            redactor.redact(&text)
        );
    }
}

/// Log lines go to stderr through the [`Redactor`], one event at a time.
#[derive(Clone)]
struct RedactingStderr(Arc<Redactor>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingLine;
    fn make_writer(&'a self) -> RedactingLine {
        RedactingLine {
            redactor: Arc::clone(&self.0),
            buf: Vec::new(),
        }
    }
}

/// Collects one formatted event and writes it, redacted, when dropped.
struct RedactingLine {
    redactor: Arc<Redactor>,
    buf: Vec<u8>,
}

impl std::io::Write for RedactingLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactingLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let _ = std::io::Write::write_all(
            &mut std::io::stderr().lock(),
            self.redactor.redact(&text).as_bytes(),
        );
    }
}

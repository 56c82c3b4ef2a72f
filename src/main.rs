//! `gstreamer-publisher`: publish a GStreamer pipeline's encoded outputs into a LiveKit room.

use std::process::ExitCode;

use gstreamer_publisher::cli::{self, Parsed};
use gstreamer_publisher::error::exit;
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
    init_logging(config.verbose, config.quiet);

    if config.dry_run {
        return match gstreamer_publisher::app::dry_run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code() as u8)
            }
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
    // Signals are watched on a thread of their own, so that a second SIGINT ends the process
    // at once even while the run loop is busy (e.g. waiting for the pipeline to stop).
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    let watcher = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match watcher {
        Ok(rt) => {
            let spawned = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || rt.block_on(watch_signals(stop_tx)));
            if spawned.is_err() {
                eprintln!("warning: cannot watch SIGINT/SIGTERM");
            }
        }
        Err(_) => eprintln!("warning: cannot watch SIGINT/SIGTERM"),
    }
    let result = runtime.block_on(async move {
        if !config.delay.is_zero() {
            tracing::info!(
                "publishing after {:.1} s (--delay)",
                config.delay.as_secs_f64()
            );
        }
        gstreamer_publisher::app::run(config, stop_rx).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
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

fn init_logging(verbose: bool, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet {
        "error"
    } else if verbose {
        "warn,gstreamer_publisher=debug"
    } else {
        "warn,gstreamer_publisher=info"
    };
    let filter =
        EnvFilter::try_from_env("GST_PUBLISHER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

//! The command line: flags, environment variables, and their validation into a [`Config`].
//!
//! Flags follow the Go `gstreamer-publisher` (`--url`, `--token`, `--delay`, `--verbose`, the
//! pipeline after `--`) plus what LiveKit users know from `lk` (`--api-key`, `--api-secret`,
//! `--room`, `--identity`, `--dev`). This module owns validation and never prints a token or a
//! secret: [`Config`]'s `Debug` redacts them.

use std::ffi::OsString;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use gstreamer_publisher::error::{Error, Result};
use gstreamer_publisher::media::TrackOption;
use gstreamer_publisher::normalise_url;

mod credentials;
#[cfg(test)]
mod tests;

use credentials::credentials;
pub use gstreamer_publisher::Credentials;

const DEV_URL: &str = "ws://127.0.0.1:7880";
const DEV_API_KEY: &str = "devkey";
const DEV_API_SECRET: &str = "secret";
const DEV_ROOM: &str = "dev";
/// Identity used when we mint the token and the user gave none.
pub const DEFAULT_IDENTITY: &str = "gstreamer-publisher";

#[derive(Parser)]
#[command(
    name = "gstreamer-publisher",
    version,
    about = "Publish the encoded outputs of a GStreamer pipeline into a LiveKit room",
    override_usage = "gstreamer-publisher [OPTIONS] -- <gst-launch pipeline>",
    after_help = "Example:\n  gstreamer-publisher --dev -- videotestsrc is-live=true ! x264enc tune=zerolatency \
                  audiotestsrc is-live=true ! opusenc\n\nExit codes: 0 clean end, 1 runtime failure, 2 bad usage, \
                  3 pipeline cannot be published, 4 refused by the server, 5 connection lost, 6 removed by the server."
)]
struct Args {
    /// LiveKit server URL (ws://, wss://, http:// or https://). Repeat it (or give a comma
    /// list in LIVEKIT_URL) for several servers of one cluster: the first that answers is
    /// used, and a rejoin tries the others in turn.
    #[arg(
        long,
        env = "LIVEKIT_URL",
        default_value = "ws://localhost:7880",
        value_delimiter = ','
    )]
    url: Vec<String>,

    /// Access token with the canPublish grant (prefer the LIVEKIT_TOKEN env var: argv is visible to other users).
    #[arg(long, env = "LIVEKIT_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// API key, to mint a token locally (with --api-secret and --room).
    #[arg(long, env = "LIVEKIT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// API secret, to mint a token locally (prefer the LIVEKIT_API_SECRET env var).
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,

    /// Room to join when minting the token.
    #[arg(long, env = "LIVEKIT_ROOM")]
    room: Option<String>,

    /// Participant identity when minting the token [default: gstreamer-publisher].
    #[arg(long, env = "LIVEKIT_IDENTITY")]
    identity: Option<String>,

    /// Seconds to wait before publishing (the pipeline and the connection start at once).
    #[arg(long, value_name = "SECONDS")]
    delay: Option<f64>,

    /// Local dev server: ws://127.0.0.1:7880, key devkey, secret secret, room dev.
    #[arg(long)]
    dev: bool,

    /// Give up when the connection is lost and cannot be re-established within this many
    /// seconds (exit code 5).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    reconnect_timeout: f64,

    /// Give up on a connection attempt (TCP, TLS, WebSocket upgrade and the server's join
    /// response together) after this many seconds; the first attempt then exits with code 5,
    /// a reconnect attempt is retried.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    connect_timeout: f64,

    /// Trust this CA (PEM) for wss:// and turns: besides the system's roots: for a self-hosted
    /// server with its own certificate authority. `SSL_CERT_FILE` replaces the system roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,

    /// Send media only through the server's TURN relays (never a direct path), as the
    /// server's own `force_relay` setting does.
    #[arg(long)]
    force_relay: bool,

    /// The highest target bitrate of every video output (e.g. 2.5M); by default the bitrate
    /// set on its encoder. Per output: `--track SEL=max:…`.
    #[arg(long, value_name = "RATE")]
    max_bitrate: Option<String>,

    /// The lowest target bitrate of every video output (default 150k). Per output:
    /// `--track SEL=min:…`.
    #[arg(long, value_name = "RATE")]
    min_bitrate: Option<String>,

    /// Print a link to watch the stream (LiveKit's hosted meet page for this server), and the
    /// server URL with a subscribe-only token for any other client. Needs a minted token
    /// (--api-key/--api-secret or --dev).
    #[arg(long)]
    viewer_link: bool,

    /// How long the viewer token is valid, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600.0)]
    viewer_ttl: f64,

    /// Simulcast: `auto` builds ½ and ¼ size layers for every video output fed by a raw-video
    /// encoder; or name the outputs of one picture at decreasing sizes, highest first
    /// (`cam,cam_mid,cam_low`, selectors as in --track), to publish them as one track with
    /// layers. Repeatable.
    #[arg(long, value_name = "auto|HIGH,MID[,LOW]")]
    simulcast: Vec<String>,

    /// When the pipeline fails, or a live source ends, rebuild and restart it (with backoff,
    /// for up to --reconnect-timeout) while staying in the room; tracks that come back with
    /// the same codec are kept. For cameras and RTSP sources that drop out.
    #[arg(long)]
    restart_pipeline: bool,

    /// Print the pipeline's encoded outputs and exit without connecting.
    #[arg(long)]
    dry_run: bool,

    /// Name and source of an output's track, by element name (or element.pad):
    /// `--track cam=name:Camera,source:camera`. Sources: camera, microphone, screen_share,
    /// screen_share_audio. Repeatable. Default: named after the element, video is camera,
    /// audio is microphone.
    #[arg(long = "track", value_name = "ELEMENT=name:NAME,source:SOURCE")]
    tracks: Vec<String>,

    /// Write live statistics as one JSON object per interval to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    stats_json: Option<std::path::PathBuf>,

    /// Seconds between statistics reports (status line and --stats-json).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    stats_interval: f64,

    /// More logging (debug level). Tokens and secrets are never logged.
    #[arg(long, short)]
    verbose: bool,

    /// Log format on stderr: `text` (default) or `json` (one object per line, for journald
    /// and log shippers).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,

    /// Only errors on stderr.
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,

    /// The pipeline, in gst-launch syntax (words are joined with spaces).
    #[arg(trailing_var_arg = true, value_name = "PIPELINE")]
    pipeline: Vec<String>,
}

/// Validated settings for a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server base URL, normalised to ws:// or wss://, without a trailing slash.
    /// Server base URLs, normalised to ws:// or wss://, in the order given; at least one.
    pub urls: Vec<url::Url>,
    /// `None` only for `--dry-run`.
    pub credentials: Option<Credentials>,
    pub pipeline: String,
    pub delay: Duration,
    pub reconnect_timeout: Duration,
    pub connect_timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
    pub force_relay: bool,
    pub restart_pipeline: bool,
    /// `--simulcast auto`.
    pub simulcast_auto: bool,
    /// Explicit `--simulcast` groups: output selectors, highest first.
    pub simulcast: Vec<Vec<String>>,
    pub min_bitrate: Option<u64>,
    pub max_bitrate: Option<u64>,
    /// `--viewer-link` with its token's lifetime.
    pub viewer_link: Option<Duration>,
    pub tracks: Vec<TrackOption>,
    pub stats_json: Option<std::path::PathBuf>,
    pub stats_interval: Duration,
    pub dry_run: bool,
    pub verbose: bool,
    /// `--log-format json`.
    pub log_json: bool,
    pub quiet: bool,
}

/// LiveKit's hosted page that joins any server with a URL and a token.
pub const MEET_URL: &str = "https://meet.livekit.io/custom";

impl Config {
    /// The first server URL.
    pub fn url(&self) -> &url::Url {
        &self.urls[0]
    }

    /// The lines `--viewer-link` prints: the meet page link, and the URL and token for any
    /// other client. `None` without `--viewer-link`.
    pub fn viewer_link(&self) -> Option<Result<String>> {
        let ttl = self.viewer_link?;
        let token = match self.credentials.as_ref()?.viewer_token(ttl)? {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let server = self.url().as_str().trim_end_matches('/');
        let link =
            url::Url::parse_with_params(MEET_URL, [("liveKitUrl", server), ("token", &token)])
                .map(|u| u.to_string())
                .unwrap_or_default();
        Some(Ok(format!(
            "viewer link: {link}\nviewer url: {server}\nviewer token: {token}\n(the token may only subscribe; it expires in {} s)\n",
            ttl.as_secs()
        )))
    }

    /// The secrets of this run (a token given by the user, or the API secret), for the
    /// [`Redactor`](gstreamer_publisher::redact::Redactor) that guards everything printed.
    pub fn secrets(&self) -> Vec<String> {
        match &self.credentials {
            Some(Credentials::Token(t)) => vec![t.clone()],
            Some(Credentials::Mint { api_secret, .. }) => vec![api_secret.clone()],
            None => Vec::new(),
        }
    }
}

/// What `parse` decided: run, or print something (help, version) and exit 0.
#[allow(clippy::large_enum_variant)] // one value per event, never stored in bulk
pub enum Parsed {
    Run(Config),
    Print(String),
}

/// Parse the process's arguments.
pub fn parse_args() -> Result<Parsed> {
    parse_from(std::env::args_os())
}

/// Parse from an explicit argument list (first item is the program name).
pub fn parse_from<I, T>(args: I) -> Result<Parsed>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = match Args::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    Ok(Parsed::Print(e.render().to_string()))
                }
                _ => Err(Error::Usage(format!(
                    "{} (see --help)",
                    first_line_of_clap_error(&e)
                ))),
            };
        }
    };
    // Cannot fail: the matches come from this very `Args` command.
    let args =
        Args::from_arg_matches(&matches).map_err(|e| Error::Usage(first_line_of_clap_error(&e)))?;
    validate(args, &matches).map(Parsed::Run)
}

fn first_line_of_clap_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid arguments");
    line.trim_start_matches("error: ").trim().to_string()
}

fn typed(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

/// `value` seconds as a duration, or a usage error naming `flag` and the range.
fn seconds(flag: &str, value: f64, min: f64, max: f64) -> Result<Duration> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Error::Usage(format!(
            "{flag} {value} is not a number of seconds between {min} and {max}"
        )))
    }
}

/// The `--url`s (or the dev server's), normalised, without repeats; at least one.
fn urls(args: &Args, matches: &ArgMatches) -> Result<Vec<url::Url>> {
    let texts = if args.dev && !typed(matches, "url") {
        vec![DEV_URL.to_string()]
    } else {
        args.url.clone()
    };
    let mut urls = Vec::new();
    for text in texts.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let url = normalise_url(text)?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        return Err(Error::Usage(
            "--url is empty; give the server's URL, e.g. wss://my-project.livekit.cloud".into(),
        ));
    }
    Ok(urls)
}

/// `--simulcast` values: whether `auto` was given, and the explicit groups of 2 or 3
/// selectors.
fn simulcast(values: &[String]) -> Result<(bool, Vec<Vec<String>>)> {
    let mut auto = false;
    let mut groups = Vec::new();
    for text in values {
        if text.trim() == "auto" {
            auto = true;
            continue;
        }
        let selectors: Vec<String> = text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if selectors.len() < 2 || selectors.len() > 3 {
            return Err(Error::Usage(format!(
                "--simulcast {}: give 2 or 3 outputs, highest first (e.g. `--simulcast cam,cam_mid,cam_low`), or `auto`",
                gstreamer_publisher::error::excerpt(text, 80)
            )));
        }
        groups.push(selectors);
    }
    Ok((auto, groups))
}

fn validate(args: Args, matches: &ArgMatches) -> Result<Config> {
    let pipeline = args.pipeline.join(" ").trim().to_string();
    if pipeline.is_empty() {
        return Err(Error::Usage(
            "no pipeline given; put it after `--`, e.g. `-- videotestsrc is-live=true ! x264enc tune=zerolatency`".into(),
        ));
    }

    let urls = urls(&args, matches)?;
    let delay = match args.delay {
        None => Duration::ZERO,
        Some(d) => seconds("--delay", d, 0.0, 86_400.0)?,
    };
    let reconnect_timeout = seconds("--reconnect-timeout", args.reconnect_timeout, 0.0, 86_400.0)?;
    let connect_timeout = seconds("--connect-timeout", args.connect_timeout, 0.5, 600.0)?;
    let stats_interval = seconds("--stats-interval", args.stats_interval, 0.1, 3600.0)?;
    let tracks = args
        .tracks
        .iter()
        .map(|t| TrackOption::parse(t).map_err(Error::Usage))
        .collect::<Result<Vec<_>>>()?;
    let bitrate = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| {
                gstreamer_publisher::media::parse_bitrate(t)
                    .map_err(|e| Error::Usage(format!("{flag}: {e}")))
            })
            .transpose()
    };
    let min_bitrate = bitrate("--min-bitrate", &args.min_bitrate)?;
    let max_bitrate = bitrate("--max-bitrate", &args.max_bitrate)?;
    if let (Some(min), Some(max)) = (min_bitrate, max_bitrate) {
        if min > max {
            return Err(Error::Usage("--min-bitrate is above --max-bitrate".into()));
        }
    }
    let viewer_link = if args.viewer_link {
        Some(seconds(
            "--viewer-ttl",
            args.viewer_ttl,
            60.0,
            86_400.0 * 30.0,
        )?)
    } else {
        None
    };
    let (simulcast_auto, simulcast) = simulcast(&args.simulcast)?;
    let credentials = credentials(&args, matches)?;
    if viewer_link.is_some() && matches!(credentials, Some(Credentials::Token(_))) {
        return Err(Error::Usage(
            "--viewer-link needs --api-key/--api-secret (or --dev) to mint the viewer's token; a given token cannot be turned into one".into(),
        ));
    }
    if credentials.is_none() && !args.dry_run {
        return Err(Error::Usage(
            "no credentials: pass --token (or set LIVEKIT_TOKEN), or --api-key and --api-secret with --room, \
             or --dev for a local dev server"
                .into(),
        ));
    }

    Ok(Config {
        urls,
        credentials,
        pipeline,
        delay,
        reconnect_timeout,
        connect_timeout,
        ca_file: args.ca_file.clone(),
        force_relay: args.force_relay,
        restart_pipeline: args.restart_pipeline,
        simulcast_auto,
        simulcast,
        min_bitrate,
        max_bitrate,
        viewer_link,
        tracks,
        stats_json: args.stats_json.clone(),
        stats_interval,
        dry_run: args.dry_run,
        verbose: args.verbose,
        log_json: args.log_format == "json",
        quiet: args.quiet,
    })
}

//! The command line: flags, environment variables, and their validation into a [`Config`].
//!
//! Flags follow the Go `gstreamer-publisher` (`--url`, `--token`, `--delay`, `--verbose`, the
//! pipeline after `--`) plus what LiveKit users know from `lk` (`--api-key`, `--api-secret`,
//! `--room`, `--identity`, `--dev`). This module owns validation and never prints a token or a
//! secret: [`Config`]'s `Debug` redacts them.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use crate::error::{Error, Result};

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
    /// LiveKit server URL (ws://, wss://, http:// or https://).
    #[arg(long, env = "LIVEKIT_URL", default_value = "ws://localhost:7880")]
    url: String,

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

    /// Only errors on stderr.
    #[arg(long, short, conflicts_with = "verbose")]
    quiet: bool,

    /// The pipeline, in gst-launch syntax (words are joined with spaces).
    #[arg(trailing_var_arg = true, value_name = "PIPELINE")]
    pipeline: Vec<String>,
}

/// How we authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A token given by the user.
    Token(String),
    /// Mint one locally for every (re)connect.
    Mint {
        api_key: String,
        api_secret: String,
        room: String,
        identity: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
            Credentials::Mint { api_key, room, identity, .. } => write!(
                f,
                "Mint {{ api_key: {api_key:?}, api_secret: <redacted>, room: {room:?}, identity: {identity:?} }}"
            ),
        }
    }
}

impl Credentials {
    /// The access token to present to the server.
    pub fn token(&self) -> Result<String> {
        match self {
            Credentials::Token(t) => Ok(t.clone()),
            Credentials::Mint {
                api_key,
                api_secret,
                room,
                identity,
            } => {
                let grants = livekit_token::VideoGrants {
                    room_join: true,
                    room: room.clone(),
                    can_publish: Some(true),
                    // A publisher does not need to receive media; this also spares the server
                    // the subscriber connection.
                    can_subscribe: Some(false),
                    can_publish_data: Some(true),
                    ..Default::default()
                };
                livekit_token::AccessToken::with_api_key(api_key, api_secret)
                    .with_identity(identity)
                    .with_name(identity)
                    .with_ttl(Duration::from_secs(6 * 3600))
                    .with_grants(grants)
                    .to_jwt()
                    .map_err(|e| {
                        Error::Usage(format!(
                            "cannot mint a token from --api-key/--api-secret: {e}"
                        ))
                    })
            }
        }
    }
}

/// Validated settings for a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server base URL, normalised to ws:// or wss://, without a trailing slash.
    pub url: url::Url,
    /// `None` only for `--dry-run`.
    pub credentials: Option<Credentials>,
    pub pipeline: String,
    pub delay: Duration,
    pub reconnect_timeout: Duration,
    pub tracks: Vec<crate::media::TrackSpec>,
    pub stats_json: Option<std::path::PathBuf>,
    pub stats_interval: Duration,
    pub dry_run: bool,
    pub verbose: bool,
    pub quiet: bool,
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

fn validate(args: Args, matches: &ArgMatches) -> Result<Config> {
    let pipeline = args.pipeline.join(" ").trim().to_string();
    if pipeline.is_empty() {
        return Err(Error::Usage(
            "no pipeline given; put it after `--`, e.g. `-- videotestsrc is-live=true ! x264enc tune=zerolatency`".into(),
        ));
    }

    let url_text = if args.dev && !typed(matches, "url") {
        DEV_URL.to_string()
    } else {
        args.url.clone()
    };
    let url = normalise_url(&url_text)?;

    let delay = match args.delay {
        None => Duration::ZERO,
        Some(d) if d.is_finite() && (0.0..=86_400.0).contains(&d) => Duration::from_secs_f64(d),
        Some(d) => {
            return Err(Error::Usage(format!(
                "--delay {d} is not a number of seconds between 0 and 86400"
            )))
        }
    };

    let reconnect_timeout = match args.reconnect_timeout {
        d if d.is_finite() && (0.0..=86_400.0).contains(&d) => Duration::from_secs_f64(d),
        d => {
            return Err(Error::Usage(format!(
                "--reconnect-timeout {d} is not a number of seconds between 0 and 86400"
            )))
        }
    };
    let stats_interval = match args.stats_interval {
        d if d.is_finite() && (0.1..=3600.0).contains(&d) => Duration::from_secs_f64(d),
        d => {
            return Err(Error::Usage(format!(
                "--stats-interval {d} is not a number of seconds between 0.1 and 3600"
            )))
        }
    };
    let tracks = args
        .tracks
        .iter()
        .map(|t| crate::media::TrackSpec::parse(t).map_err(Error::Usage))
        .collect::<Result<Vec<_>>>()?;
    let credentials = credentials(&args, matches)?;
    if credentials.is_none() && !args.dry_run {
        return Err(Error::Usage(
            "no credentials: pass --token (or set LIVEKIT_TOKEN), or --api-key and --api-secret with --room, \
             or --dev for a local dev server"
                .into(),
        ));
    }

    Ok(Config {
        url,
        credentials,
        pipeline,
        delay,
        reconnect_timeout,
        tracks,
        stats_json: args.stats_json.clone(),
        stats_interval,
        dry_run: args.dry_run,
        verbose: args.verbose,
        quiet: args.quiet,
    })
}

fn credentials(args: &Args, matches: &ArgMatches) -> Result<Option<Credentials>> {
    let non_empty = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
    let token = non_empty(&args.token);
    let key = non_empty(&args.api_key);
    let secret = non_empty(&args.api_secret);

    if args.token.is_some() && token.is_none() {
        return Err(Error::Usage(
            "--token is empty; pass a LiveKit access token".into(),
        ));
    }
    // Both typed on the command line: the user asked for two different things.
    if typed(matches, "token") && (typed(matches, "api_key") || typed(matches, "api_secret")) {
        return Err(Error::Usage(
            "give either --token or --api-key/--api-secret, not both".into(),
        ));
    }
    if let Some(t) = token {
        // A token from the command line, or from LIVEKIT_TOKEN when no key was typed.
        if !(typed(matches, "api_key") || typed(matches, "api_secret")) {
            return Ok(Some(Credentials::Token(t)));
        }
    }

    let (key, secret) = match (key, secret, args.dev) {
        (Some(k), Some(s), _) => (k, s),
        (None, None, true) => (DEV_API_KEY.to_string(), DEV_API_SECRET.to_string()),
        (Some(_), None, _) => {
            return Err(Error::Usage(
                "--api-key needs --api-secret (or LIVEKIT_API_SECRET) to mint a token".into(),
            ))
        }
        (None, Some(_), _) => {
            return Err(Error::Usage(
                "--api-secret needs --api-key (or LIVEKIT_API_KEY) to mint a token".into(),
            ))
        }
        (None, None, false) => {
            if args.room.is_some() && typed(matches, "room") {
                return Err(Error::Usage(
                    "--room needs --api-key and --api-secret to mint a token (a --token carries its own room)".into(),
                ));
            }
            return Ok(None);
        }
    };
    let room = match non_empty(&args.room) {
        Some(r) => r,
        None if args.dev => DEV_ROOM.to_string(),
        None => {
            return Err(Error::Usage(
                "--room is required with --api-key/--api-secret".into(),
            ))
        }
    };
    let identity = non_empty(&args.identity).unwrap_or_else(|| DEFAULT_IDENTITY.to_string());
    Ok(Some(Credentials::Mint {
        api_key: key,
        api_secret: secret,
        room,
        identity,
    }))
}

/// Accept ws://, wss://, http:// and https:// (as the LiveKit SDKs do) and return a ws(s) URL.
pub fn normalise_url(text: &str) -> Result<url::Url> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "malformed --url '{}': {why}; expected e.g. wss://my-project.livekit.cloud or ws://127.0.0.1:7880",
            redact_url(text)
        ))
    };
    let mut url = url::Url::parse(text.trim()).map_err(|e| bad(&e.to_string()))?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => return Err(bad(&format!("unsupported scheme '{other}'"))),
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    // Cannot fail: switching between these special schemes is always allowed.
    url.set_scheme(scheme)
        .map_err(|_| bad("cannot use this scheme"))?;
    url.set_query(None);
    url.set_fragment(None);
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not supported; use --token or --api-key/--api-secret",
        ));
    }
    Ok(url)
}

/// Keep a URL printable: drop userinfo and query (where a token could hide).
fn redact_url(text: &str) -> String {
    let no_query = text.split(['?', '#']).next().unwrap_or("");
    match no_query.find("://") {
        Some(i) => {
            let (scheme, rest) = no_query.split_at(i + 3);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}{rest}")
        }
        None => no_query.chars().take(80).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config> {
        let mut v = vec!["gstreamer-publisher"];
        v.extend_from_slice(args);
        match parse_from(v)? {
            Parsed::Run(c) => Ok(c),
            Parsed::Print(_) => panic!("unexpected help"),
        }
    }

    #[test]
    fn go_style_flags_and_pipeline_after_dashes() {
        let c = run(&[
            "--url",
            "https://example.test",
            "--token",
            "abc",
            "--delay",
            "2",
            "--",
            "videotestsrc",
            "!",
            "x264enc",
        ])
        .unwrap();
        assert_eq!(c.url.as_str(), "wss://example.test/");
        assert_eq!(c.pipeline, "videotestsrc ! x264enc");
        assert_eq!(c.delay, Duration::from_secs(2));
        assert_eq!(c.credentials, Some(Credentials::Token("abc".into())));
    }

    #[test]
    fn dev_mints_a_token_for_the_dev_room() {
        let c = run(&["--dev", "--", "videotestsrc", "!", "vp8enc"]).unwrap();
        assert_eq!(c.url.as_str(), "ws://127.0.0.1:7880/");
        match c.credentials.unwrap() {
            Credentials::Mint {
                api_key,
                room,
                identity,
                ..
            } => {
                assert_eq!(
                    (api_key.as_str(), room.as_str(), identity.as_str()),
                    ("devkey", "dev", DEFAULT_IDENTITY)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn api_key_without_secret_is_a_usage_error() {
        let e = run(&["--api-key", "k", "--room", "r", "--", "videotestsrc"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--api-secret"), "{e}");
    }

    #[test]
    fn malformed_url_is_a_usage_error_without_the_query() {
        let e = run(&[
            "--url",
            "ftp://host?access_token=SECRET",
            "--token",
            "t",
            "--",
            "x",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(!e.to_string().contains("SECRET"), "{e}");
        let e = run(&["--url", "not a url", "--token", "t", "--", "x"]).unwrap_err();
        assert!(e.to_string().starts_with("malformed --url"), "{e}");
    }

    #[test]
    fn missing_credentials_and_missing_pipeline() {
        let e = run(&["--url", "ws://h", "--", "videotestsrc"]).unwrap_err();
        assert!(e.to_string().starts_with("no credentials"), "{e}");
        let e = run(&["--token", "t"]).unwrap_err();
        assert!(e.to_string().starts_with("no pipeline"), "{e}");
    }

    #[test]
    fn dry_run_needs_no_credentials() {
        let c = run(&["--dry-run", "--", "videotestsrc", "!", "x264enc"]).unwrap();
        assert!(c.credentials.is_none());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = run(&[
            "--api-key",
            "k",
            "--api-secret",
            "SUPERSECRET",
            "--room",
            "r",
            "--",
            "x",
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("SUPERSECRET"));
        let c = run(&["--token", "TOKENVALUE", "--", "x"]).unwrap();
        assert!(!format!("{c:?}").contains("TOKENVALUE"));
    }

    #[test]
    fn minted_token_carries_room_and_identity() {
        let creds = Credentials::Mint {
            api_key: "k".into(),
            api_secret: "s".into(),
            room: "r1".into(),
            identity: "cam".into(),
        };
        let jwt = creds.token().unwrap();
        let claims = livekit_token::Claims::from_unverified(&jwt).unwrap();
        assert_eq!(claims.sub, "cam");
        assert_eq!(claims.video.room, "r1");
        assert_eq!(claims.video.can_publish, Some(true));
    }
}

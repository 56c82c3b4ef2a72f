//! The element's properties: what they are (with their documentation for gst-inspect-1.0),
//! their values, and the publisher options they make.

use std::sync::LazyLock;
use std::time::Duration;

use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_publisher::error::Error;
use gstreamer_publisher::redact::Redactor;
use gstreamer_publisher::{normalise_url, CredentialParts, MissingCredential, Options};

const DEFAULT_CONNECT_TIMEOUT: u32 = 10;
const DEFAULT_RECONNECT_TIMEOUT: u32 = 60;
const DEFAULT_STATS_INTERVAL: u32 = 2000;
#[derive(Debug, Clone)]
pub(super) struct Settings {
    url: Option<String>,
    token: Option<String>,
    api_key: Option<String>,
    api_secret: Option<String>,
    room: Option<String>,
    identity: Option<String>,
    connect_timeout: u32,
    reconnect_timeout: u32,
    stats_interval: u32,
    ca_file: Option<String>,
    force_relay: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            url: None,
            token: None,
            api_key: None,
            api_secret: None,
            room: None,
            identity: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
            stats_interval: DEFAULT_STATS_INTERVAL,
            ca_file: None,
            force_relay: false,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// The publisher's options, and a redactor for this element's secrets. A property wins
    /// over the environment; the token, key and secret come from the properties when any of
    /// `token`, `api-key`, `api-secret` is set, from `LIVEKIT_TOKEN` / `LIVEKIT_API_KEY` +
    /// `LIVEKIT_API_SECRET` otherwise (see `CredentialParts::or`).
    pub(super) fn options(&self) -> Result<(Options, Redactor), Error> {
        let url = self
            .url
            .clone()
            .or_else(|| env("LIVEKIT_URL"))
            .ok_or_else(|| {
                Error::Usage("no server URL: set the url property (or LIVEKIT_URL)".into())
            })?;
        let urls = url
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(|u| normalise_url(u.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let parts = CredentialParts {
            token: self.token.clone(),
            api_key: self.api_key.clone(),
            api_secret: self.api_secret.clone(),
            room: self.room.clone(),
            identity: self.identity.clone(),
        }
        .or(CredentialParts::from_env());
        let redactor = Redactor::new(parts.token.iter().chain(&parts.api_secret).cloned());
        let credentials = parts.credentials().map_err(|missing| {
            Error::Usage(match missing {
                MissingCredential::Everything => "no credentials: set token, or api-key, api-secret, room and identity (or LIVEKIT_TOKEN, or LIVEKIT_API_KEY and LIVEKIT_API_SECRET)",
                MissingCredential::ApiSecret => "api-key needs api-secret (or LIVEKIT_API_SECRET) to mint a token",
                MissingCredential::ApiKey => "api-secret needs api-key (or LIVEKIT_API_KEY) to mint a token",
                MissingCredential::Room | MissingCredential::Identity => "api-key and api-secret need room and identity (or LIVEKIT_ROOM and LIVEKIT_IDENTITY) to mint a token",
            }.into())
        })?;
        let options = Options {
            connect_timeout: Duration::from_secs(self.connect_timeout.into()),
            reconnect_timeout: Duration::from_secs(self.reconnect_timeout.into()),
            stats_interval: Duration::from_millis(self.stats_interval.into()),
            ca_file: self.ca_file.clone().map(Into::into),
            force_relay: self.force_relay,
            ..Options::with_credentials(urls, credentials)
        };
        Ok((options, redactor))
    }

    pub(super) fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let string = |name: &str, nick: &str, blurb: &str, readable: bool| {
                let b = glib::ParamSpecString::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .mutable_ready();
                if readable {
                    b.build()
                } else {
                    b.write_only().build()
                }
            };
            vec![
                string(
                    "url",
                    "Server URL",
                    "LiveKit server URL (ws://, wss://, http://, https://); several, separated by commas, are tried in turn. Default: $LIVEKIT_URL",
                    true,
                ),
                string(
                    "token",
                    "Access token",
                    "Access token with the canPublish grant (never printed). Default: $LIVEKIT_TOKEN, unless api-key/api-secret are set",
                    false,
                ),
                string(
                    "api-key",
                    "API key",
                    "API key to mint tokens with (with api-secret, room and identity); a minted token also serves rejoins. Default: $LIVEKIT_API_KEY",
                    true,
                ),
                string(
                    "api-secret",
                    "API secret",
                    "API secret to mint tokens with (never printed). Default: $LIVEKIT_API_SECRET",
                    false,
                ),
                string(
                    "room",
                    "Room",
                    "Room to join when minting a token. Default: $LIVEKIT_ROOM",
                    true,
                ),
                string(
                    "identity",
                    "Identity",
                    "Participant identity when minting a token. Default: $LIVEKIT_IDENTITY",
                    true,
                ),
                glib::ParamSpecUInt::builder("connect-timeout")
                    .nick("Connect timeout")
                    .blurb("Seconds each connection attempt (TCP, TLS, WebSocket, join) may take")
                    .minimum(1)
                    .maximum(3600)
                    .default_value(DEFAULT_CONNECT_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("reconnect-timeout")
                    .nick("Reconnect timeout")
                    .blurb("Seconds to keep trying to get a lost connection back before failing with an error")
                    .minimum(1)
                    .maximum(7 * 24 * 3600)
                    .default_value(DEFAULT_RECONNECT_TIMEOUT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Statistics interval")
                    .blurb("Milliseconds between two livekit-stats element messages")
                    .minimum(100)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_STATS_INTERVAL)
                    .mutable_ready()
                    .build(),
                string(
                    "ca-file",
                    "CA file",
                    "A CA certificate (PEM) to trust besides the system's, for wss:// and turns:",
                    true,
                ),
                glib::ParamSpecBoolean::builder("force-relay")
                    .nick("Force relay")
                    .blurb("Send media only through the server's TURN relays")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    pub(super) fn set(&mut self, value: &glib::Value, pspec: &glib::ParamSpec) {
        let s = self;
        let text = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|v| !v.trim().is_empty())
        };
        match pspec.name() {
            "url" => s.url = text(),
            "token" => s.token = text(),
            "api-key" => s.api_key = text(),
            "api-secret" => s.api_secret = text(),
            "room" => s.room = text(),
            "identity" => s.identity = text(),
            "connect-timeout" => s.connect_timeout = value.get().expect("type checked upstream"),
            "reconnect-timeout" => {
                s.reconnect_timeout = value.get().expect("type checked upstream")
            }
            "stats-interval" => s.stats_interval = value.get().expect("type checked upstream"),
            "ca-file" => s.ca_file = text(),
            "force-relay" => s.force_relay = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
    }

    pub(super) fn get(&self, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self;
        match pspec.name() {
            "url" => s.url.to_value(),
            // Write-only; never handed out.
            "token" | "api-secret" => None::<String>.to_value(),
            "api-key" => s.api_key.to_value(),
            "room" => s.room.to_value(),
            "identity" => s.identity.to_value(),
            "connect-timeout" => s.connect_timeout.to_value(),
            "reconnect-timeout" => s.reconnect_timeout.to_value(),
            "stats-interval" => s.stats_interval.to_value(),
            "ca-file" => s.ca_file.to_value(),
            "force-relay" => s.force_relay.to_value(),
            _ => unimplemented!(),
        }
    }
}

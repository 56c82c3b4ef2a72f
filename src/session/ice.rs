//! Which network paths the peer connections try: host UDP, ICE over TCP, and TURN relays
//! (over UDP, TCP or TLS), from what the server hands out (`JoinResponse.ice_servers`,
//! `ClientConfiguration.force_relay`) and what the user asks (`--force-relay`).
//!
//! All paths are gathered at once, so a blocked UDP path costs no extra round trip; ICE's own
//! priorities prefer host UDP, then host TCP, then a relay. A relay-only policy offers no host
//! candidate at all. New local candidates found after the offer (relay allocations) are
//! trickled to the server.

use livekit_protocol as proto;

use super::{Action, Pc, Session};

/// How a relay is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTransport {
    /// `turn:…?transport=udp`
    Udp,
    /// `turn:…?transport=tcp`
    Tcp,
    /// `turns:…` (TLS over TCP)
    Tls,
}

/// A TURN server with its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayServer {
    pub transport: RelayTransport,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub credential: String,
}

impl std::fmt::Debug for RelayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential is a secret: never in a log.
        write!(f, "RelayServer({})", self.describe())
    }
}

impl RelayServer {
    /// `turns:host:port` and the like, for logs.
    pub fn describe(&self) -> String {
        let (scheme, transport) = match self.transport {
            RelayTransport::Udp => ("turn", "udp"),
            RelayTransport::Tcp => ("turn", "tcp"),
            RelayTransport::Tls => ("turns", "tcp"),
        };
        format!("{scheme}:{}:{}?transport={transport}", self.host, self.port)
    }
}

/// The paths to gather.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcePolicy {
    /// Host candidates (UDP and ICE over TCP).
    pub host: bool,
    pub relays: Vec<RelayServer>,
}

impl Default for IcePolicy {
    fn default() -> Self {
        IcePolicy {
            host: true,
            relays: Vec::new(),
        }
    }
}

/// One ICE server URL as a relay: `turn:` / `turns:` with host, port and transport; `None`
/// for STUN (not needed: the server's own candidates are public to us) and for anything
/// unreadable.
pub fn parse_relay_url(url: &str, username: &str, credential: &str) -> Option<RelayServer> {
    let (scheme, rest) = url.split_once(':')?;
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    let transport_param = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("transport="))
        .map(str::to_ascii_lowercase);
    let transport = match (
        scheme.to_ascii_lowercase().as_str(),
        transport_param.as_deref(),
    ) {
        ("turn", None | Some("udp")) => RelayTransport::Udp,
        ("turn", Some("tcp")) => RelayTransport::Tcp,
        ("turns", None | Some("tcp")) => RelayTransport::Tls,
        _ => return None,
    };
    let default_port = if transport == RelayTransport::Tls {
        5349
    } else {
        3478
    };
    let (host, port) = match hostport.rsplit_once(':') {
        // An IPv6 literal without a port has colons but ends in ']'.
        Some((h, p)) if !p.ends_with(']') => (h, p.parse().ok()?),
        _ => (hostport, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some(RelayServer {
        transport,
        host: host.to_string(),
        port,
        username: username.to_string(),
        credential: credential.to_string(),
    })
}

/// The policy for what the server handed out.
pub fn policy(ice_servers: &[proto::IceServer], force_relay: bool) -> IcePolicy {
    let mut relays: Vec<RelayServer> = Vec::new();
    for server in ice_servers {
        for url in &server.urls {
            if let Some(r) = parse_relay_url(url, &server.username, &server.credential) {
                if !relays.contains(&r) {
                    relays.push(r);
                }
            }
        }
    }
    IcePolicy {
        host: !force_relay,
        relays,
    }
}

/// `ClientConfiguration.force_relay` is `ENABLED`.
pub(crate) fn server_forces_relay(config: Option<&proto::ClientConfiguration>) -> bool {
    config.is_some_and(|c| c.force_relay == proto::ClientConfigSetting::Enabled as i32)
}

/// The first `a=mid:` of an SDP: where our trickled candidates go.
pub(crate) fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .map(str::to_string)
}

impl Session {
    /// The server told us its ICE servers (join or resume): decide the paths.
    pub(super) fn configure_ice(
        &mut self,
        ice_servers: &[proto::IceServer],
        client_configuration: Option<&proto::ClientConfiguration>,
    ) {
        let forced = self.config.force_relay || server_forces_relay(client_configuration);
        let policy = policy(ice_servers, forced);
        if forced && policy.relays.is_empty() {
            tracing::warn!(
                "relay-only was asked for, but the server handed out no TURN server; offering host candidates"
            );
        }
        let policy = if forced && policy.relays.is_empty() {
            IcePolicy {
                host: true,
                ..policy
            }
        } else {
            policy
        };
        tracing::debug!(?policy, "ICE paths");
        self.actions.push_back(Action::ConfigureIce(policy));
    }

    /// A local candidate found after the offer (a relay allocation): trickle it.
    pub(super) fn on_local_candidate(&mut self, pc: Pc, candidate: String) {
        let mid = match pc {
            Pc::Publisher => self.remote.publisher_first_mid.clone(),
            Pc::Subscriber => self.remote.subscriber_first_mid.clone(),
        };
        let Some(mid) = mid else {
            tracing::debug!(
                ?pc,
                "a local candidate before any SDP; it is in the next one"
            );
            return;
        };
        let init = serde_json::json!({
            "candidate": candidate,
            "sdpMid": mid,
            "sdpMLineIndex": 0,
        });
        let target = match pc {
            Pc::Publisher => proto::SignalTarget::Publisher,
            Pc::Subscriber => proto::SignalTarget::Subscriber,
        };
        self.send(proto::signal_request::Message::Trickle(
            proto::TrickleRequest {
                candidate_init: init.to_string(),
                target: target as i32,
                r#final: false,
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(urls: &[&str]) -> proto::IceServer {
        proto::IceServer {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            username: "u".into(),
            credential: "s3cr3t-credential".into(),
        }
    }

    #[test]
    fn livekit_turn_urls_become_relays_and_stun_is_left_out() {
        let p = policy(
            &[
                server(&[
                    "turn:10.0.0.1:3478?transport=udp",
                    "turns:turn.example:443?transport=tcp",
                ]),
                server(&["stun:10.0.0.1:3478"]),
            ],
            false,
        );
        assert!(p.host);
        assert_eq!(p.relays.len(), 2);
        assert_eq!(
            (
                p.relays[0].transport,
                p.relays[0].host.as_str(),
                p.relays[0].port
            ),
            (RelayTransport::Udp, "10.0.0.1", 3478)
        );
        assert_eq!(
            (
                p.relays[1].transport,
                p.relays[1].host.as_str(),
                p.relays[1].port
            ),
            (RelayTransport::Tls, "turn.example", 443)
        );
        assert_eq!(
            parse_relay_url("turn:h?transport=tcp", "u", "c").map(|r| (r.transport, r.port)),
            Some((RelayTransport::Tcp, 3478))
        );
        assert_eq!(
            parse_relay_url("turns:[::1]", "u", "c").map(|r| r.port),
            Some(5349)
        );
        assert!(parse_relay_url("stun:h:1", "u", "c").is_none());
        assert!(
            !format!("{:?}", p.relays[0]).contains("s3cr3t"),
            "no credential in logs"
        );
    }

    #[test]
    fn forced_relay_offers_no_host_candidate() {
        let p = policy(&[server(&["turn:10.0.0.1:3478"])], true);
        assert!(!p.host);
        let forced = proto::ClientConfiguration {
            force_relay: proto::ClientConfigSetting::Enabled as i32,
            ..Default::default()
        };
        assert!(server_forces_relay(Some(&forced)));
        assert!(!server_forces_relay(Some(
            &proto::ClientConfiguration::default()
        )));
        assert!(!server_forces_relay(None));
    }

    #[test]
    fn trickled_candidates_go_to_the_first_mid() {
        assert_eq!(
            first_mid("v=0\r\nm=application 9\r\na=mid:0\r\nm=video\r\na=mid:1\r\n").as_deref(),
            Some("0")
        );
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}

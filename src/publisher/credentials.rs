//! Credentials: a token the user gave, or a key and secret to mint one for every connection;
//! and minting.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// How we authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A token given by the user.
    Token(String),
    /// Mint one locally for every (re)connect.
    Mint {
        /// The API key.
        api_key: String,
        /// The API secret (never logged).
        api_secret: String,
        /// The room the token lets join.
        room: String,
        /// The participant identity.
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

    /// A token for a viewer of the same room: it may only subscribe, and it expires after
    /// `ttl`. `None` when the user gave a token (we cannot mint without the secret).
    pub fn viewer_token(&self, ttl: Duration) -> Option<Result<String>> {
        let Credentials::Mint {
            api_key,
            api_secret,
            room,
            ..
        } = self
        else {
            return None;
        };
        let grants = livekit_token::VideoGrants {
            room_join: true,
            room: room.clone(),
            can_publish: Some(false),
            can_publish_data: Some(false),
            can_subscribe: Some(true),
            ..Default::default()
        };
        let identity = format!("viewer-{:06x}", rand::random::<u32>() & 0xff_ffff);
        Some(
            livekit_token::AccessToken::with_api_key(api_key, api_secret)
                .with_identity(&identity)
                .with_name("viewer")
                .with_ttl(ttl)
                .with_grants(grants)
                .to_jwt()
                .map_err(|e| Error::Usage(format!("cannot mint a viewer token: {e}"))),
        )
    }
}

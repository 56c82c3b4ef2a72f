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

/// The parts credentials are made of, as LiveKit's tools take them: a token, or an API key
/// and secret with a room and an identity to mint one. Every front-end (the command line, the
/// element's properties, a program's own settings) fills what it was given and takes the rest
/// from the environment with [`or`](Self::or) and [`from_env`](Self::from_env).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CredentialParts {
    /// An access token.
    pub token: Option<String>,
    /// An API key to mint tokens with.
    pub api_key: Option<String>,
    /// Its secret.
    pub api_secret: Option<String>,
    /// The room a minted token lets join.
    pub room: Option<String>,
    /// The participant identity of a minted token.
    pub identity: Option<String>,
}

impl fmt::Debug for CredentialParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given = |v: &Option<String>| if v.is_some() { "<given>" } else { "-" };
        write!(
            f,
            "CredentialParts {{ token: {}, api_key: {:?}, api_secret: {}, room: {:?}, identity: {:?} }}",
            given(&self.token),
            self.api_key,
            given(&self.api_secret),
            self.room,
            self.identity
        )
    }
}

/// What [`CredentialParts::credentials`] lacked, for the front-end to say in its own words
/// (flags, properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingCredential {
    /// No token, key or secret at all.
    Everything,
    /// A key without its secret.
    ApiSecret,
    /// A secret without its key.
    ApiKey,
    /// A key and secret, but no room to mint for.
    Room,
    /// A key and secret, but no identity to mint for.
    Identity,
}

impl CredentialParts {
    /// `LIVEKIT_TOKEN`, `LIVEKIT_API_KEY`, `LIVEKIT_API_SECRET`, `LIVEKIT_ROOM` and
    /// `LIVEKIT_IDENTITY`; a blank one counts as unset.
    pub fn from_env() -> CredentialParts {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        CredentialParts {
            token: var("LIVEKIT_TOKEN"),
            api_key: var("LIVEKIT_API_KEY"),
            api_secret: var("LIVEKIT_API_SECRET"),
            room: var("LIVEKIT_ROOM"),
            identity: var("LIVEKIT_IDENTITY"),
        }
    }

    /// These parts, with what they lack from `fallback`: the token, key and secret come
    /// together from here when any of them is given (a key from one place and its secret from
    /// another would be a surprise), else from `fallback`; the room and the identity each from
    /// here, else from `fallback`.
    pub fn or(self, fallback: CredentialParts) -> CredentialParts {
        let here = self.token.is_some() || self.api_key.is_some() || self.api_secret.is_some();
        let (token, api_key, api_secret) = if here {
            (self.token, self.api_key, self.api_secret)
        } else {
            (fallback.token, fallback.api_key, fallback.api_secret)
        };
        CredentialParts {
            token,
            api_key,
            api_secret,
            room: self.room.or(fallback.room),
            identity: self.identity.or(fallback.identity),
        }
    }

    /// A token if there is one, else a key and secret to mint with for the room and identity.
    pub fn credentials(self) -> std::result::Result<Credentials, MissingCredential> {
        if let Some(token) = self.token {
            return Ok(Credentials::Token(token));
        }
        let (api_key, api_secret) = match (self.api_key, self.api_secret) {
            (Some(k), Some(s)) => (k, s),
            (Some(_), None) => return Err(MissingCredential::ApiSecret),
            (None, Some(_)) => return Err(MissingCredential::ApiKey),
            (None, None) => return Err(MissingCredential::Everything),
        };
        let room = self.room.ok_or(MissingCredential::Room)?;
        let identity = self.identity.ok_or(MissingCredential::Identity)?;
        Ok(Credentials::Mint {
            api_key,
            api_secret,
            room,
            identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(token: &str, key: &str, secret: &str, room: &str, identity: &str) -> CredentialParts {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        CredentialParts {
            token: some(token),
            api_key: some(key),
            api_secret: some(secret),
            room: some(room),
            identity: some(identity),
        }
    }

    #[test]
    fn a_token_wins_else_a_key_and_secret_mint_for_the_room_and_identity() {
        assert_eq!(
            parts("t", "k", "s", "r", "i").credentials(),
            Ok(Credentials::Token("t".into()))
        );
        assert_eq!(
            parts("", "k", "s", "r", "i").credentials(),
            Ok(Credentials::Mint {
                api_key: "k".into(),
                api_secret: "s".into(),
                room: "r".into(),
                identity: "i".into()
            })
        );
        use MissingCredential::*;
        assert_eq!(parts("", "", "", "r", "i").credentials(), Err(Everything));
        assert_eq!(parts("", "k", "", "r", "i").credentials(), Err(ApiSecret));
        assert_eq!(parts("", "", "s", "r", "i").credentials(), Err(ApiKey));
        assert_eq!(parts("", "k", "s", "", "i").credentials(), Err(Room));
        assert_eq!(parts("", "k", "s", "r", "").credentials(), Err(Identity));
    }

    #[test]
    fn the_token_key_and_secret_come_from_one_place_room_and_identity_each_from_either() {
        let env = parts("env-token", "env-key", "env-secret", "env-room", "env-id");
        // A key given here: the environment's token and secret are not mixed in.
        let p = parts("", "key", "", "", "").or(env.clone());
        assert_eq!(p.credentials(), Err(MissingCredential::ApiSecret));
        // Nothing given here: all three from the environment.
        let p = parts("", "", "", "room", "").or(env.clone());
        assert_eq!(p.token.as_deref(), Some("env-token"));
        assert_eq!(p.room.as_deref(), Some("room"));
        assert_eq!(p.identity.as_deref(), Some("env-id"));
    }

    #[test]
    fn debug_never_shows_the_token_or_the_secret() {
        let text = format!("{:?}", parts("tok-123", "key", "sec-456", "r", "i"));
        assert!(
            !text.contains("tok-123") && !text.contains("sec-456"),
            "{text}"
        );
    }
}

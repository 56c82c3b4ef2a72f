//! Which credentials the flags and the environment ask for (clap reads the environment into
//! the flags; the library's `CredentialParts` decides).

use clap::ArgMatches;
use gstreamer_publisher::error::{Error, Result};
use gstreamer_publisher::{CredentialParts, Credentials, MissingCredential};

use super::{typed, Args, DEFAULT_IDENTITY, DEV_API_KEY, DEV_API_SECRET, DEV_ROOM};

pub(super) fn credentials(args: &Args, matches: &ArgMatches) -> Result<Option<Credentials>> {
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
    // A key or secret typed on the command line beats a token from the environment.
    let token = token.filter(|_| !(typed(matches, "api_key") || typed(matches, "api_secret")));
    let (api_key, api_secret) = match (key, secret) {
        (None, None) if args.dev => (
            Some(DEV_API_KEY.to_string()),
            Some(DEV_API_SECRET.to_string()),
        ),
        given => given,
    };
    let parts = CredentialParts {
        token,
        api_key,
        api_secret,
        room: non_empty(&args.room).or_else(|| args.dev.then(|| DEV_ROOM.to_string())),
        identity: Some(non_empty(&args.identity).unwrap_or_else(|| DEFAULT_IDENTITY.to_string())),
    };
    match parts.credentials() {
        Ok(c) => Ok(Some(c)),
        Err(MissingCredential::Everything) if args.room.is_some() && typed(matches, "room") => {
            Err(Error::Usage(
                "--room needs --api-key and --api-secret to mint a token (a --token carries its own room)".into(),
            ))
        }
        Err(MissingCredential::Everything) => Ok(None),
        Err(MissingCredential::ApiSecret) => Err(Error::Usage(
            "--api-key needs --api-secret (or LIVEKIT_API_SECRET) to mint a token".into(),
        )),
        Err(MissingCredential::ApiKey) => Err(Error::Usage(
            "--api-secret needs --api-key (or LIVEKIT_API_KEY) to mint a token".into(),
        )),
        Err(MissingCredential::Room | MissingCredential::Identity) => Err(Error::Usage(
            "--room is required with --api-key/--api-secret".into(),
        )),
    }
}

//! Which credentials the flags and the environment ask for.

use clap::ArgMatches;
use gstreamer_publisher::error::{Error, Result};
use gstreamer_publisher::Credentials;

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

//! Server URLs as users write them.

use crate::error::{Error, Result};

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

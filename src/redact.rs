//! Keeping secrets out of everything we print: tokens, API secrets, and text the server sends.
//!
//! LiveKit's server echoes a refused token's header and claims in its 401 body, and any text
//! from the network (HTTP bodies, close reasons, request errors) may carry one. [`tokens`]
//! masks every JWT-shaped run of text; a [`Redactor`] also masks the exact secrets of this
//! run (the token and the API secret the user gave). The drivers apply [`tokens`] to server
//! text where it enters; the binary passes every log line and every error it prints through a
//! [`Redactor`] as a last line of defence.

use std::borrow::Cow;

/// What a masked secret is replaced with.
pub const MASK: &str = "<redacted>";

/// Masks every JWT-shaped run: `eyJ` (base64url of `{"`, how every JWT header starts)
/// followed by base64url characters and dots. A token cut short (as the server's 401 body
/// does) is masked as well.
pub fn tokens(text: &str) -> Cow<'_, str> {
    if !text.contains("eyJ") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("eyJ") {
        out.push_str(&rest[..at]);
        let run = &rest[at..];
        let len = run
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(run.len());
        out.push_str(MASK);
        rest = &run[len..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Shortest secret a [`Redactor`] masks by value.
pub const MIN_SECRET_LEN: usize = 8;

/// Masks JWT-shaped text and the exact secrets it was given.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for these secrets. Secrets shorter than [`MIN_SECRET_LEN`] are not matched
    /// as text (the dev server's well-known `secret` would mask words such as
    /// `--api-secret`); nothing of ours prints them in the first place.
    pub fn new<I, S>(secrets: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret and JWT-shaped run masked.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = tokens(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shaped_text_is_masked_even_when_cut_short() {
        let body = "invalid token: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDAwMDAwMDAsImlzcyI6ImRldmtleSJ9.abc-_x, error: signature is invalid";
        let r = tokens(body);
        assert_eq!(r, "invalid token: <redacted>, error: signature is invalid");
        assert_eq!(tokens("cut: eyJhbGciOiJIUzI1NiIs…"), "cut: <redacted>…");
        assert!(matches!(tokens("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn exact_secrets_are_masked_longest_first() {
        let r = Redactor::new(["s3cr3t-value", "s3cr3t-value-long", "secret", ""]);
        assert_eq!(
            r.redact("a s3cr3t-value-long and s3cr3t-value, --api-secret"),
            "a <redacted> and <redacted>, --api-secret"
        );
        assert_eq!(r.redact("plain"), "plain");
    }
}

//! Flags, environment and validation, without running anything.

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
    assert_eq!(c.url().as_str(), "wss://example.test/");
    assert_eq!(c.pipeline, "videotestsrc ! x264enc");
    assert_eq!(c.delay, Duration::from_secs(2));
    assert_eq!(c.credentials, Some(Credentials::Token("abc".into())));
}

#[test]
fn dev_mints_a_token_for_the_dev_room() {
    let c = run(&["--dev", "--", "videotestsrc", "!", "vp8enc"]).unwrap();
    assert_eq!(c.url().as_str(), "ws://127.0.0.1:7880/");
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

#[test]
fn several_urls_from_flags_or_a_comma_list_in_the_environment() {
    let c = run(&[
        "--url",
        "wss://a.test",
        "--url",
        "https://b.test/",
        "--token",
        "t",
        "--",
        "x",
    ])
    .unwrap();
    let urls: Vec<&str> = c.urls.iter().map(|u| u.as_str()).collect();
    assert_eq!(urls, vec!["wss://a.test/", "wss://b.test/"]);
    let c = run(&[
        "--url",
        "ws://a.test:7880,ws://b.test:7880",
        "--token",
        "t",
        "--",
        "x",
    ])
    .unwrap();
    assert_eq!(c.urls.len(), 2);
    let e = run(&["--url", "ws://a.test,ftp://b", "--token", "t", "--", "x"]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

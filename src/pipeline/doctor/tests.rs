//! The doctor's checks on their pure parts; tests/doctor.rs runs them on real pipelines.

use super::*;

fn stamp(pts: u64, dts: u64) -> Stamp {
    Stamp {
        pts: Some(pts),
        dts: Some(dts),
    }
}

#[test]
fn reordering_is_an_early_dts_or_a_pts_going_back() {
    assert!(!reorders(&[]));
    assert!(!reorders(&[stamp(0, 0), stamp(33, 33), stamp(66, 66)]));
    // x264enc bframes=2: the first buffer's DTS is one frame before its PTS.
    assert!(reorders(&[stamp(1_000, 933)]));
    assert!(reorders(&[
        Stamp {
            pts: Some(0),
            dts: None
        },
        Stamp {
            pts: Some(100),
            dts: None
        },
        Stamp {
            pts: Some(33),
            dts: None
        },
    ]));
    // No timestamps at all: nothing to say.
    assert!(!reorders(&[Stamp::default(), Stamp::default()]));
}

#[test]
fn raw_formats_browsers_decode() {
    for ok in ["I420", "NV12", "YV12"] {
        assert_eq!(raw_format_problem(ok, Codec::Vp9), None, "{ok}");
    }
    assert_eq!(
        raw_format_problem("Y444", Codec::Vp9).as_deref(),
        Some("4:4:4")
    );
    assert_eq!(
        raw_format_problem("Y42B", Codec::H264).as_deref(),
        Some("4:2:2")
    );
    assert_eq!(
        raw_format_problem("I420_10LE", Codec::H264).as_deref(),
        Some("10-bit 4:2:0")
    );
    assert_eq!(raw_format_problem("I420_10LE", Codec::Av1), None);
    assert_eq!(
        raw_format_problem("Y444_12LE", Codec::Vp9).as_deref(),
        Some("12-bit 4:4:4")
    );
    assert_eq!(
        raw_format_problem("Y444", Codec::Av1).as_deref(),
        Some("4:4:4")
    );
    assert_eq!(
        raw_format_problem("BGRx", Codec::H264).as_deref(),
        Some("RGB")
    );
    assert!(raw_format_problem("GRAY8", Codec::H264).is_some());
    assert_eq!(raw_format_problem("not-a-format", Codec::H264), None);
}

#[test]
fn browser_profiles() {
    assert!(browser_profile(Codec::H264, "constrained-baseline"));
    assert!(browser_profile(Codec::H264, "high"));
    assert!(!browser_profile(Codec::H264, "high-4:4:4"));
    assert!(!browser_profile(Codec::H264, "high-10"));
    assert!(browser_profile(Codec::Vp9, "0"));
    assert!(!browser_profile(Codec::Vp9, "1"));
    assert!(browser_profile(Codec::Av1, "main"));
    assert!(!browser_profile(Codec::Av1, "high"));
    assert!(browser_profile(Codec::Vp8, "anything"));
}

#[test]
fn gop_warnings() {
    let frames = |n, default| Gop::Frames {
        property: "key-int-max".into(),
        frames: n,
        default,
    };
    let m = gop_warning("x264enc0", &frames(500, false), Some(30.0)).expect("warns");
    assert_eq!(
        m,
        "x264enc0 makes a keyframe every 16.7 s (key-int-max=500 at 30 fps); this project sends keyframes on request, but recordings and late joiners on other SFUs wait for one: set key-int-max=60"
    );
    assert_eq!(
        gop_warning("x", &frames(300, false), Some(30.0)),
        None,
        "exactly 10 s is fine"
    );
    assert_eq!(gop_warning("x", &frames(60, false), None), None);
    let m = gop_warning(
        "vp8enc0",
        &Gop::Frames {
            property: "keyframe-max-dist".into(),
            frames: 128,
            default: true,
        },
        Some(5.0),
    )
    .expect("warns");
    assert!(
        m.contains("every 25.6 s (keyframe-max-dist=128, the default, at 5 fps)")
            && m.ends_with("set keyframe-max-dist=10"),
        "{m}"
    );
    let m = gop_warning("x", &frames(1000, false), None).expect("warns");
    assert!(m.contains("at an assumed 30 fps"), "{m}");
    let m = gop_warning("x", &frames(1000, false), Some(29.97)).expect("warns");
    assert!(
        m.contains("at 29.97 fps") && m.ends_with("key-int-max=60"),
        "{m}"
    );
    let never = Gop::Never {
        setting: "keyframe-mode=disabled".into(),
        property: "keyframe-mode=auto keyframe-max-dist".into(),
    };
    let m = gop_warning("vp8enc0", &never, Some(15.0)).expect("warns");
    assert!(
        m.contains("no keyframe after the first (keyframe-mode=disabled)")
            && m.ends_with("set keyframe-mode=auto keyframe-max-dist=30"),
        "{m}"
    );
    // Nonsense framerates fall back to the assumption rather than dividing by zero.
    assert!(gop_warning("x", &frames(1000, false), Some(0.0)).is_some());
    assert!(gop_warning("x", &frames(1000, false), Some(f64::NAN)).is_some());
}

#[test]
fn numbers_print_short() {
    assert_eq!(fmt_seconds(16.666), "16.7");
    assert_eq!(fmt_seconds(12.0), "12");
    assert_eq!(fmt_number(30.0), "30");
    assert_eq!(fmt_number(30000.0 / 1001.0), "29.97");
    assert_eq!(fraction_fps(30, 1), Some(30.0));
    assert_eq!(fraction_fps(0, 1), None);
    assert_eq!(fraction_fps(30, 0), None);
    assert_eq!(fraction_fps(-1, 1), None);
}

#[test]
fn parser_warnings_name_the_fix_and_the_package() {
    let m = parser_warning("capsfilter0", "src", Codec::H264, Some("filesrc0"), |_| {
        true
    });
    assert!(
        m.contains("capsfilter0.src")
            && m.contains("filesrc0")
            && m.ends_with("add h264parse after capsfilter0"),
        "{m}"
    );
    let m = parser_warning("capsfilter0", "src", Codec::H264, None, |f| {
        f != "h264parse"
    });
    assert!(m.contains("without stream-format/alignment"), "{m}");
    assert!(
        m.ends_with("(h264parse is not installed: apt install gstreamer1.0-plugins-bad)"),
        "{m}"
    );
    let m = parser_warning("udpsrc0", "src", Codec::Vp8, Some("udpsrc0"), |_| true);
    assert!(
        m.contains("straight from udpsrc0,") && m.contains("matroskademux"),
        "{m}"
    );
    let m = parser_warning("c", "src", Codec::Av1, None, |_| false);
    assert!(m.contains("add av1parse after c (av1parse is not installed: apt install gstreamer1.0-plugins-bad)"), "{m}");
    assert_eq!(install_hint("h264parse"), Some("gstreamer1.0-plugins-bad"));
    assert_eq!(install_hint("ivfparse"), Some("gstreamer1.0-plugins-bad"));
    assert_eq!(
        install_hint("matroskademux"),
        Some("gstreamer1.0-plugins-good")
    );
    assert_eq!(install_hint("nosuchelement"), None);
}

#[test]
fn live_warnings_are_accurate_and_one_line() {
    let m = non_live_warning("videotestsrc0");
    assert!(
        m.starts_with("videotestsrc0 is not live") && m.contains("set is-live=true"),
        "{m}"
    );
    let m = mixed_warning("audiotestsrc0", Some("videotestsrc0"), true);
    assert!(
        m.contains("but videotestsrc0 is") && m.ends_with("set is-live=true on audiotestsrc0"),
        "{m}"
    );
    let m = mixed_warning("filesrc0", None, false);
    assert!(
        m.contains("but the pipeline is") && m.contains("identity sync=true"),
        "{m}"
    );
    for m in [non_live_warning("a"), mixed_warning("a", None, true)] {
        assert!(!m.contains('\n'));
    }
}

#[test]
fn reports_dedupe_and_fold_lines() {
    let mut r = Report::default();
    r.warn(
        "x264enc0",
        Check::BFrames,
        "x264enc0 sends B-frames\n(bframes=2)".into(),
    );
    r.warn(
        "x264enc0",
        Check::BFrames,
        "x264enc0 reorders frames".into(),
    );
    r.warn(
        "x264enc1",
        Check::BFrames,
        "x264enc0 sends B-frames (bframes=2)".into(),
    );
    r.warn("x264enc0", Check::Gop, "gop".into());
    assert_eq!(
        r.lines,
        vec![
            "x264enc0 sends B-frames (bframes=2)".to_string(),
            "gop".to_string()
        ]
    );
    assert!(r.has("x264enc0", Check::BFrames) && !r.has("x264enc1", Check::Gop));
}

#[test]
fn av1enc_that_cannot_answer_keyframe_requests_is_warned_about_beyond_2_s() {
    let frames = |n| Gop::Frames {
        property: "keyframe-max-dist".into(),
        frames: n,
        default: false,
    };
    // Its default (30 frames) keeps a new viewer's wait at 1 s: nothing to say.
    assert_eq!(
        deaf_encoder_warning("av1enc0", Some(&frames(30)), Some(30.0)),
        None
    );
    let m = deaf_encoder_warning("av1enc0", Some(&frames(300)), Some(30.0)).expect("warns");
    assert!(
        m.contains("every 10 s") && m.contains("keyframe-max-dist=60"),
        "{m}"
    );
    assert!(m.contains("svtav1enc"), "{m}");
}

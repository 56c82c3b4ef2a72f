//! B-frames: an encoder property above 0, or prerolled buffers whose timestamps show reordering.

use super::*;

pub(super) fn check_bframes(
    report: &mut Report,
    encoders: &[gst::Element],
    targets: &[Target],
    recorder: &Recorder,
) {
    for encoder in encoders {
        for property in BFRAME_PROPERTIES {
            if let Some(n) = int_property(encoder, property).filter(|n| *n > 0) {
                let name = encoder.name();
                report.warn(
                    &name,
                    Check::BFrames,
                    format!("{name} sends B-frames ({property}={n}); browsers stutter or drop frames: set {property}=0"),
                );
            }
        }
    }
    for target in targets
        .iter()
        .filter(|t| t.output.kind() == MediaKind::Video)
    {
        let culprit = target.culprit();
        if report.has(&culprit, Check::BFrames) || !reorders(&recorder.stamps(target.output.id.0)) {
            continue;
        }
        let fix = match &target.encoder {
            Some(e) => format!("turn B-frames off on {} (e.g. bframes=0)", e.name()),
            None => "re-encode it without B-frames (e.g. x264enc bframes=0)".to_string(),
        };
        report.warn(
            &culprit,
            Check::BFrames,
            format!(
                "{culprit} sends frames out of display order (B-frames, seen while prerolling {}.{}); browsers stutter or drop frames: {fix}",
                target.output.element, target.output.pad
            ),
        );
    }
}

/// True when frames arrive out of presentation order: a DTS before its PTS, or a PTS below
/// the one before it.
pub(crate) fn reorders(stamps: &[Stamp]) -> bool {
    let early_dts = stamps
        .iter()
        .any(|s| matches!((s.dts, s.pts), (Some(dts), Some(pts)) if dts < pts));
    let pts: Vec<u64> = stamps.iter().filter_map(|s| s.pts).collect();
    early_dts || pts.windows(2).any(|w| w[1] < w[0])
}

//! The order of codecs in our offer: a pure rewrite of the SDP str0m made.
//!
//! str0m offers every configured codec on every media section; the server must pick the
//! track's own codec, and for H.264 the stream's own profile. This module puts them first.

use std::collections::HashMap;

use super::frames::profile_prefix;
use super::Mid;
use crate::media::Codec;

/// Put each new m-line's own codec first in the offer.
///
/// str0m offers every configured codec on every m-line. LiveKit's server (pion) computes the
/// codecs it answers with across the whole session, so removing the other codecs from an
/// m-line does not help: with an H.264 and a VP8 track in one offer it answered the VP8 m-line
/// with H.264 only. Ordering works: the server puts the track's codec (from
/// AddTrackRequest.simulcast_codecs) first in its answer and forwards what we send. For
/// H.264 the payload type with the stream's profile goes first and its fmtp carries the
/// stream's real profile-level-id.
pub fn prefer_codecs(sdp: &str, media: &[(Mid, Codec, Option<String>)]) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut sections: Vec<Vec<String>> = vec![Vec::new()];
    for l in sdp.split(eol) {
        if l.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(last) = sections.last_mut() {
            last.push(l.to_string());
        }
    }
    for section in sections.iter_mut().skip(1) {
        let Some(mid) = section
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(str::to_string)
        else {
            continue;
        };
        let Some((_, codec, plid)) = media.iter().find(|(id, _, _)| **id == *mid) else {
            continue;
        };
        prefer_in_section(section, *codec, plid.as_deref());
    }
    sections.concat().join(eol)
}

fn prefer_in_section(section: &mut [String], codec: Codec, plid: Option<&str>) {
    // pt → codec name, pt → fmtp
    let mut names: Vec<(String, String)> = Vec::new();
    let mut fmtp: HashMap<String, String> = HashMap::new();
    for l in section.iter() {
        if let Some(rest) = l.strip_prefix("a=rtpmap:") {
            if let Some((pt, enc)) = rest.split_once(' ') {
                names.push((
                    pt.to_string(),
                    enc.split('/').next().unwrap_or("").to_ascii_uppercase(),
                ));
            }
        } else if let Some(rest) = l.strip_prefix("a=fmtp:") {
            if let Some((pt, params)) = rest.split_once(' ') {
                fmtp.insert(pt.to_string(), params.to_string());
            }
        }
    }
    let want = match codec {
        Codec::H264 => "H264",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::Av1 => "AV1",
        Codec::Opus => "OPUS",
    };
    let profile = plid.and_then(profile_prefix);
    let fmtp_profile = |pt: &str| -> Option<u32> {
        let f = fmtp.get(pt)?;
        let v = f
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix("profile-level-id="))?;
        u32::from_str_radix(v, 16).ok().map(|x| x >> 8)
    };
    let primaries: Vec<&String> = names
        .iter()
        .filter(|(_, n)| n == want)
        .map(|(pt, _)| pt)
        .collect();
    let Some(primary) = primaries
        .iter()
        .find(|pt| codec != Codec::H264 || profile.is_none() || fmtp_profile(pt) == profile)
        .or(primaries.first())
        .map(|pt| (*pt).clone())
    else {
        return;
    };
    let mut first = vec![primary.clone()];
    for (pt, n) in &names {
        if n == "RTX"
            && fmtp
                .get(pt)
                .is_some_and(|f| f.split(';').any(|kv| kv.trim() == format!("apt={primary}")))
        {
            first.push(pt.clone());
        }
    }
    for l in section.iter_mut() {
        if let Some(rest) = l.strip_prefix("m=") {
            *l = reorder_formats(rest, &first);
        } else if let (Codec::H264, Some(real), Some(rest)) =
            (codec, plid, l.strip_prefix(&format!("a=fmtp:{primary} ")))
        {
            let params: Vec<String> = rest
                .split(';')
                .map(|kv| {
                    if kv.trim().starts_with("profile-level-id=") {
                        format!("profile-level-id={real}")
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            *l = format!("a=fmtp:{primary} {}", params.join(";"));
        }
    }
}

/// An `m=` line (without `m=`) with the payload types in `first` moved to the front.
fn reorder_formats(rest: &str, first: &[String]) -> String {
    let parts: Vec<&str> = rest.split(' ').collect();
    if parts.len() <= 3 {
        return format!("m={rest}");
    }
    let mut fmts: Vec<&str> = first.iter().map(String::as_str).collect();
    fmts.extend(
        parts[3..]
            .iter()
            .copied()
            .filter(|p| !first.iter().any(|k| k == p)),
    );
    format!("m={} {}", parts[..3].join(" "), fmts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:102 nack pli\r\na=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\na=rtpmap:108 H264/90000\r\na=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\na=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n";

    fn media(mid: &str, codec: Codec, plid: Option<&str>) -> (Mid, Codec, Option<String>) {
        (Mid::from(mid), codec, plid.map(str::to_string))
    }

    #[test]
    fn h264_with_the_stream_profile_goes_first_with_its_real_level() {
        let out = prefer_codecs(OFFER, &[media("1", Codec::H264, Some("640028"))]);
        assert!(
            out.contains("m=video 9 UDP/TLS/RTP/SAVPF 108 109 96 97 102 103\r\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640028"
            ),
            "{out}"
        );
        assert!(
            out.contains("profile-level-id=42e01f"),
            "other payload types keep theirs: {out}"
        );
    }

    #[test]
    fn vp8_goes_first_and_other_sections_are_left_alone() {
        let out = prefer_codecs(OFFER, &[media("1", Codec::Vp8, None)]);
        assert!(out.contains("SAVPF 96 97 102 103 108 109\r\n"), "{out}");
        let untouched = prefer_codecs(OFFER, &[media("2", Codec::Vp8, None)]);
        assert_eq!(untouched, OFFER);
    }
}

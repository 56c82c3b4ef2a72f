//! `scripts/elements.txt` is the one list of GStreamer elements this project uses, each with the
//! Debian package that brings it; `scripts/setup` installs those packages and checks every
//! element with gst-inspect-1.0. These tests keep the list honest: every element in a pipeline
//! of the README, `scripts/` and `tests/`, and every element the product inserts itself, must
//! be listed, so that a fresh machine set up by `scripts/setup` runs all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// element → package ("-" for words listed as deliberately not elements).
fn listed() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join("scripts/elements.txt"))
        .expect("scripts/elements.txt exists");
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(element), Some(package)) = (words.next(), words.next()) else {
            panic!("scripts/elements.txt: {line:?} is not `ELEMENT PACKAGE`");
        };
        assert!(
            map.insert(element.to_string(), package.to_string())
                .is_none(),
            "scripts/elements.txt lists {element} twice"
        );
    }
    map
}

fn is_element_name(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// Splits on whitespace, keeping quoted parts (`location="a b"`) inside their word.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    for c in text.chars() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => {
                word.push(c);
                quote = Some(c);
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            None => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The element names in one gst-launch text: a bare word (no `=`, no `/`, not a `name.` pad
/// reference) at the start of a `!` segment, or right after a property, a caps string, a pad
/// reference, another element, or the `--` that starts a pipeline on a command line.
fn element_words(pipeline: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let toks = tokens(pipeline);
    let mut segment_start = true;
    let mut prev: Option<&str> = None;
    for t in &toks {
        if t == "!" {
            segment_start = true;
            prev = None;
            continue;
        }
        let position = segment_start
            || prev.is_some_and(|p| {
                p.contains('=')
                    || p.contains('/')
                    || p.ends_with('.')
                    || p == "--"
                    || is_element_name(p)
            });
        if position && is_element_name(t) {
            found.insert(t.clone());
        }
        segment_start = false;
        prev = Some(t);
    }
    found
}

fn has_bang(text: &str) -> bool {
    tokens(text).iter().any(|t| t == "!")
}

/// String literals of Rust or Python source (double-quoted, raw, and Python's single-quoted),
/// with literals that only whitespace or `+` separates joined (Python's implicit
/// concatenation, pipelines split over lines).
fn string_literals(src: &str, python: bool) -> Vec<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut joinable = false;
    while i < chars.len() {
        let c = chars[i];
        // comments
        if !python && c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            joinable = false;
            continue;
        }
        if python && c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        // Rust char literals and lifetimes: skip the quote and what a char literal holds
        if !python && c == '\'' {
            if chars.get(i + 1) == Some(&'\\') {
                i += 4;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
            joinable = false;
            continue;
        }
        let raw_hashes = if !python && c == 'r' && matches!(chars.get(i + 1), Some('"') | Some('#'))
        {
            let mut h = 0;
            while chars.get(i + 1 + h) == Some(&'#') {
                h += 1;
            }
            (chars.get(i + 1 + h) == Some(&'"')).then_some(h)
        } else {
            None
        };
        let quote = if let Some(h) = raw_hashes {
            i += 1 + h;
            Some(('"', h, true))
        } else if c == '"' || (python && c == '\'') {
            Some((c, 0, false))
        } else {
            None
        };
        let Some((q, hashes, raw)) = quote else {
            if !(c.is_whitespace() || c == '+' || (python && c == 'f')) {
                joinable = false;
            }
            i += 1;
            continue;
        };
        // Python triple quotes
        let triple = python && chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q);
        i += if triple { 3 } else { 1 };
        let mut lit = String::new();
        while i < chars.len() {
            let d = chars[i];
            if !raw && d == '\\' {
                if let Some(n) = chars.get(i + 1) {
                    lit.push(if *n == 'n' { ' ' } else { *n });
                }
                i += 2;
                continue;
            }
            if d == q {
                if triple {
                    if chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                        i += 3;
                        break;
                    }
                } else if (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
            }
            lit.push(d);
            i += 1;
        }
        match out.last_mut() {
            Some(last) if joinable => last.push_str(&lit),
            _ => out.push(lit),
        }
        joinable = true;
    }
    out
}

/// The gst-launch texts of one file.
fn pipelines_in(path: &Path, text: &str) -> Vec<String> {
    let name = path.to_string_lossy();
    let mut chunks: Vec<String> = if name.ends_with(".rs") {
        string_literals(text, false)
    } else if name.ends_with(".py") {
        string_literals(text, true)
    } else if name.ends_with(".md") {
        // fenced and indented code blocks, and inline code
        let mut out = Vec::new();
        let mut fenced = false;
        for line in text.lines() {
            if line.starts_with("```") {
                fenced = !fenced;
            } else if fenced || line.starts_with("    ") {
                out.push(line.to_string());
            } else {
                out.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
            }
        }
        out
    } else {
        // shell: each line, or its double-quoted strings where it has any with a pipeline;
        // lines where `!` is the shell's negation are not pipelines
        let mut out = Vec::new();
        for line in text.lines() {
            let t = tokens(line);
            let negation = t.windows(2).any(|w| {
                w[1] == "!"
                    && matches!(
                        w[0].as_str(),
                        "if" | "elif" | "while" | "until" | "[" | "&&" | "||"
                    )
            });
            if negation {
                continue;
            }
            let quoted: Vec<String> = line
                .split('"')
                .skip(1)
                .step_by(2)
                .filter(|q| has_bang(q))
                .map(str::to_string)
                .collect();
            if quoted.is_empty() {
                out.push(line.to_string());
            } else {
                out.extend(quoted);
            }
        }
        out
    };
    // In prose with inline code (assert messages, doc strings), only the code counts.
    for c in &mut chunks {
        if c.contains('`') {
            *c = c
                .split('`')
                .skip(1)
                .step_by(2)
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    chunks
        .into_iter()
        .map(|c| c.replace('\\', " "))
        .filter(|c| has_bang(c))
        .collect()
}

fn files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name == "node_modules" || name == "__pycache__" || name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("scripts"), &mut out);
    walk(&root().join("tests"), &mut out);
    out.retain(|p| {
        let n = p.to_string_lossy();
        !(n.ends_with("elements.txt")
            || n.ends_with(".json")
            || n.ends_with(".lock")
            || n.ends_with("tests/elements.rs"))
    });
    out.sort();
    out
}

/// Elements the product creates itself (parsers, sinks).
fn product_elements() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("src is readable").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for marker in ["ElementFactory::make(\"", "make_parser(\""] {
                for part in text.split(marker).skip(1) {
                    if let Some(name) = part.split('"').next() {
                        found.insert(name.to_string());
                    }
                }
            }
            if text.contains("AppSink::builder") {
                found.insert("appsink".into());
            }
        }
    }
    found
}

#[test]
fn elements_list_covers_every_pipeline() {
    let list = listed();
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for path in files() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for pipeline in pipelines_in(&path, &text) {
            for element in element_words(&pipeline) {
                seen.insert(element.clone());
                if !list.contains_key(&element) {
                    let rel = path
                        .strip_prefix(root())
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    missing.push(format!("{element} (in {rel})"));
                }
            }
        }
    }
    for element in product_elements() {
        seen.insert(element.clone());
        if !list.contains_key(&element) {
            missing.push(format!("{element} (created by src/)"));
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "used but not in scripts/elements.txt (add each with its Debian package): {}",
        missing.join(", ")
    );
    // The scan must really find pipelines: the demo's and the README's are known.
    for known in [
        "clockoverlay",
        "x264enc",
        "opusenc",
        "decodebin3",
        "h264parse",
        "appsink",
    ] {
        assert!(
            seen.contains(known),
            "the scan no longer finds {known}: {seen:?}"
        );
    }
}

#[test]
fn every_listed_element_is_installed() {
    gstreamer::init().expect("GStreamer initialises");
    // "workspace": built by this repository (gst-plugin/); tests/element.rs loads it.
    let missing: Vec<String> = listed()
        .into_iter()
        .filter(|(_, package)| package != "-" && package != "workspace")
        .filter(|(element, _)| gstreamer::ElementFactory::find(element).is_none())
        .map(|(element, package)| format!("{element} ({package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "listed in scripts/elements.txt but not installed (run scripts/setup): {}",
        missing.join(", ")
    );
    let not_elements: Vec<String> = listed()
        .into_iter()
        .filter(|(element, package)| {
            package == "-" && gstreamer::ElementFactory::find(element).is_some()
        })
        .map(|(element, _)| element)
        .collect();
    assert!(
        not_elements.is_empty(),
        "marked `-` (not an element) but they are elements: {not_elements:?}"
    );
}

#[test]
fn the_scan_finds_elements_and_leaves_prose_alone() {
    let w = element_words(
        "videotestsrc is-live=true ! video/x-raw,width=1280 ! clockoverlay ! x264enc tune=zerolatency \
         audiotestsrc is-live=true ! opusenc name=mic demux. ! queue ! h264parse mux. matroskamux name=mux",
    );
    let want: BTreeSet<String> = [
        "videotestsrc",
        "clockoverlay",
        "x264enc",
        "audiotestsrc",
        "opusenc",
        "queue",
        "h264parse",
        "matroskamux",
    ]
    .map(String::from)
    .into();
    assert_eq!(w, want);
    assert_eq!(
        element_words("$ gstreamer-publisher --dry-run -- videotestsrc ! vp8enc"),
        ["videotestsrc", "vp8enc"].map(String::from).into()
    );
    let rust =
        r#"let p = "videotestsrc ! x264enc"; let m = "it failed: `! video/x-h264`"; let c = '"';"#;
    let chunks = pipelines_in(Path::new("x.rs"), rust);
    assert_eq!(chunks, vec!["videotestsrc ! x264enc", "! video/x-h264"]);
    let py = "p = (f\"videotestsrc num-buffers={n} ! \"\n     \"x264enc ! queue\")\n";
    let chunks = pipelines_in(Path::new("x.py"), py);
    assert_eq!(
        chunks,
        vec!["videotestsrc num-buffers={n} ! x264enc ! queue"]
    );
    let sh = "if ! command -v go; then\n  videotestsrc ! \\\n";
    assert_eq!(pipelines_in(Path::new("x"), sh), vec!["  videotestsrc !  "]);
}

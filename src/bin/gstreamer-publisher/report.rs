//! Where the statistics go: `--stats-json` and the status line.

use std::io::Write as _;

use gstreamer_publisher::Report;

/// Where statistics go: a JSON-lines file (or stdout) and/or a status line on a terminal.
pub struct Reporter {
    json: Option<Box<dyn std::io::Write + Send>>,
    status_line: bool,
}

impl Reporter {
    /// Opens `--stats-json` (before the pipeline starts, so a bad path fails at once).
    pub fn open(config: &crate::cli::Config) -> gstreamer_publisher::error::Result<Reporter> {
        use std::io::IsTerminal;
        let json: Option<Box<dyn std::io::Write + Send>> = match &config.stats_json {
            None => None,
            Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
            Some(p) => Some(Box::new(std::io::LineWriter::new(
                std::fs::File::create(p).map_err(|e| {
                    gstreamer_publisher::error::Error::Usage(format!(
                        "cannot write --stats-json {}: {e}",
                        p.display()
                    ))
                })?,
            ))),
        };
        Ok(Reporter {
            json,
            status_line: !config.quiet && std::io::stderr().is_terminal(),
        })
    }

    /// The totals at exit, without a status line.
    pub fn write_final(&mut self, report: &Report) {
        self.status_line = false;
        self.write(report);
    }

    /// One report, to every destination.
    pub fn write(&mut self, report: &Report) {
        if let Some(out) = self.json.as_mut() {
            if writeln!(out, "{}", report.to_json()).is_err() {
                tracing::warn!("cannot write statistics any more; --stats-json output stopped");
                self.json = None;
            }
        }
        if self.status_line && !report.tracks.is_empty() {
            eprintln!("{}", report.status_line());
        }
    }
}

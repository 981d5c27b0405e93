//! Tracing setup: one global subscriber writing to stderr, compact text with
//! timestamps or one JSON object per line (with the current span and the span
//! list). Must not be called more than once, and must not panic: a bad filter
//! or an already installed subscriber is an error.

use std::io::IsTerminal;

use anyhow::Context as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// A filter that does not parse, naming where it came from and its value.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {value:?} is not a valid log filter: {reason}")]
pub struct FilterError {
    /// `RUST_LOG` or `log.level`.
    pub origin: &'static str,
    pub value: String,
    pub reason: String,
}

/// Install the global subscriber. The filter is `RUST_LOG` when set and not
/// empty, else `cfg.level`.
pub fn init(cfg: &LogConfig) -> anyhow::Result<()> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = build_filter(rust_log.as_deref(), &cfg.level)?;
    let ansi = std::io::stderr().is_terminal();
    subscriber(cfg.format, filter, std::io::stderr, ansi)
        .try_init()
        .context("cannot install the log subscriber (one is already installed)")
}

/// The filter from `RUST_LOG` (when set and not blank) or else `level` (a
/// tracing filter: `info`, `mailstow=debug,warn`).
pub fn build_filter(rust_log: Option<&str>, level: &str) -> Result<EnvFilter, FilterError> {
    let (origin, value) = match rust_log {
        Some(v) if !v.trim().is_empty() => ("RUST_LOG", v),
        _ => ("log.level", level),
    };
    let bad = |reason: String| FilterError {
        origin,
        value: value.to_owned(),
        reason,
    };
    if value.trim().is_empty() {
        return Err(bad("empty".to_owned()));
    }
    EnvFilter::builder()
        .parse(value)
        .map_err(|e| bad(e.to_string()))
}

/// The subscriber for `format`, writing to `writer`; not installed.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.compact().with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_ansi(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects everything written, for checking the output format.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn emit(format: LogFormat, level: &str) -> String {
        let buf = Buffer::default();
        let filter = build_filter(None, level).unwrap();
        let sub = subscriber(format, filter, buf.clone(), false);
        tracing::subscriber::with_default(sub, || {
            let session = tracing::info_span!("session", id = 7);
            let _s = session.enter();
            let rcpt = tracing::info_span!("rcpt", addr = "a@x.org");
            let _r = rcpt.enter();
            tracing::info!(status = "delivered", "to=<a@x.org>");
            tracing::debug!("hidden at info");
        });
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn bad_filter_names_the_value_and_its_origin() {
        let e = build_filter(None, "info,mailstow=loud").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("log.level"), "{msg}");
        assert!(msg.contains("mailstow=loud"), "{msg}");
        let e = build_filter(Some("=:bad"), "info").unwrap_err();
        assert!(e.to_string().contains("RUST_LOG"), "{e}");
        assert!(build_filter(None, "  ").is_err());
    }

    #[test]
    fn rust_log_wins_over_the_config_unless_blank() {
        assert!(build_filter(Some("debug"), "not=valid=at all").is_ok());
        assert!(build_filter(Some(""), "info").is_ok());
        assert!(build_filter(Some(""), "info,x=loud").is_err());
    }

    #[test]
    fn json_is_one_object_per_line_with_spans() {
        let out = emit(LogFormat::Json, "info");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line = lines[0];
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert!(line.contains(r#""timestamp""#), "{line}");
        assert!(
            line.contains(r#""span":{"addr":"a@x.org","name":"rcpt"}"#),
            "{line}"
        );
        assert!(
            line.contains(r#""spans":[{"id":7,"name":"session"}"#),
            "{line}"
        );
        assert!(line.contains(r#""status":"delivered""#), "{line}");
    }

    #[test]
    fn text_is_compact_with_spans_and_no_color_codes() {
        let out = emit(LogFormat::Text, "info");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("to=<a@x.org>"), "{out}");
        assert!(out.contains("session") && out.contains("rcpt"), "{out}");
        assert!(!out.contains('\u{1b}'), "{out}");
    }
}

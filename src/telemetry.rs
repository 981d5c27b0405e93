//! Tracing setup: one global subscriber writing to stderr, as text or as
//! one JSON object per line (with the current span and the span list). A
//! text line is the timestamp, the level, the message, the event's fields,
//! then the fields of the spans it happened in (outermost first) that the
//! line does not have yet, so no field appears twice (a span's field whose
//! name is taken by another value is written `span.name=`); values that
//! are not one plain token are quoted and escaped, so one event is one line.
//! Must not be called more than once, and must not panic: a bad filter or
//! an already installed subscriber is an error.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write as _};

use anyhow::Context as _;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
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
    match format {
        LogFormat::Text => Box::new(
            tracing_subscriber::registry()
                .with(filter)
                .with(Text { writer, ansi }),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer)
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_ansi(false)
                .finish(),
        ),
    }
}

/// The text format, as a layer: keeps each span's fields in the span's
/// extensions, and writes each event as one line (one write).
struct Text<W> {
    writer: W,
    /// Colour the level (stderr is a terminal).
    ansi: bool,
}

/// Fields in the order they were recorded, each name once, values as text.
#[derive(Debug, Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl<S, W> Layer<S> for Text<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            span.extensions_mut().replace(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = String::with_capacity(256);
        let _ = SystemTime.format_time(&mut Writer::new(&mut line));
        let level = *event.metadata().level();
        let _ = match (self.ansi, colour(level)) {
            (true, c) => write!(line, " \x1b[{c}m{level:>5}\x1b[0m"),
            (false, _) => write!(line, " {level:>5}"),
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        // Fields bridged from the `log` crate say where, not what.
        fields.0.retain(|(n, _)| !n.starts_with("log."));
        if let Some(i) = fields.0.iter().position(|(n, _)| *n == "message") {
            let (_, message) = fields.0.remove(i);
            if !message.is_empty() {
                line.push(' ');
                push_message(&mut line, &message);
            }
        }
        for (name, value) in &fields.0 {
            push_field(&mut line, "", name, value);
        }
        let mut printed = fields;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(f) = ext.get::<Fields>() else {
                    continue;
                };
                for (name, value) in &f.0 {
                    // A field printed already is left out; the same name
                    // with another value is named after its span.
                    match printed.0.iter().find(|(n, _)| n == name) {
                        Some((_, v)) if v == value => continue,
                        Some(_) => push_field(&mut line, span.name(), name, value),
                        None => push_field(&mut line, "", name, value),
                    }
                    printed.0.push((name, value.clone()));
                }
            }
        }
        line.push('\n');
        let _ = self
            .writer
            .make_writer_for(event.metadata())
            .write_all(line.as_bytes());
    }
}

/// The ANSI colour of a level, as tracing-subscriber's own format has it.
fn colour(level: Level) -> u8 {
    match level {
        Level::ERROR => 31,
        Level::WARN => 33,
        Level::INFO => 32,
        Level::DEBUG => 34,
        Level::TRACE => 35,
    }
}

/// Does `c` print as itself in a quoted value (no escape needed)?
fn plain_char(c: char) -> bool {
    let mut e = c.escape_debug();
    e.next() == Some(c) && e.next().is_none()
}

/// The message as written, except characters that would break the line or
/// hide what it says (control characters, invisible Unicode), escaped.
fn push_message(line: &mut String, message: &str) {
    for c in message.chars() {
        if plain_char(c) || matches!(c, ' ' | '"' | '\'' | '\\') {
            line.push(c);
        } else {
            line.extend(c.escape_debug());
        }
    }
}

/// ` name=value`, or ` span.name=value` when `span` is not empty: the value
/// as is when it is one plain token (not empty, no whitespace, quotes,
/// backslashes, control or invisible characters), else quoted and escaped
/// as Rust writes a string (`"a b"`, `"x\n"`).
fn push_field(line: &mut String, span: &str, name: &str, value: &str) {
    line.push(' ');
    if !span.is_empty() {
        line.push_str(span);
        line.push('.');
    }
    line.push_str(name);
    line.push('=');
    if !value.is_empty() && value.chars().all(|c| plain_char(c) && !c.is_whitespace()) {
        line.push_str(value);
    } else {
        let _ = write!(line, "{value:?}");
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

    /// What the subscriber for `format` writes while `f` runs.
    fn capture(format: LogFormat, level: &str, f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let filter = build_filter(None, level).unwrap();
        let sub = subscriber(format, filter, buf.clone(), false);
        tracing::subscriber::with_default(sub, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn emit(format: LogFormat, level: &str) -> String {
        capture(format, level, || {
            let session = tracing::info_span!("session", session = 7, peer = "[::1]:25");
            let _s = session.enter();
            let rcpt = tracing::info_span!("rcpt", to = "<a@x.org>");
            let _r = rcpt.enter();
            tracing::info!(to = "<a@x.org>", status = "delivered", "delivery");
            tracing::debug!("hidden at info");
        })
    }

    /// Each line without its timestamp and the space after it; the level
    /// is right-aligned in five columns (" INFO", "ERROR").
    fn untimed(out: &str) -> Vec<String> {
        out.lines()
            .map(|l| {
                let (time, rest) = l.split_once(' ').unwrap();
                assert!(time.ends_with('Z') && time.contains('T'), "{l}");
                rest.to_owned()
            })
            .collect()
    }

    /// `delay=<n>` as `delay=*`: the one value a test cannot fix.
    fn without_delay(line: &str) -> String {
        let Some((head, tail)) = line.split_once(" delay=") else {
            return line.to_owned();
        };
        let rest = tail.split_once(' ').map_or("", |(_, r)| r);
        format!("{head} delay=* {rest}").trim_end().to_owned()
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
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert!(v["timestamp"].is_string(), "{v}");
        assert_eq!(v["fields"]["message"], "delivery", "{v}");
        assert_eq!(v["fields"]["status"], "delivered", "{v}");
        assert_eq!(
            v["span"],
            serde_json::json!({"to": "<a@x.org>", "name": "rcpt"})
        );
        assert_eq!(
            v["spans"][0],
            serde_json::json!({"session": 7, "peer": "[::1]:25", "name": "session"})
        );
    }

    #[test]
    fn text_is_one_line_with_span_fields_once_and_no_color_codes() {
        let out = emit(LogFormat::Text, "info");
        assert_eq!(
            untimed(&out),
            [" INFO delivery to=<a@x.org> status=delivered session=7 peer=[::1]:25"],
            "{out}"
        );
        assert!(!out.contains('\u{1b}'), "{out}");
        // On a terminal only the level is coloured.
        let buf = Buffer::default();
        let sub = subscriber(
            LogFormat::Text,
            build_filter(None, "info").unwrap(),
            buf.clone(),
            true,
        );
        tracing::subscriber::with_default(sub, || tracing::warn!(n = 1, "careful"));
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            out.ends_with(" \u{1b}[33m WARN\u{1b}[0m careful n=1\n"),
            "{out:?}"
        );
    }

    #[test]
    fn a_span_field_whose_name_the_event_uses_for_another_value_is_qualified() {
        let out = capture(LogFormat::Text, "info", || {
            let _t = tracing::info_span!("txn", id = "Q1", from = "<s@x.org>").entered();
            let _r = tracing::info_span!("rcpt", to = "<a@x.org>").entered();
            tracing::warn!(id = "Q1", to = "b@y.org", "redirect skipped");
        });
        assert_eq!(
            untimed(&out),
            [" WARN redirect skipped id=Q1 to=b@y.org from=<s@x.org> rcpt.to=<a@x.org>"],
            "{out}"
        );
    }

    #[test]
    fn text_quotes_and_escapes_what_is_not_one_token() {
        let out = capture(LogFormat::Text, "info", || {
            tracing::warn!(
                empty = "",
                spaced = "a b",
                quoted = "say \"hi\"",
                n = 3,
                broken = %"one\ntwo\r\n\u{1b}[31m",
                plain = %"INBOX.Réunions",
                "two\nlines"
            );
        });
        assert_eq!(
            untimed(&out),
            [
                r#" WARN two\nlines empty="" spaced="a b" quoted="say \"hi\"" n=3 broken="one\ntwo\r\n\u{1b}[31m" plain=INBOX.Réunions"#
            ],
            "{out}"
        );
    }

    #[test]
    fn a_delivery_line_in_session_txn_and_rcpt_spans_has_each_field_once() {
        use crate::deliver::headers::Origin;
        use crate::deliver::log::{self as pipeline, Logged};
        use crate::deliver::outcome::{Failure, RcptOutcome};
        use crate::deliver::{Envelope, Recipient};
        use std::time::{Instant, SystemTime};

        let env = Envelope {
            id: "6Q5R2J8VH0S0GNF000002".into(),
            mail_from: Some("s@example.net".into()),
            origin: Origin::Local,
            received: SystemTime::now(),
            started: Instant::now(),
        };
        let rcpt = Recipient {
            address: "alice@example.org".into(),
            orcpt: Some("postmaster@example.org".into()),
            user: crate::users::User {
                name: "alice@example.org".into(),
                local: "alice".into(),
                domain: "example.org".into(),
                detail: None,
                uid: None,
                gid: None,
                home: "/h".into(),
                maildir: "/h/Maildir".into(),
                extra: Vec::new(),
            },
            folder: None,
        };
        let out = capture(LogFormat::Text, "info", || {
            // As the server nests them (src/server/conn.rs).
            let session = tracing::info_span!(
                "session",
                session = "6Q5R2J8VD6X0GNF000001",
                peer = "[127.0.0.1]:44848"
            );
            let _s = session.enter();
            let _t = pipeline::txn_span(&env, 3239).entered();
            let _r = pipeline::rcpt_span(&rcpt).entered();
            let logged = Logged {
                size: Some(3239),
                stored: Some(3439),
                msgid: Some("<1@example.net>"),
                ..Logged::of(&env)
            };
            let delivered = RcptOutcome::Delivered {
                folder: "INBOX,Lists.rust".into(),
            };
            pipeline::log_outcome(&rcpt, &delivered, env.started, &logged);
            let failed = RcptOutcome::Failed(Failure::OverQuota { temporary: false });
            let logged = Logged {
                stored: None,
                msgid: Some("<x y>\r\nINFO delivery status=delivered"),
                ..logged
            };
            pipeline::log_outcome(&rcpt, &failed, env.started, &logged);
        });
        let lines: Vec<String> = untimed(&out).iter().map(|l| without_delay(l)).collect();
        assert_eq!(
            lines,
            [
                " INFO delivery id=6Q5R2J8VH0S0GNF000002 to=<alice@example.org> \
                 orig_to=<postmaster@example.org> from=<s@example.net> size=3239 \
                 msgid=<1@example.net> folder=INBOX,Lists.rust stored=3439 delay=* \
                 status=delivered session=6Q5R2J8VD6X0GNF000001 peer=[127.0.0.1]:44848",
                " INFO delivery id=6Q5R2J8VH0S0GNF000002 to=<alice@example.org> \
                 orig_to=<postmaster@example.org> from=<s@example.net> size=3239 \
                 msgid=<x?y>??INFO?delivery?status=delivered delay=* status=bounced \
                 reply=\"552 5.2.2 Mailbox full: over quota\" reason=\"over quota\" \
                 session=6Q5R2J8VD6X0GNF000001 peer=[127.0.0.1]:44848",
            ],
            "{out}"
        );
        let delay = out
            .split(" delay=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        assert!(delay.parse::<f64>().is_ok_and(|d| d >= 0.0), "{out}");
    }
}

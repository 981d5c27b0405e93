//! Criterion benchmarks of the pure parts on every delivery's path: the
//! command parser, a whole LMTP session transcript through the state
//! machine, the DATA receiver (dot-unstuffing, end detection) at 4 KiB,
//! 100 KiB and 10 MiB, the added header block, folder name mapping, and
//! the metrics one delivery records (with the Prometheus recorder on).
//! Must not touch the disk or the network (those are benches/lmtp).
//!
//! Run: `cargo bench --bench hot` (a report per group under
//! target/criterion/).

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use mailstow::config::FolderEncoding;
use mailstow::deliver::headers::{self, Origin, Protocol, Trace};
use mailstow_maildir::{display_name, storage_name};
use mailstow_proto::command;
use mailstow_proto::data::{stuff, DataReceiver};
use mailstow_proto::session::{Event, Mode, Session, SessionConfig};

fn message(size: usize) -> Vec<u8> {
    let mut m =
        b"From: <a@example.test>\r\nTo: <b@example.test>\r\nSubject: bench\r\n\r\n".to_vec();
    let line = [b"x".repeat(76), b"\r\n".to_vec()].concat();
    while m.len() < size {
        m.extend_from_slice(&line);
        // Some lines start with a dot, to be unstuffed.
        m.extend_from_slice(b".dotted line\r\n");
    }
    m.truncate(size);
    m.extend_from_slice(b"\r\n");
    m
}

fn parser(c: &mut Criterion) {
    let lines: [(&str, &[u8]); 5] = [
        ("lhlo", b"LHLO mx.example.test"),
        (
            "mail",
            b"MAIL FROM:<sender@example.net> SIZE=4096 BODY=8BITMIME",
        ),
        (
            "rcpt_orcpt",
            b"RCPT TO:<alice+lists@example.org> ORCPT=rfc822;alice+lists@example.org",
        ),
        ("data", b"DATA"),
        (
            "rcpt_quoted",
            b"RCPT TO:<\"very.unusual.@.unusual.com\"@example.com>",
        ),
    ];
    let mut g = c.benchmark_group("command_parse");
    for (name, line) in lines {
        g.bench_with_input(BenchmarkId::from_parameter(name), line, |b, l| {
            b.iter(|| command::parse(black_box(l)))
        });
    }
    g.finish();
}

/// One LMTP transaction (LHLO, MAIL, 1 or 10 RCPTs, DATA, body, QUIT)
/// through the state machine, with a host that accepts everyone.
fn session(c: &mut Criterion) {
    let body = stuff(&message(4096));
    let mut g = c.benchmark_group("session_transcript");
    for rcpts in [1, 10] {
        let mut input = b"LHLO mx.example.test\r\nMAIL FROM:<s@example.net> SIZE=4200\r\n".to_vec();
        for i in 0..rcpts {
            input.extend_from_slice(format!("RCPT TO:<user{i}@example.org>\r\n").as_bytes());
        }
        input.extend_from_slice(b"DATA\r\n");
        input.extend_from_slice(&body);
        input.extend_from_slice(b".\r\nQUIT\r\n");
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_with_input(BenchmarkId::new("rcpts", rcpts), &input, |b, input| {
            b.iter(|| {
                let mut s: Session<String> = Session::new(SessionConfig {
                    hostname: "mx.test".into(),
                    mode: Mode::Lmtp,
                    starttls: false,
                    max_message_size: 50 << 20,
                    max_recipients: 1000,
                    max_line_length: 4096,
                    max_commands: 10_000,
                    max_errors: 10,
                });
                let mut out = Vec::new();
                let mut spooled = 0;
                s.feed(black_box(input));
                while let Some(ev) = s.poll() {
                    match ev {
                        Event::Reply(r) => r.write_to(&mut out),
                        Event::CheckRecipient { rcpt, .. } => s.rcpt_checked(Ok(rcpt.to_string())),
                        Event::Body(b) => spooled += b.len(),
                        Event::Deliver(tx) => {
                            let n = tx.recipients.len();
                            s.delivered(vec![
                                mailstow_proto::reply::Reply::new(
                                    250, "2.0.0", "Saved"
                                );
                                n
                            ]);
                        }
                        _ => {}
                    }
                }
                (out, spooled)
            })
        });
    }
    g.finish();
}

fn data_receiver(c: &mut Criterion) {
    let mut g = c.benchmark_group("data_receiver");
    for size in [4096, 100 * 1024, 10 << 20] {
        let mut wire = stuff(&message(size));
        wire.extend_from_slice(b".\r\n");
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
            let mut out = Vec::with_capacity(wire.len());
            b.iter(|| {
                out.clear();
                let mut r = DataReceiver::new(64 << 20);
                // As the network hands it over: 16 KiB reads.
                let mut done = false;
                for chunk in wire.chunks(16 * 1024) {
                    let mut at = 0;
                    while at < chunk.len() && !done {
                        let (used, end) = r.feed(&chunk[at..], &mut out);
                        at += used;
                        done = end;
                    }
                }
                assert!(done);
                out.len()
            })
        });
    }
    g.finish();
}

fn header_block(c: &mut Criterion) {
    let origin = Origin::Remote {
        protocol: Protocol::Lmtp,
        helo: "mx.example.net".into(),
        peer: "127.0.0.1".into(),
        utf8: false,
        tls: None,
    };
    let now = SystemTime::now();
    c.bench_function("header_block", |b| {
        b.iter(|| {
            headers::build(black_box(&Trace {
                return_path: Some("sender@example.net"),
                delivered_to: Some("alice@example.org"),
                origin: &origin,
                hostname: "mx.example.org",
                id: "6Q2V23WPJSX0ZBB0000PY",
                received: now,
            }))
        })
    });
}

fn folder_names(c: &mut Criterion) {
    let mut g = c.benchmark_group("folder_name");
    for name in ["INBOX", "Lists.rust", "Entwürfe.Überweisungen", "Входящие"] {
        g.bench_with_input(BenchmarkId::new("storage", name), name, |b, n| {
            b.iter(|| storage_name(black_box(n), FolderEncoding::Utf7).unwrap())
        });
        let stored = storage_name(name, FolderEncoding::Utf7).unwrap();
        g.bench_with_input(BenchmarkId::new("display", name), &stored, |b, s| {
            b.iter(|| display_name(black_box(s), FolderEncoding::Utf7).unwrap())
        });
    }
    g.finish();
}

/// What `[metrics]` costs a delivery: its outcome (counter, histogram,
/// bytes), the file and directory fsync times, and the queue gauge in and
/// out, recorded into the Prometheus recorder.
fn metrics_per_delivery(c: &mut Criterion) {
    use mailstow::deliver::RcptOutcome;
    use std::time::Duration;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let delivered = RcptOutcome::Delivered {
        folder: "INBOX".into(),
    };
    c.bench_function("metrics/one delivery", |b| {
        b.iter(|| {
            mailstow::metrics::queue(1.0);
            mailstow::metrics::queue(-1.0);
            mailstow::metrics::fsync("file", Duration::from_micros(900));
            mailstow::metrics::fsync("directory", Duration::from_micros(700));
            let outcome = black_box(&delivered);
            mailstow::metrics::delivery(
                outcome.status(),
                outcome.reason_label(),
                4096,
                Duration::from_micros(1800),
            );
        })
    });
    // Rendered, so the recorder really holds the samples.
    assert!(handle.render().contains("mailstow_deliveries_total"));
}

criterion_group!(
    benches,
    parser,
    session,
    data_receiver,
    header_block,
    folder_names,
    metrics_per_delivery
);
criterion_main!(benches);

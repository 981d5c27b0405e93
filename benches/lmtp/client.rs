//! lmtp-client: a benchmark load generator that records the latency of every
//! LMTP transaction (MAIL FROM to the last per-recipient reply after DATA)
//! over persistent sessions, and can hold idle connections open for memory
//! measurements. Talks only to loopback addresses or unix sockets; must not
//! be used as a test of correctness (it counts refusals, it does not judge
//! them).
//!
//! Built with `cargo build --release --example lmtp-client`; driven by
//! benches/lmtp/bench.py. Run with `--help` for the options.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    target: String,
    count: usize,
    concurrency: usize,
    size: usize,
    rcpts: usize,
    users: usize,
    user_prefix: String,
    domain: String,
    label: String,
    idle: usize,
    hold: u64,
    /// Transactions per second over all sessions (0: as fast as they go).
    rate: f64,
    csv: bool,
}

const USAGE: &str = "usage: lmtp-client --target 127.0.0.1:PORT|unix:PATH [-n COUNT] [-c CONC]
  [--size BODY_BYTES] [--rcpts R] [--users U] [--user-prefix user] [--domain example.test]
  [--label NAME] [--csv] [--rate PER_SECOND] [--idle N --hold SECONDS]
Message i goes to {prefix}{(i*R + k) % U}@domain, k = 0..R-1.
--idle N opens N sessions, sends LHLO on each, holds them for --hold seconds and exits.
CSV: label,count,concurrency,size,rcpts,wall_s,msgs_per_s,deliveries_per_s,p50_ms,p90_ms,p99_ms,max_ms,errors";

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        target: String::new(),
        count: 2000,
        concurrency: 16,
        size: 4096,
        rcpts: 1,
        users: 100,
        user_prefix: "user".into(),
        domain: "example.test".into(),
        label: "server".into(),
        idle: 0,
        hold: 10,
        rate: 0.0,
        csv: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match a.as_str() {
            "--target" => o.target = val()?,
            "-n" | "--count" => o.count = num(val()?)?,
            "-c" | "--concurrency" => o.concurrency = num(val()?)?.max(1),
            "--size" => o.size = num(val()?)?,
            "--rcpts" => o.rcpts = num(val()?)?.max(1),
            "--users" => o.users = num(val()?)?.max(1),
            "--user-prefix" => o.user_prefix = val()?,
            "--domain" => o.domain = val()?,
            "--label" => o.label = val()?,
            "--idle" => o.idle = num(val()?)?,
            "--hold" => o.hold = num(val()?)? as u64,
            "--rate" => o.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--csv" => o.csv = true,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    if o.target.is_empty() {
        return Err(USAGE.into());
    }
    Ok(o)
}

/// A connected session: buffered reads, direct writes.
struct Session {
    rd: BufReader<Box<dyn Read + Send>>,
    wr: Box<dyn Write + Send>,
    line: String,
}

fn connect(target: &str) -> io::Result<Session> {
    let (rd, wr): (Box<dyn Read + Send>, Box<dyn Write + Send>) =
        if let Some(path) = target.strip_prefix("unix:") {
            let s = UnixStream::connect(path)?;
            (Box::new(s.try_clone()?), Box::new(s))
        } else {
            let addr: SocketAddr = target
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
            if !loopback(addr.ip()) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "refusing a non-loopback target",
                ));
            }
            let s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(300)))?;
            (Box::new(s.try_clone()?), Box::new(s))
        };
    let mut s = Session {
        rd: BufReader::with_capacity(16 * 1024, rd),
        wr,
        line: String::new(),
    };
    s.expect(1)?; // greeting
    s.wr.write_all(b"LHLO bench.client\r\n")?;
    s.expect(1)?;
    Ok(s)
}

fn loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

impl Session {
    /// Reads `n` replies (multi-line ones whole); returns how many were not 2xx/3xx.
    fn expect(&mut self, n: usize) -> io::Result<usize> {
        let mut bad = 0;
        for _ in 0..n {
            loop {
                self.line.clear();
                if self.rd.read_line(&mut self.line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let b = self.line.as_bytes();
                if b.len() < 4 || b[3] != b'-' {
                    if !matches!(b.first(), Some(b'2' | b'3')) {
                        bad += 1;
                    }
                    break;
                }
            }
        }
        Ok(bad)
    }

    /// One pipelined transaction; the number of refused replies.
    fn transaction(&mut self, i: usize, o: &Opts, body: &[u8]) -> io::Result<usize> {
        let mut cmds = String::from("MAIL FROM:<bench@example.test>\r\n");
        for k in 0..o.rcpts {
            let u = (i * o.rcpts + k) % o.users;
            cmds.push_str(&format!("RCPT TO:<{}{u}@{}>\r\n", o.user_prefix, o.domain));
        }
        cmds.push_str("DATA\r\n");
        self.wr.write_all(cmds.as_bytes())?;
        let mut bad = self.expect(1 + o.rcpts)?;
        // 354, or a refusal of DATA when no recipient was accepted
        self.line.clear();
        let refused_data = self.expect(1)? > 0;
        if refused_data {
            return Ok(bad + o.rcpts);
        }
        let head = format!(
            "From: <bench@example.test>\r\nTo: <{}0@{}>\r\nSubject: bench {i}\r\n\
             Message-ID: <bench-{i}-{}@client.example.test>\r\n\
             Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\n",
            o.user_prefix,
            o.domain,
            std::process::id()
        );
        self.wr.write_all(head.as_bytes())?;
        self.wr.write_all(body)?;
        self.wr.write_all(b".\r\n")?;
        bad += self.expect(o.rcpts)?;
        Ok(bad)
    }
}

/// `size` bytes of 78-byte lines (never starting with '.'), CRLF-ended.
fn body(size: usize) -> Vec<u8> {
    let line = [b"x".repeat(76), b"\r\n".to_vec()].concat();
    let mut b = Vec::with_capacity(size + 80);
    while b.len() < size {
        b.extend_from_slice(&line);
    }
    b.truncate(size);
    if !b.ends_with(b"\r\n") {
        b.extend_from_slice(b"\r\n");
    }
    b
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = (sorted.len() - 1) as f64 * p / 100.0;
    let f = k.floor() as usize;
    let c = (f + 1).min(sorted.len() - 1);
    let v = sorted[f] as f64 + (sorted[c] as f64 - sorted[f] as f64) * (k - f as f64);
    v / 1000.0
}

fn idle(o: &Opts) -> Result<(), String> {
    let mut held = Vec::with_capacity(o.idle);
    for _ in 0..o.idle {
        held.push(connect(&o.target).map_err(|e| format!("connect: {e}"))?);
    }
    println!("holding {} idle sessions for {} s", held.len(), o.hold);
    io::stdout().flush().ok();
    std::thread::sleep(Duration::from_secs(o.hold));
    for s in &mut held {
        let _ = s.wr.write_all(b"QUIT\r\n");
    }
    Ok(())
}

fn run(o: Arc<Opts>) -> Result<(), String> {
    if o.idle > 0 {
        return idle(&o);
    }
    let body = Arc::new(body(o.size));
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..o.concurrency.min(o.count.max(1)))
        .map(|_| {
            let (o, body, next, errors) = (o.clone(), body.clone(), next.clone(), errors.clone());
            std::thread::spawn(move || -> Result<Vec<u64>, String> {
                let mut lat = Vec::new();
                let mut s = connect(&o.target).map_err(|e| format!("connect: {e}"))?;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= o.count {
                        break;
                    }
                    if o.rate > 0.0 {
                        // Transaction i starts no earlier than i / rate.
                        let due = started + Duration::from_secs_f64(i as f64 / o.rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let t = Instant::now();
                    let bad = s
                        .transaction(i, &o, &body)
                        .map_err(|e| format!("transaction {i}: {e}"))?;
                    lat.push(t.elapsed().as_micros() as u64);
                    errors.fetch_add(bad, Ordering::Relaxed);
                }
                let _ = s.wr.write_all(b"QUIT\r\n");
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(o.count);
    for w in workers {
        lat.extend(w.join().map_err(|_| "worker panicked".to_string())??);
    }
    let wall = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let n = lat.len();
    let errors = errors.load(Ordering::Relaxed);
    if o.csv {
        println!(
            "{},{},{},{},{},{:.3},{:.1},{:.1},{:.2},{:.2},{:.2},{:.2},{}",
            o.label,
            n,
            o.concurrency,
            o.size,
            o.rcpts,
            wall,
            n as f64 / wall,
            (n * o.rcpts) as f64 / wall,
            pct(&lat, 50.0),
            pct(&lat, 90.0),
            pct(&lat, 99.0),
            pct(&lat, 100.0),
            errors
        );
    } else {
        println!(
            "{}: {n} transactions in {wall:.2} s ({:.0}/s, {:.0} deliveries/s); \
             latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; {errors} refused",
            o.label,
            n as f64 / wall,
            (n * o.rcpts) as f64 / wall,
            pct(&lat, 50.0),
            pct(&lat, 90.0),
            pct(&lat, 99.0),
            pct(&lat, 100.0)
        );
    }
    if errors > 0 {
        return Err(format!("{errors} replies were refusals"));
    }
    Ok(())
}

fn main() {
    let o = match parse() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(o) {
        eprintln!("lmtp-client: {e}");
        std::process::exit(1);
    }
}

//! Submission tests: a tiny SMTP server on 127.0.0.1:0 in a thread, and a
//! fake sendmail script in a temp dir.

use super::*;
use crate::config::SenderPolicy;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

fn config(smtp: Option<String>, sendmail: Option<PathBuf>, timeout: Duration) -> OutboundConfig {
    OutboundConfig {
        smtp,
        sendmail,
        redirect_sender: SenderPolicy::Sender,
        vacation_sender: SenderPolicy::Null,
        timeout,
    }
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// What the fake server saw: each command line, and the DATA bytes exactly
/// as sent (dot-stuffed, with the final ".").
#[derive(Debug, Default)]
struct Seen {
    commands: Vec<String>,
    data: Vec<u8>,
}

/// One-connection SMTP server. `reply` answers a command line (or "." at
/// the end of DATA) with full reply text, CRLF-separated lines.
fn serve(
    greeting: &'static str,
    reply: impl Fn(&str) -> String + Send + 'static,
) -> (String, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let mut seen = Seen::default();
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut input = BufReader::new(stream);
        out.write_all(format!("{greeting}\r\n").as_bytes()).unwrap();
        let mut in_data = false;
        loop {
            let mut line = Vec::new();
            if input.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                break;
            }
            if in_data {
                seen.data.extend_from_slice(&line);
                if line != b".\r\n" {
                    continue;
                }
                in_data = false;
                if out
                    .write_all(format!("{}\r\n", reply(".")).as_bytes())
                    .is_err()
                {
                    break;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            seen.commands.push(text.clone());
            let answer = reply(&text);
            if out.write_all(format!("{answer}\r\n").as_bytes()).is_err() {
                break;
            }
            if answer.starts_with("354") {
                in_data = true;
            }
            if text == "QUIT" {
                break;
            }
        }
        seen
    });
    (addr, handle)
}

/// A relay that accepts everything and announces `extensions`.
fn standard(extensions: &'static str) -> impl Fn(&str) -> String + Send + 'static {
    move |line: &str| {
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => format!("250-relay.test greets you{extensions}\r\n250 PIPELINING"),
            "HELO" => "250 relay.test".to_owned(),
            "MAIL" | "RCPT" => "250 2.1.0 ok".to_owned(),
            "DATA" => "354 go ahead".to_owned(),
            "." => "250 2.0.0 queued as 1234".to_owned(),
            "QUIT" => "221 2.0.0 bye".to_owned(),
            _ => "500 5.5.2 what".to_owned(),
        }
    }
}

const BOTH: &str = "\r\n250-8BITMIME\r\n250-SMTPUTF8";

fn smtp_outbound(addr: String) -> Outbound {
    Outbound::new(
        &config(Some(addr), None, Duration::from_secs(5)),
        "mx.example.org",
    )
}

#[test]
fn smtp_sends_the_exact_commands_and_dot_stuffed_data() {
    let (addr, server) = serve("220 relay.test ESMTP", standard(BOTH));
    let message = b"Subject: hi\n\n.leading dot\r\n..two\nlast line without end";
    smtp_outbound(addr)
        .submit(
            Some("alice@example.org"),
            &rcpts(&["bob@example.net", "carol@example.net"]),
            message,
        )
        .unwrap();
    let seen = server.join().unwrap();
    assert_eq!(
        seen.commands,
        [
            "EHLO mx.example.org",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.net>",
            "RCPT TO:<carol@example.net>",
            "DATA",
            "QUIT"
        ]
    );
    assert_eq!(
        seen.data,
        b"Subject: hi\r\n\r\n..leading dot\r\n...two\r\nlast line without end\r\n.\r\n"
    );
}

#[test]
fn smtp_null_sender_is_empty_brackets() {
    let (addr, server) = serve("220 relay.test", standard(""));
    smtp_outbound(addr)
        .submit(None, &rcpts(&["bob@example.net"]), b"x\r\n")
        .unwrap();
    let seen = server.join().unwrap();
    assert_eq!(seen.commands[1], "MAIL FROM:<>");
}

#[test]
fn smtp_asks_for_smtputf8_and_8bitmime_when_needed_and_offered() {
    let (addr, server) = serve("220 relay.test", standard(BOTH));
    smtp_outbound(addr)
        .submit(
            Some("jörg@example.org"),
            &rcpts(&["bob@example.net"]),
            "Subject: Grüße\r\n\r\nbody\r\n".as_bytes(),
        )
        .unwrap();
    let seen = server.join().unwrap();
    assert_eq!(
        seen.commands[1],
        "MAIL FROM:<jörg@example.org> BODY=8BITMIME SMTPUTF8"
    );

    // A non-ASCII recipient alone needs SMTPUTF8 too; ASCII 7-bit needs
    // neither.
    let (addr, server) = serve("220 relay.test", standard(BOTH));
    smtp_outbound(addr)
        .submit(
            Some("a@example.org"),
            &rcpts(&["zoë@example.net"]),
            b"x\r\n",
        )
        .unwrap();
    assert_eq!(
        server.join().unwrap().commands[1],
        "MAIL FROM:<a@example.org> SMTPUTF8"
    );
}

#[test]
fn smtp_without_the_extensions_sends_8bit_plainly_and_refuses_utf8_addresses() {
    let (addr, server) = serve("220 relay.test", standard(""));
    smtp_outbound(addr.clone())
        .submit(
            Some("a@example.org"),
            &rcpts(&["b@example.net"]),
            "Grüße\r\n".as_bytes(),
        )
        .unwrap();
    assert_eq!(
        server.join().unwrap().commands[1],
        "MAIL FROM:<a@example.org>"
    );

    let (addr, server) = serve("220 relay.test", standard(""));
    let err = smtp_outbound(addr)
        .submit(Some("jörg@example.org"), &rcpts(&["b@example.net"]), b"x")
        .unwrap_err();
    assert!(matches!(err, OutboundError::Unsupported { .. }), "{err}");
    assert!(err.is_permanent());
    let seen = server.join().unwrap();
    assert_eq!(seen.commands, ["EHLO mx.example.org", "QUIT"]);
}

#[test]
fn smtp_a_refused_recipient_fails_the_whole_submission() {
    let (addr, server) = serve("220 relay.test", |line: &str| {
        if line.contains("carol") {
            "550-5.1.1 no such user\r\n550 5.1.1 really".to_owned()
        } else {
            standard(BOTH)(line)
        }
    });
    let err = smtp_outbound(addr)
        .submit(
            Some("a@example.org"),
            &rcpts(&["bob@example.net", "carol@example.net"]),
            b"x\r\n",
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("RCPT TO:<carol@example.net>"), "{text}");
    assert!(
        text.contains("550") && text.contains("no such user / 5.1.1 really"),
        "{text}"
    );
    assert!(err.is_permanent());
    let seen = server.join().unwrap();
    assert!(
        !seen.commands.iter().any(|c| c == "DATA"),
        "{:?}",
        seen.commands
    );
    assert_eq!(seen.commands.last().map(String::as_str), Some("QUIT"));
}

#[test]
fn smtp_a_temporary_refusal_of_the_message_is_not_permanent() {
    let (addr, server) = serve("220 relay.test", |line: &str| {
        if line == "." {
            "451 4.3.0 try later".to_owned()
        } else {
            standard("")(line)
        }
    });
    let err = smtp_outbound(addr)
        .submit(None, &rcpts(&["b@example.net"]), b"x\r\n")
        .unwrap_err();
    assert!(err.to_string().contains("end of data"), "{err}");
    assert!(!err.is_permanent());
    server.join().unwrap();
}

#[test]
fn smtp_falls_back_to_helo_when_ehlo_is_refused() {
    let (addr, server) = serve("220-relay.test\r\n220 old server", |line: &str| {
        if line.starts_with("EHLO") {
            "502 5.5.1 not implemented".to_owned()
        } else {
            standard(BOTH)(line)
        }
    });
    smtp_outbound(addr)
        .submit(
            Some("a@example.org"),
            &rcpts(&["b@example.net"]),
            "ü".as_bytes(),
        )
        .unwrap();
    let seen = server.join().unwrap();
    assert_eq!(
        seen.commands[..3],
        [
            "EHLO mx.example.org",
            "HELO mx.example.org",
            "MAIL FROM:<a@example.org>"
        ]
    );
}

#[test]
fn smtp_a_refusing_greeting_is_an_error() {
    let (addr, server) = serve("554 5.3.2 go away", standard(""));
    let err = smtp_outbound(addr)
        .submit(None, &rcpts(&["b@example.net"]), b"x")
        .unwrap_err();
    assert!(err.to_string().contains("greeting"), "{err}");
    assert_eq!(server.join().unwrap().commands, ["QUIT"]);
}

#[test]
fn smtp_a_server_that_never_answers_gets_a_timeout_and_the_connection_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        // Accept, say nothing, and see the client hang up.
        let (mut conn, _) = listener.accept().unwrap();
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut conn, &mut rest).unwrap();
        rest
    });
    let timeout = Duration::from_millis(300);
    let outbound = Outbound::new(&config(Some(addr), None, timeout), "mx.example.org");
    let start = Instant::now();
    let err = outbound
        .submit(None, &rcpts(&["b@example.net"]), b"x")
        .unwrap_err();
    assert!(matches!(err, OutboundError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("greeting"), "{err}");
    // A lower bound the deadline guarantees, however loaded the machine.
    assert!(start.elapsed() >= timeout);
    assert_eq!(server.join().unwrap(), b"", "closed without a command");
}

#[test]
fn smtp_a_server_that_stalls_after_data_times_out_too() {
    let (stall_tx, stall_rx) = mpsc::channel::<()>();
    let stall_rx = std::sync::Mutex::new(stall_rx);
    let (addr, server) = serve("220 relay.test", move |line: &str| {
        if line == "." {
            // Hold the reply until the client has given up.
            let _ = stall_rx.lock().map(|rx| rx.recv());
        }
        standard("")(line)
    });
    let timeout = Duration::from_millis(400);
    let outbound = Outbound::new(&config(Some(addr), None, timeout), "mx.example.org");
    let err = outbound
        .submit(None, &rcpts(&["b@example.net"]), b"x")
        .unwrap_err();
    assert!(matches!(err, OutboundError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("end of data"), "{err}");
    stall_tx.send(()).unwrap();
    let _ = server.join();
}

/// A loopback port with nothing listening.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    // Make sure it really refuses.
    assert!(TcpStream::connect(&addr).is_err());
    addr
}

#[test]
fn smtp_connection_refused_names_the_server() {
    let addr = closed_port();
    let err = smtp_outbound(addr.clone())
        .submit(None, &rcpts(&["b@example.net"]), b"x")
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&addr) && text.contains("connect"), "{text}");
    assert!(!err.is_permanent());
}

#[test]
fn addresses_that_could_inject_commands_are_refused_before_sending() {
    let outbound = smtp_outbound(closed_port());
    for bad in [
        "a@b>\r\nRCPT TO:<evil@example.net",
        "a@b\nx",
        "<a@b>",
        "-oQ/tmp@example.org",
        "",
    ] {
        let err = outbound
            .submit(Some("a@example.org"), &rcpts(&[bad]), b"x")
            .unwrap_err();
        assert!(
            matches!(err, OutboundError::BadAddress(_)),
            "{bad:?}: {err}"
        );
    }
    let err = outbound
        .submit(Some("x>\r\nDATA"), &rcpts(&["b@example.net"]), b"x")
        .unwrap_err();
    assert!(matches!(err, OutboundError::BadAddress(_)), "{err}");
    assert!(matches!(
        outbound.submit(None, &[], b"x"),
        Err(OutboundError::NoRecipients)
    ));
}

#[test]
fn nothing_configured_is_an_error() {
    let outbound = Outbound::new(&config(None, None, Duration::from_secs(1)), "h");
    assert!(matches!(
        outbound.submit(None, &rcpts(&["b@example.net"]), b"x"),
        Err(OutboundError::NotConfigured)
    ));
}

// ---- sendmail ----

/// Write an executable shell script `sendmail` into `dir`.
fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("sendmail");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
        .unwrap();
    file.sync_all().unwrap();
    drop(file);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A sendmail that records its arguments (one a line) and stdin.
fn recording(dir: &Path) -> PathBuf {
    let d = dir.display();
    script(
        dir,
        &format!("printf '%s\\n' \"$@\" > '{d}/argv'\ncat > '{d}/stdin'\nexit 0"),
    )
}

fn sendmail_outbound(path: PathBuf, timeout: Duration) -> Outbound {
    Outbound::new(&config(None, Some(path), timeout), "mx.example.org")
}

#[test]
fn sendmail_gets_the_envelope_as_arguments_and_the_message_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let outbound = sendmail_outbound(recording(dir.path()), Duration::from_secs(10));
    outbound
        .submit(
            Some("alice@example.org"),
            &rcpts(&["bob@example.net", "carol@example.net"]),
            b"Subject: hi\r\n\r\n.dot line\r\nend\r\n",
        )
        .unwrap();
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert_eq!(
        argv,
        "-i\n-f\nalice@example.org\n--\nbob@example.net\ncarol@example.net\n"
    );
    let stdin = std::fs::read(dir.path().join("stdin")).unwrap();
    assert_eq!(stdin, b"Subject: hi\n\n.dot line\nend\n");
}

#[test]
fn sendmail_null_sender_is_angle_brackets() {
    let dir = tempfile::tempdir().unwrap();
    let outbound = sendmail_outbound(recording(dir.path()), Duration::from_secs(10));
    outbound
        .submit(Some(""), &rcpts(&["bob@example.net"]), b"x\n")
        .unwrap();
    let argv = std::fs::read_to_string(dir.path().join("argv")).unwrap();
    assert_eq!(argv, "-i\n-f\n<>\n--\nbob@example.net\n");
}

#[test]
fn sendmail_nonzero_exit_is_an_error_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        "cat > /dev/null\necho 'sendmail: fatal: no such user' >&2\nexit 75",
    );
    let err = sendmail_outbound(path, Duration::from_secs(10))
        .submit(None, &rcpts(&["bob@example.net"]), b"x\n")
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("exit status 75"), "{text}");
    assert!(text.contains("sendmail: fatal: no such user"), "{text}");
    assert!(!err.is_permanent());
}

#[test]
fn sendmail_stderr_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(
        dir.path(),
        "cat > /dev/null\ni=0\nwhile [ $i -lt 2000 ]; do echo 'noise noise noise' >&2; i=$((i+1)); done\nexit 1",
    );
    let err = sendmail_outbound(path, Duration::from_secs(10))
        .submit(None, &rcpts(&["bob@example.net"]), b"x\n")
        .unwrap_err();
    let OutboundError::SendmailFailed { stderr, .. } = &err else {
        panic!("{err}");
    };
    assert!(stderr.len() <= 1100, "{}", stderr.len());
    assert!(stderr.starts_with("noise noise noise"));
}

#[test]
fn sendmail_that_hangs_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Holds stdin open, and its child (sleep) holds stderr.
    let path = script(dir.path(), "sleep 3600");
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = sendmail_outbound(path, timeout)
        .submit(None, &rcpts(&["bob@example.net"]), b"x\n")
        .unwrap_err();
    assert!(err.to_string().contains("killed"), "{err}");
    // A lower bound the deadline guarantees, however loaded the machine.
    assert!(start.elapsed() >= timeout);
}

/// Is process `pid` gone (or a zombie: dead, not yet reaped)?
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) state ...": the comm may hold spaces and parentheses.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Checks `check` until it gives a value, yielding in between; a minute
/// without is a failure (not a measurement).
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < give_up, "{what}");
        std::thread::yield_now();
    }
}

#[test]
fn a_killed_sendmail_takes_the_processes_it_started_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild");
    let path = script(
        dir.path(),
        &format!("sleep 3600 &\necho $! > {}\nwait", pid_file.display()),
    );
    let mut child = sendmail::spawn(&path, None, &["bob@example.net".to_owned()]).unwrap();
    let pid: i32 = wait_for("the script never started its child", || {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    });
    sendmail::kill(&mut child);
    // SIGKILL went to the group; the kernel ends each process on its own
    // schedule, so wait for that, not for a time.
    wait_for("the sendmail's child outlived the kill", || {
        dead(pid).then_some(())
    });
}

#[test]
fn sendmail_that_exits_without_reading_a_large_message_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = script(dir.path(), "exit 0");
    let message = vec![b'x'; 4 * 1024 * 1024];
    let err = sendmail_outbound(path, Duration::from_secs(10))
        .submit(None, &rcpts(&["bob@example.net"]), &message)
        .unwrap_err();
    assert!(err.to_string().contains("without reading"), "{err}");
}

#[test]
fn sendmail_that_does_not_exist_is_an_error() {
    let err = sendmail_outbound(
        PathBuf::from("/nonexistent/mailstow-test/sendmail"),
        Duration::from_secs(1),
    )
    .submit(None, &rcpts(&["bob@example.net"]), b"x\n")
    .unwrap_err();
    assert!(err.to_string().contains("cannot run"), "{err}");
}

#[test]
fn an_unreachable_relay_falls_back_to_sendmail() {
    let dir = tempfile::tempdir().unwrap();
    let outbound = Outbound::new(
        &config(
            Some(closed_port()),
            Some(recording(dir.path())),
            Duration::from_secs(10),
        ),
        "mx.example.org",
    );
    outbound
        .submit(None, &rcpts(&["bob@example.net"]), b"x\r\n")
        .unwrap();
    assert!(dir.path().join("stdin").exists());
}

#[test]
fn a_relay_that_refuses_a_recipient_does_not_fall_back() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, server) = serve("220 relay.test", |line: &str| {
        if line.starts_with("RCPT") {
            "550 5.1.1 no".to_owned()
        } else {
            standard("")(line)
        }
    });
    let outbound = Outbound::new(
        &config(
            Some(addr),
            Some(recording(dir.path())),
            Duration::from_secs(10),
        ),
        "mx.example.org",
    );
    let err = outbound
        .submit(None, &rcpts(&["bob@example.net"]), b"x\r\n")
        .unwrap_err();
    assert!(
        matches!(err, OutboundError::Rejected { code: 550, .. }),
        "{err}"
    );
    assert!(!dir.path().join("stdin").exists());
    server.join().unwrap();
}

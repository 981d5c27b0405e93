//! Hand one message to a sendmail-compatible binary:
//! `sendmail -i -f <from|<>> -- rcpt...` with the message on stdin in local
//! (LF) line ends; exit 0 is success, anything else an error carrying the
//! first KiB of its stderr. The child runs in its own process group, which
//! is killed at the deadline. Must not use a shell, pass `-t` (recipients
//! come from the envelope only), or wait past the deadline.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::OutboundError;

/// Stderr kept for the error message.
const MAX_STDERR: usize = 1024;
/// Spawning a binary that is being replaced fails with ETXTBSY; try again.
const SPAWN_TRIES: u32 = 5;

pub(super) fn send(
    path: &Path,
    from: Option<&str>,
    to: &[String],
    message: &[u8],
    deadline: Instant,
) -> Result<(), OutboundError> {
    let fail = |detail: String| OutboundError::Sendmail {
        path: path.to_owned(),
        detail,
    };
    let mut child = spawn(path, from, to).map_err(|e| fail(format!("cannot run: {e}")))?;
    let (Some(mut stdin), Some(mut stderr)) = (child.stdin.take(), child.stderr.take()) else {
        kill(&mut child);
        return Err(fail("no pipes to the child".to_owned()));
    };

    // Writer and reader run on their own threads so a child that neither
    // reads nor exits cannot block us past the deadline; they are not
    // joined, only heard from, for the same reason.
    let input = mailstow_maildir::to_lf(message);
    let (wrote_tx, wrote_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = stdin.write_all(&input).and_then(|()| stdin.flush());
        drop(stdin);
        let _ = wrote_tx.send(result);
    });
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::with_capacity(256);
        let mut chunk = [0u8; 4096];
        loop {
            match stderr.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = MAX_STDERR.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
        let _ = err_tx.send(kept);
    });

    let Some(status) = wait_until(&mut child, deadline) else {
        kill(&mut child);
        return Err(fail(format!(
            "killed: no exit within the time limit{}",
            stderr_suffix(&err_rx, Duration::from_millis(100))
        )));
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let stderr_text = err_rx
        .recv_timeout(left)
        .map(|b| printable(&b))
        .unwrap_or_default();
    if !status.success() {
        return Err(OutboundError::SendmailFailed {
            path: path.to_owned(),
            status: describe(status),
            stderr: stderr_text,
        });
    }
    match wrote_rx.recv_timeout(left) {
        Ok(Ok(())) => {
            tracing::debug!(path = %path.display(), rcpts = to.len(), size = message.len(), "handed to sendmail");
            Ok(())
        }
        Ok(Err(e)) => Err(fail(format!(
            "exited 0 without reading the whole message: {e}"
        ))),
        Err(_) => Err(fail("exited 0 but its input is still open".to_owned())),
    }
}

pub(super) fn spawn(path: &Path, from: Option<&str>, to: &[String]) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        let result = Command::new(path)
            .arg("-i")
            .arg("-f")
            .arg(from.unwrap_or("<>"))
            .arg("--")
            .args(to)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own group, so a timeout kills whatever it started too.
            .process_group(0)
            .spawn();
        match result {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < SPAWN_TRIES => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// The exit status, or None when the deadline passed first.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            // Cannot happen for our own child; treat as still running.
            Err(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// SIGKILL the child's process group and reap the child.
pub(super) fn kill(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

fn stderr_suffix(rx: &mpsc::Receiver<Vec<u8>>, wait: Duration) -> String {
    match rx.recv_timeout(wait).map(|b| printable(&b)) {
        Ok(text) if !text.is_empty() => format!(": {text}"),
        _ => String::new(),
    }
}

/// Stderr as one line of text: control characters become spaces.
fn printable(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim().to_owned();
    if bytes.len() >= MAX_STDERR {
        text + "…"
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_one_bounded_line() {
        assert_eq!(printable(b" fatal:\nbad\taddress \n"), "fatal: bad address");
        let long = vec![b'x'; MAX_STDERR];
        assert!(printable(&long).ends_with('…'));
    }
}

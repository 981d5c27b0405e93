//! Fuzz the LMTP and SMTP session state machine: arbitrary client bytes,
//! split at boundaries chosen by the input (whose first byte's low bit picks
//! the mode), with a host that accepts every other recipient and whose
//! STARTTLS handshakes always succeed. Must not panic, and the input buffer must stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailstow_proto::{Event, Mode, Reply, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else { return };
    let mut s: Session<u32> = Session::new(SessionConfig {
        hostname: "fuzz".into(),
        mode: if split & 1 == 0 { Mode::Lmtp } else { Mode::Smtp },
        starttls: true,
        max_message_size: 4096,
        max_recipients: 5,
        max_line_length: 512,
        max_commands: 1000,
        max_errors: 50,
    });
    let step = usize::from(split).max(1);
    let mut n = 0u32;
    for chunk in input.chunks(step) {
        s.feed(chunk);
        while let Some(ev) = s.poll() {
            match ev {
                Event::CheckRecipient { .. } => {
                    n += 1;
                    s.rcpt_checked(if n % 2 == 0 { Ok(n) } else { Err(Reply::new(550, "5.1.1", "no")) });
                }
                Event::Deliver(tx) => {
                    assert!(tx.size <= 4096);
                    let r = tx.recipients.iter().map(|_| Reply::new(250, "2.0.0", "ok")).collect();
                    s.delivered(r);
                }
                Event::StartTls => {
                    assert!(!s.has_pending_input());
                    s.tls_started();
                }
                Event::Reply(r) => {
                    let mut out = Vec::new();
                    r.write_to(&mut out);
                    assert!(out.ends_with(b"\r\n"));
                }
                _ => {}
            }
        }
    }
});

//! systemd integration: listening sockets handed over by socket activation
//! (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, see sd_listen_fds(3))
//! matched to the configured listeners, and sd_notify(3) state changes
//! (READY, STOPPING, RELOADING). Must not bind a socket itself (listener.rs
//! does, for a configured listener that systemd did not hand over), nor
//! unlink a unix socket it was handed (the socket unit owns that file).
//! Outside systemd (no `LISTEN_PID` for us, no `NOTIFY_SOCKET`) every
//! function here does nothing.
//!
//! Matching: a socket's kind comes from its `FileDescriptorName=`: `smtp`
//! is SMTP; `lmtp`, `unknown` (no names given), empty, or systemd's default
//! (the socket unit's name, `*.socket`) is LMTP; any other name is an
//! error. A configured listener whose address equals a handed socket's
//! takes that socket instead of binding; a handed socket that matches no
//! configured listener is served as well, with the protocol its name says.
//! A handed socket whose address is configured for the other protocol, one
//! that is not a listening stream socket, or an SMTP one without `[smtp]
//! domains`, stops the start with an error naming the fd and the reason.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{self, sockopt, AddressFamily, SockType, SockaddrLike, SockaddrStorage};
use sd_notify::NotifyState;

use super::listener::{self, BindError, Bound, Service, SocketFile};
use crate::config::{Config, ListenAddr};
use mailstow_proto::Mode;

/// A socket activation that cannot be used as it is.
#[derive(Debug, thiserror::Error)]
#[error("socket activation (LISTEN_FDS): {0}")]
pub struct ActivationError(pub String);

/// One listening socket systemd handed over.
struct Handed {
    fd: RawFd,
    name: String,
    mode: Mode,
    addr: ListenAddr,
    bound: Bound,
}

/// The sockets systemd handed over and not yet claimed by a configured
/// listener.
pub struct Inherited(Vec<Handed>);

impl Inherited {
    /// Takes the sockets systemd passed to this process (none when
    /// `LISTEN_PID` is not our pid), sets them close-on-exec and unsets the
    /// three variables so that no child sees them. Must run while the
    /// process has one thread (it changes the environment).
    pub fn take(cfg: &Config) -> Result<Inherited, ActivationError> {
        // SAFETY: removing the environment variables is sound only while
        // no other thread reads the environment; this runs before any
        // thread starts (see above, and the caller in serve).
        let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env() }
            .map_err(|e| ActivationError(format!("reading the environment: {e}")))?;
        let mut handed = Vec::new();
        for (fd, name) in fds {
            // SAFETY: systemd passes these fds to us alone (LISTEN_PID is
            // our pid); sd_notify checked they are open (F_GETFD) and
            // nothing else in the process refers to them, so owning them
            // here is sound.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            handed.push(inspect(fd, name, owned)?);
        }
        for h in &handed {
            check_kind(h, cfg)?;
            tracing::info!(
                fd = h.fd,
                name = %h.name,
                listen = %h.addr,
                protocol = mode_name(h.mode),
                "socket from systemd"
            );
        }
        Ok(Inherited(handed))
    }

    /// The socket for the configured listener `addr` of protocol `mode`:
    /// the one systemd handed over at that address, else a new one bound
    /// as without systemd.
    pub fn claim_or_bind(
        &mut self,
        mode: Mode,
        addr: &ListenAddr,
        socket_mode: u32,
    ) -> Result<Bound, BindError> {
        match self
            .0
            .iter()
            .position(|h| h.mode == mode && &h.addr == addr)
        {
            Some(i) => Ok(self.0.swap_remove(i).bound),
            None => listener::bind_std(addr, socket_mode),
        }
    }

    /// The handed sockets no configured listener claimed, each with the
    /// service its name says; served too (the socket unit asked for them).
    pub fn unclaimed(self, cfg: &Config) -> Vec<(Bound, Service)> {
        self.0
            .into_iter()
            .map(|h| {
                tracing::info!(
                    listen = %h.addr,
                    protocol = mode_name(h.mode),
                    "serving a socket from systemd that the configuration does not list"
                );
                let service = Service::new(cfg, h.mode, &h.addr);
                (h.bound, service)
            })
            .collect()
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Lmtp => "lmtp",
        Mode::Smtp => "smtp",
    }
}

/// The protocol a `FileDescriptorName=` stands for.
fn kind_of(name: &str) -> Option<Mode> {
    match name {
        "smtp" => Some(Mode::Smtp),
        "lmtp" | "unknown" | "" => Some(Mode::Lmtp),
        n if n.ends_with(".socket") => Some(Mode::Lmtp),
        _ => None,
    }
}

/// What a handed fd is: a listening TCP or unix stream socket, made
/// non-blocking for the runtime.
fn inspect(fd: RawFd, name: String, owned: OwnedFd) -> Result<Handed, ActivationError> {
    let fail = |reason: String| ActivationError(format!("fd {fd} (name {name:?}): {reason}"));
    let mode = kind_of(&name).ok_or_else(|| {
        fail("unknown FileDescriptorName: name it \"lmtp\" or \"smtp\" in the socket unit".into())
    })?;
    let sock_type = socket::getsockopt(&owned, sockopt::SockType)
        .map_err(|e| fail(format!("not a socket ({e})")))?;
    if sock_type != SockType::Stream {
        return Err(fail(format!(
            "a {sock_type:?} socket, not a stream one (use ListenStream=)"
        )));
    }
    let listening = socket::getsockopt(&owned, sockopt::AcceptConn)
        .map_err(|e| fail(format!("SO_ACCEPTCONN: {e}")))?;
    if !listening {
        return Err(fail(
            "not a listening socket (Accept=yes is not supported)".into(),
        ));
    }
    let local: SockaddrStorage =
        socket::getsockname(owned.as_raw_fd()).map_err(|e| fail(format!("getsockname: {e}")))?;
    let (addr, bound) = match local.family() {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let l = std::net::TcpListener::from(owned);
            let a = l.local_addr().map_err(|e| fail(e.to_string()))?;
            l.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
            (ListenAddr::Tcp(a), Bound::Tcp(l))
        }
        Some(AddressFamily::Unix) => {
            let l = std::os::unix::net::UnixListener::from(owned);
            let a = l.local_addr().map_err(|e| fail(e.to_string()))?;
            let Some(path) = a.as_pathname().map(PathBuf::from) else {
                return Err(fail(
                    "an abstract or unnamed unix socket (give ListenStream= a path)".into(),
                ));
            };
            l.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
            // The socket unit made the file and removes it: never unlinked.
            (ListenAddr::Unix(path), Bound::Unix(l, SocketFile::kept()))
        }
        other => {
            return Err(fail(format!(
                "address family {other:?}, not TCP or a unix socket"
            )))
        }
    };
    Ok(Handed {
        fd,
        name,
        mode,
        addr,
        bound,
    })
}

/// A handed socket must not be configured for the other protocol, and an
/// SMTP one needs the domains SMTP accepts mail for.
fn check_kind(h: &Handed, cfg: &Config) -> Result<(), ActivationError> {
    let fail = |reason: String| {
        ActivationError(format!(
            "fd {} (name {:?}) at {}: {reason}",
            h.fd, h.name, h.addr
        ))
    };
    let (other, other_key, name) = match h.mode {
        Mode::Lmtp => (&cfg.smtp.listen, "[smtp] listen", "smtp"),
        Mode::Smtp => (&cfg.lmtp.listen, "[lmtp] listen", "lmtp"),
    };
    if other.contains(&h.addr) {
        return Err(fail(format!(
            "the configuration lists this address in {other_key}: \
             set FileDescriptorName={name} in the socket unit"
        )));
    }
    if h.mode == Mode::Smtp && cfg.smtp.domains.is_empty() {
        return Err(fail(
            "an SMTP socket, but [smtp] domains is not set (mailstow never relays)".into(),
        ));
    }
    Ok(())
}

/// Tells systemd (`NOTIFY_SOCKET`) something; a failure to tell is logged,
/// never fatal.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// READY=1: the listeners accept and the delivery pool runs (also the end
/// of a reload).
pub fn notify_ready() {
    notify(&[NotifyState::Ready]);
}

/// STOPPING=1: shutdown has begun.
pub fn notify_stopping() {
    notify(&[NotifyState::Stopping]);
}

/// RELOADING=1 with MONOTONIC_USEC (systemd 253 and later expect both in
/// one message); call [`notify_ready`] when the reload is done.
pub fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the monotonic clock for systemd");
            notify(&[NotifyState::Reloading]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        let base = "[storage]\nmail_root = \"/m\"\n[users]\npasswd_file = \"/u\"\n";
        Config::from_toml(
            &format!("{base}{text}"),
            Path::new("t.toml"),
            Path::new("/"),
        )
        .unwrap()
    }

    fn hand(name: &str, owned: OwnedFd) -> Result<Handed, ActivationError> {
        let fd = owned.as_raw_fd();
        inspect(fd, name.into(), owned)
    }

    #[test]
    fn names_give_the_protocol_and_unknown_names_are_refused() {
        assert_eq!(kind_of("smtp"), Some(Mode::Smtp));
        for lmtp in ["lmtp", "unknown", "", "mailstow.socket"] {
            assert_eq!(kind_of(lmtp), Some(Mode::Lmtp), "{lmtp:?}");
        }
        assert_eq!(kind_of("stmp"), None);
        assert_eq!(kind_of("SMTP"), None);
    }

    #[test]
    fn a_tcp_listener_is_taken_with_its_address_and_claimed_by_that_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = hand("lmtp", OwnedFd::from(l)).unwrap();
        assert_eq!(h.addr, ListenAddr::Tcp(addr));
        let cfg = config(&format!("[lmtp]\nlisten = [\"{addr}\"]\n"));
        check_kind(&h, &cfg).unwrap();
        let mut inherited = Inherited(vec![h]);
        // The other protocol at that address is not this socket: it binds
        // anew, and fails because the handed socket holds the port.
        assert!(inherited
            .claim_or_bind(Mode::Smtp, &ListenAddr::Tcp(addr), 0o600)
            .is_err());
        let b = inherited
            .claim_or_bind(Mode::Lmtp, &ListenAddr::Tcp(addr), 0o600)
            .unwrap();
        assert!(matches!(b, Bound::Tcp(ref t) if t.local_addr().unwrap() == addr));
        assert!(inherited.unclaimed(&cfg).is_empty());
    }

    #[test]
    fn an_unclaimed_socket_is_served_with_the_protocol_of_its_name() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = config("[smtp]\ndomains = [\"example.org\"]\n");
        let h = hand("smtp", OwnedFd::from(l)).unwrap();
        check_kind(&h, &cfg).unwrap();
        let rest = Inherited(vec![h]).unclaimed(&cfg);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1.mode, Mode::Smtp);
    }

    #[test]
    fn a_socket_configured_for_the_other_protocol_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let cfg = config(&format!(
            "[smtp]\nlisten = [\"{addr}\"]\ndomains = [\"example.org\"]\n"
        ));
        let h = hand("lmtp", OwnedFd::from(l)).unwrap();
        let e = check_kind(&h, &cfg).unwrap_err().to_string();
        assert!(e.contains("[smtp] listen"), "{e}");
        assert!(e.contains("FileDescriptorName=smtp"), "{e}");
    }

    #[test]
    fn an_smtp_socket_without_smtp_domains_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let h = hand("smtp", OwnedFd::from(l)).unwrap();
        let e = check_kind(&h, &config("")).unwrap_err().to_string();
        assert!(e.contains("[smtp] domains"), "{e}");
    }

    #[test]
    fn a_unix_listener_is_taken_by_path_and_its_file_is_left_to_systemd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmtp.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let h = hand("mailstow.socket", OwnedFd::from(l)).unwrap();
        assert_eq!(h.mode, Mode::Lmtp);
        assert_eq!(h.addr, ListenAddr::Unix(path.clone()));
        let mut inherited = Inherited(vec![h]);
        let b = inherited
            .claim_or_bind(Mode::Lmtp, &ListenAddr::Unix(path.clone()), 0o600)
            .unwrap();
        drop(b);
        assert!(path.exists(), "a socket file systemd made is never removed");
    }

    #[test]
    fn sockets_that_cannot_listen_are_refused_with_the_reason() {
        let unnamed = hand(
            "lmtp",
            OwnedFd::from(std::fs::File::open("/dev/null").unwrap()),
        );
        assert!(unnamed.err().unwrap().to_string().contains("not a socket"));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = hand("lmtp", OwnedFd::from(udp)).err().unwrap().to_string();
        assert!(e.contains("not a stream"), "{e}");
        // Bound but not listening.
        let s = socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            socket::SockFlag::empty(),
            None,
        )
        .unwrap();
        let e = hand("lmtp", s).err().unwrap().to_string();
        assert!(e.contains("not a listening socket"), "{e}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = hand("bogus", OwnedFd::from(l)).err().unwrap().to_string();
        assert!(
            e.contains("\"bogus\"") && e.contains("FileDescriptorName"),
            "{e}"
        );
    }
}

//! Binding the LMTP and SMTP listeners: TCP (IPv4 and IPv6) and unix
//! sockets (mode set, a stale socket file replaced, the file removed when
//! the listener is dropped unless systemd made it), each with the [`Service`] it offers. Must not
//! accept or speak the protocol.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

use crate::config::{Config, ListenAddr};
use mailstow_proto::Mode;

/// What a listener's connections get: the protocol, and STARTTLS when it
/// is offered there.
#[derive(Clone)]
pub struct Service {
    pub mode: Mode,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Service {
    /// The service of a listener on `addr`: STARTTLS with `[tls]` on TCP
    /// SMTP listeners, and on TCP LMTP ones with `[lmtp] tls` (a unix
    /// socket never leaves the machine).
    pub fn new(cfg: &Config, mode: Mode, addr: &ListenAddr) -> Service {
        let wanted = match mode {
            Mode::Smtp => true,
            Mode::Lmtp => cfg.lmtp.tls,
        };
        let tls = match (addr, &cfg.tls) {
            (ListenAddr::Tcp(_), Some(t)) if wanted => Some(tokio_rustls::TlsAcceptor::from(
                std::sync::Arc::clone(&t.server),
            )),
            _ => None,
        };
        Service { mode, tls }
    }
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, SocketFile),
}

/// Removes the socket file when dropped (at exit), unless the socket came
/// from systemd (whose socket unit owns the file).
pub struct SocketFile(Option<PathBuf>);

impl SocketFile {
    /// A socket file that is not ours to remove.
    pub fn kept() -> SocketFile {
        SocketFile(None)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {reason}")]
pub struct BindError {
    pub addr: String,
    pub reason: String,
}

/// A listener bound but not yet handed to the runtime: what `serve` holds
/// while it gives up root.
pub enum Bound {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, SocketFile),
}

impl Bound {
    /// Hands the socket to the runtime. Must run inside it.
    pub fn into_listener(self) -> io::Result<Listener> {
        match self {
            Bound::Tcp(l) => TcpListener::from_std(l).map(Listener::Tcp),
            Bound::Unix(l, guard) => UnixListener::from_std(l).map(|l| Listener::Unix(l, guard)),
        }
    }
}

/// Bind one address. Must run inside the tokio runtime.
pub fn bind(addr: &ListenAddr, socket_mode: u32) -> Result<Listener, BindError> {
    bind_std(addr, socket_mode)?
        .into_listener()
        .map_err(|e| BindError {
            addr: addr.to_string(),
            reason: e.to_string(),
        })
}

/// Bind one address, without the runtime (non-blocking sockets).
pub fn bind_std(addr: &ListenAddr, socket_mode: u32) -> Result<Bound, BindError> {
    let fail = |reason: String| BindError {
        addr: addr.to_string(),
        reason,
    };
    match addr {
        ListenAddr::Tcp(sa) => {
            let std = std::net::TcpListener::bind(sa).map_err(|e| fail(e.to_string()))?;
            std.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
            Ok(Bound::Tcp(std))
        }
        ListenAddr::Unix(path) => {
            // A fresh install (or a checkout) may lack the socket's
            // directory; create it, readable and searchable by all so the
            // MTA reaches the socket (its own mode decides who may connect).
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(dir)
                        .map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
                }
            }
            remove_stale(path).map_err(fail)?;
            let l =
                std::os::unix::net::UnixListener::bind(path).map_err(|e| fail(e.to_string()))?;
            let guard = SocketFile(Some(path.clone()));
            l.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket_mode))
                .map_err(|e| fail(format!("setting mode {socket_mode:o}: {e}")))?;
            Ok(Bound::Unix(l, guard))
        }
    }
}

/// A socket file left by a dead process is removed; a live one (something
/// answers on it) or a non-socket file is an error.
fn remove_stale(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_socket() {
        return Err("a file that is not a socket is in the way".into());
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err("another process is listening on it".into());
    }
    std::fs::remove_file(path).map_err(|e| format!("removing the stale socket: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_refused_and_file_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmtp.sock");
        // A stale socket: bound, then the listener dropped without unlinking.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let addr = ListenAddr::Unix(path.clone());
        let l = bind(&addr, 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        let err = bind(&addr, 0o600).err().unwrap();
        assert!(err.to_string().contains("another process"), "{err}");
        drop(l);
        assert!(!path.exists());
        std::fs::write(&path, b"x").unwrap();
        assert!(
            bind(&addr, 0o600).is_err(),
            "a regular file is never removed"
        );
    }
}

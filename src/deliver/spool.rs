//! The message spool: the body of one transaction, in memory up to a
//! threshold and then in an unlinked temporary file, with its size and
//! bare-LF count kept as it grows. Line ends are Maildir's customary LF
//! (CRLF becomes LF as bytes arrive), so every copy is one convention
//! throughout. Must not parse the message or know about recipients; a
//! large message never sits whole in memory.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use mailstow_maildir::{self as store, Body};

#[derive(Debug)]
pub struct Spool {
    mem: Vec<u8>,
    /// Set once the body outgrew `memory_max`; unlinked (O_TMPFILE), so a
    /// crash leaves nothing behind.
    file: Option<File>,
    len: u64,
    bare_lf: u64,
    prev_cr: bool,
    memory_max: usize,
    dir: PathBuf,
    to_lf: store::ToLf,
    /// Bytes handed to `append`, as the client sent them.
    received: u64,
    /// Reused for each chunk's LF form.
    scratch: Vec<u8>,
}

impl Spool {
    pub fn new(dir: PathBuf, memory_max: usize) -> Spool {
        Spool {
            mem: Vec::new(),
            file: None,
            len: 0,
            bare_lf: 0,
            prev_cr: false,
            memory_max,
            dir,
            to_lf: store::ToLf::new(),
            received: 0,
            scratch: Vec::new(),
        }
    }

    /// Append message bytes, CRLF made LF (a CR at the end of `chunk` is
    /// held until the next chunk or [`Spool::finish`]). May create and
    /// write the spool file.
    pub fn append(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.received += chunk.len() as u64;
        let mut lf = std::mem::take(&mut self.scratch);
        lf.clear();
        self.to_lf.push(chunk, &mut lf);
        let appended = self.append_lf(&lf);
        self.scratch = lf;
        appended
    }

    /// The message is complete: a CR held at its very end is written.
    pub fn finish(&mut self) -> io::Result<()> {
        let mut lf = Vec::new();
        self.to_lf.finish(&mut lf);
        self.append_lf(&lf)
    }

    fn append_lf(&mut self, chunk: &[u8]) -> io::Result<()> {
        let (n, cr) = store::count_bare_lf(self.prev_cr, chunk);
        self.bare_lf += n;
        if !chunk.is_empty() {
            self.prev_cr = cr;
        }
        self.len += chunk.len() as u64;
        if let Some(f) = self.file.as_mut() {
            return f.write_all(chunk).map_err(|e| at_dir(&self.dir, e));
        }
        if self.mem.len() + chunk.len() <= self.memory_max {
            self.mem.extend_from_slice(chunk);
            return Ok(());
        }
        let spill = |dir: &PathBuf| {
            let mut f = tempfile::tempfile_in(dir)?;
            f.write_all(&self.mem)?;
            f.write_all(chunk)?;
            Ok(f)
        };
        let f = spill(&self.dir).map_err(|e| at_dir(&self.dir, e))?;
        self.mem = Vec::new();
        self.file = Some(f);
        Ok(())
    }

    /// The body as the store reads it.
    pub fn body(&self) -> Body<'_> {
        match &self.file {
            Some(file) => Body::File {
                file,
                len: self.len,
            },
            None => Body::Bytes(&self.mem),
        }
    }

    /// Bytes stored: the message with LF line ends.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes received, as the client sent them (CRLF line ends, usually).
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// LF bytes not preceded by CR (for the W= size): every line end.
    pub fn bare_lf(&self) -> u64 {
        self.bare_lf
    }

    pub fn is_on_disk(&self) -> bool {
        self.file.is_some()
    }

    /// Would appending `n` more bytes write to the spool file (now, or by
    /// spilling to it)?
    pub fn touches_disk(&self, n: usize) -> bool {
        self.file.is_some() || self.mem.len() + n > self.memory_max
    }

    /// The whole body as bytes (for the Sieve interpreter, which needs all
    /// of it): borrowed from memory, or the spool file mapped read-only.
    pub fn bytes(&self) -> io::Result<SpoolBytes<'_>> {
        match &self.file {
            None => Ok(SpoolBytes::Memory(&self.mem)),
            Some(_) if self.len == 0 => Ok(SpoolBytes::Memory(&[])),
            Some(f) => {
                // SAFETY: the spool file is unlinked (O_TMPFILE) and only
                // this Spool holds it; nothing truncates or writes it while
                // the map lives, because appending needs `&mut self`.
                let map = unsafe { memmap2::Mmap::map(f)? };
                Ok(SpoolBytes::Mapped(map))
            }
        }
    }

    /// The first `n` bytes (for header parsing or tests), wherever they are.
    pub fn head(&self, n: usize) -> io::Result<Vec<u8>> {
        match &self.file {
            None => Ok(self.mem[..n.min(self.mem.len())].to_vec()),
            Some(f) => {
                use std::os::unix::fs::FileExt;
                let want = (n as u64).min(self.len) as usize;
                let mut buf = vec![0; want];
                f.read_exact_at(&mut buf, 0)?;
                Ok(buf)
            }
        }
    }
}

/// A spool file error naming the spool directory (the file itself has no
/// name), with the same kind, so a full disk is still recognised.
fn at_dir(dir: &std::path::Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("spool file in {}: {e}", dir.display()))
}

/// The spool's bytes, however they are held.
pub enum SpoolBytes<'a> {
    Memory(&'a [u8]),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for SpoolBytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SpoolBytes::Memory(b) => b,
            SpoolBytes::Mapped(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_stay_in_memory_and_large_ones_go_to_an_unlinked_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path().to_owned(), 10);
        assert!(!s.touches_disk(7));
        s.append(b"hello\r\n").unwrap();
        assert!(!s.is_on_disk());
        assert!(s.touches_disk(17), "this chunk spills to the file");
        s.append(b"world\n and more\r").unwrap();
        s.append(b"\n").unwrap();
        s.finish().unwrap();
        assert!(s.is_on_disk());
        assert_eq!(s.len(), 22);
        assert_eq!(s.received(), 24);
        assert_eq!(s.head(100).unwrap(), b"hello\nworld\n and more\n");
        // Every line end is a bare LF now, the CR split from its LF too.
        assert_eq!(s.bare_lf(), 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(&*s.bytes().unwrap(), b"hello\nworld\n and more\n");
        match s.body() {
            Body::File { len, .. } => assert_eq!(len, 22),
            Body::Bytes(_) => panic!("expected a file body"),
        }
    }

    #[test]
    fn a_lone_cr_is_kept_even_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path().to_owned(), 100);
        s.append(b"a\rb\r").unwrap();
        assert_eq!(s.len(), 3, "the last CR waits for what follows");
        s.finish().unwrap();
        assert_eq!(&*s.bytes().unwrap(), b"a\rb\r");
        assert_eq!(s.bare_lf(), 0);
    }

    #[test]
    fn a_spool_error_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let mut s = Spool::new(missing.clone(), 4);
        s.append(b"abc").unwrap();
        let e = s.append(b"defgh").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let text = e.to_string();
        assert!(text.contains(&missing.display().to_string()), "{text}");
    }
}

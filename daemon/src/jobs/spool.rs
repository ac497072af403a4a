//! One stream of a job's output: its newest `cap` bytes, with offsets
//! counted from the stream's first byte.
//!
//! With a spool directory the bytes are on disk, in segment files of
//! `cap / 2` bytes (mode 0600, removed when the spool goes): a segment is
//! deleted once all of it is older than the newest `cap` bytes, so the disk
//! holds at most 1.5 × `cap` a stream. Without one, or once the disk fails
//! it, they are kept in memory.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use sshmcp_proto::Gap;

pub struct Spool {
    cap: usize,
    /// Bytes written in all.
    pub total: u64,
    store: Store,
}

enum Store {
    /// The newest `cap` bytes.
    Memory(VecDeque<u8>),
    Disk(Segments),
}

struct Segments {
    /// Where segment `n` is `{base}.{n}`.
    base: PathBuf,
    /// Oldest first; the last is written to.
    files: VecDeque<Segment>,
    next: u32,
}

struct Segment {
    file: File,
    path: PathBuf,
    /// Stream offset of its first byte.
    start: u64,
    len: u64,
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Spool {
    /// A spool keeping the newest `cap` bytes, on disk at `base.N` when
    /// `base` is given.
    pub fn new(cap: usize, base: Option<PathBuf>) -> Self {
        let store = match base {
            Some(base) => Store::Disk(Segments {
                base,
                files: VecDeque::new(),
                next: 0,
            }),
            None => Store::Memory(VecDeque::new()),
        };
        Spool {
            cap,
            total: 0,
            store,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        let start = self.total;
        self.total += data.len() as u64;
        if let Store::Disk(segments) = &mut self.store {
            match segments.push(start, data, self.cap, self.total) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        spool = %segments.base.display(),
                        "cannot write a job's spool, keeping it in memory from here: {e}"
                    );
                    // The segments go (and their files with them); the
                    // newest bytes are kept in memory from now on.
                    self.store = Store::Memory(VecDeque::new());
                }
            }
        }
        if let Store::Memory(kept) = &mut self.store {
            kept.extend(data);
            let over = kept.len().saturating_sub(self.cap);
            kept.drain(..over);
        }
    }

    /// `bytes` of the stream that will never arrive (a detached job's host
    /// dropped them from its own spool): what is kept goes too, so that no
    /// read spans the hole, and the stream goes on past it.
    pub fn skip(&mut self, bytes: u64) {
        self.total += bytes;
        match &mut self.store {
            Store::Memory(kept) => kept.clear(),
            Store::Disk(segments) => segments.files.clear(),
        }
    }

    /// Offset of the oldest byte kept: everything before it was dropped.
    pub fn dropped(&self) -> u64 {
        let window = self.total.saturating_sub(self.cap as u64);
        match &self.store {
            Store::Memory(kept) => self.total - kept.len() as u64,
            Store::Disk(segments) => segments
                .files
                .front()
                .map_or(self.total, |s| s.start)
                .max(window),
        }
    }

    /// Up to `max` bytes from `offset` (or the oldest kept byte past it):
    /// the bytes, the offset they start at, and whether anything between
    /// `offset` and that start was dropped or more remains after them.
    pub fn read(&self, offset: u64, max: usize) -> (Vec<u8>, u64, bool) {
        let start = offset.clamp(self.dropped(), self.total);
        let len = (self.total - start).min(max as u64) as usize;
        let bytes = match &self.store {
            Store::Memory(kept) => {
                let skip = (start - self.dropped()) as usize;
                kept.iter().skip(skip).take(len).copied().collect()
            }
            Store::Disk(segments) => segments.read(start, len),
        };
        let more = start + (bytes.len() as u64) < self.total;
        (bytes, start, start > offset || more)
    }

    /// Up to `max` bytes as an exec answer keeps them: the whole stream
    /// when it fits, else its head (unless the spool dropped it) and its
    /// tail, and where they skip what was left out.
    pub fn head_tail(&self, max: usize) -> (Vec<u8>, Option<Gap>) {
        if self.dropped() == 0 && self.total <= max as u64 {
            return (self.read(0, max).0, None);
        }
        let tail_cap = max / 2;
        let mut bytes = if self.dropped() == 0 {
            self.read(0, max - tail_cap).0
        } else {
            Vec::new()
        };
        let at = bytes.len() as u64;
        let (tail, tail_start, _) = self.read(self.total - tail_cap as u64, tail_cap);
        bytes.extend(tail);
        (
            bytes,
            Some(Gap {
                at,
                bytes: tail_start - at,
            }),
        )
    }
}

impl Segments {
    /// Append `data` (stream offsets from `start`), then delete segments
    /// wholly older than the newest `cap` bytes of the `total`.
    fn push(&mut self, start: u64, data: &[u8], cap: usize, total: u64) -> std::io::Result<()> {
        let size = (cap / 2).max(1) as u64;
        let mut at = start;
        let mut rest = data;
        while !rest.is_empty() {
            if self.files.back().is_none_or(|s| s.len >= size) {
                self.open(at)?;
            }
            let Some(segment) = self.files.back_mut() else {
                break;
            };
            let n = rest.len().min((size - segment.len) as usize);
            segment.file.write_all(&rest[..n])?;
            segment.len += n as u64;
            at += n as u64;
            rest = &rest[n..];
        }
        let window = total.saturating_sub(cap as u64);
        while self.files.len() > 1
            && self
                .files
                .front()
                .is_some_and(|s| s.start + s.len <= window)
        {
            self.files.pop_front();
        }
        Ok(())
    }

    fn open(&mut self, start: u64) -> std::io::Result<()> {
        let path = PathBuf::from(format!("{}.{}", self.base.display(), self.next));
        self.next += 1;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        self.files.push_back(Segment {
            file,
            path,
            start,
            len: 0,
        });
        Ok(())
    }

    /// `len` bytes from stream offset `start`, all within the segments.
    fn read(&self, start: u64, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len);
        let end = start + len as u64;
        for segment in &self.files {
            let (from, to) = (
                start.max(segment.start),
                end.min(segment.start + segment.len),
            );
            if from >= to {
                continue;
            }
            let mut piece = vec![0; (to - from) as usize];
            match segment.file.read_exact_at(&mut piece, from - segment.start) {
                Ok(()) => bytes.extend_from_slice(&piece),
                Err(e) => {
                    tracing::warn!(spool = %segment.path.display(), "cannot read a job's spool: {e}");
                    break;
                }
            }
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(cap: usize) -> (tempfile::TempDir, [Spool; 2]) {
        let dir = tempfile::tempdir().unwrap();
        let disk = Spool::new(cap, Some(dir.path().join("j-1.out")));
        (dir, [Spool::new(cap, None), disk])
    }

    #[test]
    fn memory_and_disk_spools_keep_the_same_newest_bytes() {
        let (_dir, spools) = both(8);
        for mut spool in spools {
            for chunk in [&b"0123"[..], b"456789abc", b"d", b"efghijklmnopq"] {
                spool.push(chunk);
            }
            assert_eq!(spool.total, 27);
            assert_eq!(spool.dropped(), 19);
            assert_eq!(spool.read(0, 100), (b"jklmnopq".to_vec(), 19, true));
            assert_eq!(spool.read(21, 3), (b"lmn".to_vec(), 21, true));
            assert_eq!(spool.read(24, 100), (b"opq".to_vec(), 24, false));
            assert_eq!(spool.read(27, 100), (Vec::new(), 27, false));
        }
    }

    #[test]
    fn a_disk_spool_holds_at_most_one_and_a_half_caps_and_removes_its_files() {
        let (dir, [_, mut disk]) = both(8);
        for _ in 0..100 {
            disk.push(b"xyz");
        }
        let on_disk: u64 = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!((8..=12).contains(&on_disk), "{on_disk}");
        drop(disk);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bytes_that_never_arrive_are_skipped_and_read_as_dropped() {
        let (_dir, spools) = both(8);
        for mut spool in spools {
            spool.push(b"0123");
            spool.skip(100);
            spool.push(b"xy");
            assert_eq!(spool.total, 106);
            assert_eq!(spool.read(0, 100), (b"xy".to_vec(), 104, true));
            assert_eq!(spool.read(104, 100), (b"xy".to_vec(), 104, false));
        }
    }

    #[test]
    fn a_spool_whose_disk_fails_goes_on_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(8, Some(dir.path().join("gone/j-1.out")));
        spool.push(b"0123456789");
        assert_eq!(spool.read(0, 100), (b"23456789".to_vec(), 2, true));
    }
}

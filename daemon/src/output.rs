//! Keeping a command's output within a budget: when a stream writes more
//! than it may keep, its head and its tail are what a reader needs (how it
//! started, how it ended), so those are kept and the middle is counted and
//! dropped, never buffered.

use std::collections::VecDeque;
use std::time::Instant;

use sshmcp_proto::{ExecOutput, Gap};

/// One stream as an `exec` answer keeps it: the kept bytes, where they
/// skip what was left out, and how many the stream wrote in all.
pub struct Kept {
    pub bytes: Vec<u8>,
    pub gap: Option<Gap>,
    pub total: u64,
}

/// An `exec` answer from its two streams and how the command ended (or
/// `None`s, for one that runs on); its duration counts from `started`.
pub fn exec_output(
    stdout: Kept,
    stderr: Kept,
    exit_code: Option<u32>,
    signal: Option<String>,
    started: Instant,
) -> ExecOutput {
    ExecOutput {
        job: None,
        truncated: stdout.gap.is_some() || stderr.gap.is_some(),
        exit_code,
        signal,
        stdout: stdout.bytes,
        stderr: stderr.bytes,
        stdout_gap: stdout.gap,
        stderr_gap: stderr.gap,
        stdout_bytes: stdout.total,
        stderr_bytes: stderr.total,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// One stream's output: up to `limit` bytes, the first half from its
/// start and the second half from its end.
#[derive(Debug)]
pub struct HeadTail {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl HeadTail {
    /// Keep at most `limit` bytes.
    pub fn new(limit: u64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let tail_cap = limit / 2;
        HeadTail {
            head_cap: limit - tail_cap,
            tail_cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    /// Take in the stream's next bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.head_cap - self.head.len();
        let (to_head, rest) = data.split_at(data.len().min(room));
        self.head.extend_from_slice(to_head);
        if rest.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&rest[rest.len() - self.tail_cap..]);
        } else {
            self.tail.extend(rest);
            let over = self.tail.len().saturating_sub(self.tail_cap);
            self.tail.drain(..over);
        }
    }

    /// Bytes the stream wrote in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether some of the stream was left out.
    pub fn cut(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The stream as kept.
    pub fn kept(self) -> Kept {
        let total = self.total;
        let (bytes, gap) = self.finish();
        Kept { bytes, gap, total }
    }

    /// The kept bytes, head then tail, and where they skip what was left
    /// out.
    pub fn finish(self) -> (Vec<u8>, Option<Gap>) {
        let at = self.head.len() as u64;
        let gap = self.cut().then(|| Gap {
            at,
            bytes: self.total - at - self.tail.len() as u64,
        });
        let mut bytes = self.head;
        bytes.extend(self.tail);
        (bytes, gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(limit: u64, chunks: &[&[u8]]) -> (Vec<u8>, Option<Gap>) {
        let mut out = HeadTail::new(limit);
        for chunk in chunks {
            out.push(chunk);
        }
        out.finish()
    }

    #[test]
    fn output_within_the_limit_is_kept_whole() {
        assert_eq!(kept(8, &[b"abc", b"defgh"]), (b"abcdefgh".to_vec(), None));
        assert_eq!(kept(8, &[]), (Vec::new(), None));
    }

    #[test]
    fn past_the_limit_the_head_and_tail_are_kept_and_the_gap_is_named() {
        let expect = (b"abcdwxyz".to_vec(), Some(Gap { at: 4, bytes: 18 }));
        let alphabet: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
        assert_eq!(kept(8, &[alphabet]), expect);
        // Fed a byte at a time, or in uneven chunks, the answer is the same.
        let bytes: Vec<&[u8]> = alphabet.chunks(1).collect();
        assert_eq!(kept(8, &bytes), expect);
        assert_eq!(
            kept(8, &[b"ab", b"cdefghijklmnopq", b"rstuvwx", b"yz"]),
            expect
        );
    }

    #[test]
    fn an_odd_limit_gives_the_head_the_extra_byte() {
        assert_eq!(
            kept(5, &[b"0123456789"]),
            (b"01289".to_vec(), Some(Gap { at: 3, bytes: 5 }))
        );
    }

    #[test]
    fn a_zero_limit_keeps_nothing_but_counts() {
        let mut out = HeadTail::new(0);
        out.push(b"abc");
        assert_eq!(out.total(), 3);
        assert_eq!(out.finish(), (Vec::new(), Some(Gap { at: 0, bytes: 3 })));
    }
}

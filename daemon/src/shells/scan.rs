//! Reading one stream of a shell for one command: what comes before the
//! command's start marker is dropped (prompts, job notices, output of
//! earlier background work), what comes between the markers is the
//! command's output, and on stdout what follows the end marker, up to the
//! second one, is the trailer (status and working directory).
//!
//! The server is not trusted: a marker may arrive split across chunks,
//! output may hold text that looks like a marker, and nothing kept grows
//! past a bound whatever the stream says.

use sshmcp_proto::MAX_PATH_BYTES;

/// Most bytes of a trailer kept: a status, a space and a working
/// directory as long as Linux allows one; a longer one is cut.
const TRAILER_MOST: usize = MAX_PATH_BYTES + 16;

/// Where a stream is in a command's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the start marker: dropped.
    Before,
    /// The command's output.
    Body,
    /// Between the two end markers of stdout: status and cwd.
    Trailer,
    /// Past the end: dropped.
    Done,
}

/// One stream's scanner for one command.
pub struct Scanner {
    start: Vec<u8>,
    end: Vec<u8>,
    /// Whether an end marker opens a trailer (stdout) or ends it all
    /// (stderr).
    has_trailer: bool,
    phase: Phase,
    /// Bytes held back because they may be the beginning of a marker:
    /// fewer than a marker's length once a chunk has been looked at, and
    /// in the output only what the marker could begin with. Output that
    /// waits for an answer (a prompt on stderr, sudo's among them) must
    /// not wait here for more.
    held: Vec<u8>,
    trailer: Vec<u8>,
}

impl Scanner {
    /// A scanner for markers `start` and `end`; `has_trailer` on stdout.
    pub fn new(start: Vec<u8>, end: Vec<u8>, has_trailer: bool) -> Scanner {
        Scanner {
            start,
            end,
            has_trailer,
            phase: Phase::Before,
            held: Vec::new(),
            trailer: Vec::new(),
        }
    }

    /// The start marker has come by.
    pub fn started(&self) -> bool {
        self.phase != Phase::Before
    }

    /// The end (and the trailer, on stdout) has come by.
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The trailer, once [`done`](Self::done).
    pub fn trailer(&self) -> &[u8] {
        &self.trailer
    }

    /// Take in the stream's next bytes; `output` gets the command's own.
    pub fn push(&mut self, data: &[u8], output: &mut impl FnMut(&[u8])) {
        if self.phase == Phase::Done {
            return;
        }
        self.held.extend_from_slice(data);
        loop {
            match self.phase {
                Phase::Before => match find(&self.held, &self.start) {
                    Some(at) => {
                        self.held.drain(..at + self.start.len());
                        self.phase = Phase::Body;
                    }
                    None => {
                        let keep = self.start.len() - 1;
                        let drop = self.held.len().saturating_sub(keep);
                        self.held.drain(..drop);
                        return;
                    }
                },
                Phase::Body => match find(&self.held, &self.end) {
                    Some(at) => {
                        output(&self.held[..at]);
                        self.held.drain(..at + self.end.len());
                        self.phase = if self.has_trailer {
                            Phase::Trailer
                        } else {
                            Phase::Done
                        };
                    }
                    None => {
                        let pass = self.held.len() - begun(&self.held, &self.end);
                        output(&self.held[..pass]);
                        self.held.drain(..pass);
                        return;
                    }
                },
                Phase::Trailer => match find(&self.held, &self.end) {
                    Some(at) => {
                        keep_some(&mut self.trailer, &self.held[..at]);
                        self.held.clear();
                        self.phase = Phase::Done;
                    }
                    None => {
                        let pass = self.held.len().saturating_sub(self.end.len() - 1);
                        keep_some(&mut self.trailer, &self.held[..pass]);
                        self.held.drain(..pass);
                        return;
                    }
                },
                Phase::Done => {
                    self.held.clear();
                    return;
                }
            }
        }
    }

    /// The stream ended before the command did: what was held back as a
    /// possible marker was output after all.
    pub fn flush(&mut self, output: &mut impl FnMut(&[u8])) {
        if self.phase == Phase::Body {
            output(&self.held);
        }
        self.held.clear();
    }
}

/// Append what fits of `data` to `trailer`.
fn keep_some(trailer: &mut Vec<u8>, data: &[u8]) {
    let room = TRAILER_MOST.saturating_sub(trailer.len());
    trailer.extend_from_slice(&data[..data.len().min(room)]);
}

/// How many of `data`'s last bytes are the beginning of `marker` (not
/// all of it).
fn begun(data: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(data.len() + 1))
        .rev()
        .find(|&n| data.ends_with(&marker[..n]))
        .unwrap_or(0)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &[u8] = b"<s:42>\n";
    const END: &[u8] = b"<e:42>";

    /// Feed `chunks` to a stdout scanner; its output, trailer and state.
    fn scan(chunks: &[&[u8]], has_trailer: bool) -> (Vec<u8>, Vec<u8>, bool) {
        let mut scanner = Scanner::new(START.to_vec(), END.to_vec(), has_trailer);
        let mut out = Vec::new();
        for chunk in chunks {
            scanner.push(chunk, &mut |b: &[u8]| out.extend_from_slice(b));
        }
        (out, scanner.trailer().to_vec(), scanner.done())
    }

    #[test]
    fn output_between_the_markers_is_the_commands_and_the_rest_is_dropped() {
        let stream: &[u8] = b"$ prompt junk<s:42>\nhello\nworld<e:42> 0 /tmp<e:42>\nlater";
        let expected = (b"hello\nworld".to_vec(), b" 0 /tmp".to_vec(), true);
        assert_eq!(scan(&[stream], true), expected);
        // Byte by byte (markers split anywhere), the answer is the same.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan(&bytes, true), expected);
        let uneven: Vec<&[u8]> = stream.chunks(5).collect();
        assert_eq!(scan(&uneven, true), expected);
    }

    #[test]
    fn a_marker_with_another_nonce_is_output() {
        let stream: &[u8] = b"<s:42>\nfake <e:41> and <s:42>\n and <e:4<e:42> 1 /<e:42>\n";
        assert_eq!(
            scan(&[stream], true),
            (
                b"fake <e:41> and <s:42>\n and <e:4".to_vec(),
                b" 1 /".to_vec(),
                true
            )
        );
    }

    #[test]
    fn stderr_ends_at_its_first_end_marker() {
        let (out, trailer, done) = scan(&[b"x<s:42>\noops\n<e:42>\nmore"], false);
        assert_eq!((out, trailer, done), (b"oops\n".to_vec(), Vec::new(), true));
    }

    #[test]
    fn output_that_cannot_begin_a_marker_is_passed_on_at_once() {
        let (out, _, done) = scan(&[b"<s:42>\n[password:]"], true);
        assert_eq!((out, done), (b"[password:]".to_vec(), false));
        let (out, _, _) = scan(&[b"<s:42>\nx <e", b":"], true);
        assert_eq!(out, b"x ");
    }

    #[test]
    fn nothing_before_the_start_is_kept_however_long() {
        let junk = vec![b'x'; 100_000];
        let mut scanner = Scanner::new(START.to_vec(), END.to_vec(), true);
        let mut out = Vec::new();
        scanner.push(&junk, &mut |b: &[u8]| out.extend_from_slice(b));
        assert!(out.is_empty() && !scanner.started());
        assert!(scanner.held.len() < START.len());
    }

    #[test]
    fn a_trailer_that_never_ends_is_kept_to_its_bound() {
        let mut scanner = Scanner::new(START.to_vec(), END.to_vec(), true);
        let mut out = Vec::new();
        scanner.push(b"<s:42>\nok<e:42> 0 /", &mut |b: &[u8]| {
            out.extend_from_slice(b)
        });
        for _ in 0..100 {
            scanner.push(&[b'a'; 1000], &mut |b: &[u8]| out.extend_from_slice(b));
        }
        assert_eq!(out, b"ok");
        assert!(!scanner.done());
        assert_eq!(scanner.trailer().len(), TRAILER_MOST);
    }

    #[test]
    fn output_held_back_as_a_possible_marker_is_flushed_when_the_stream_ends() {
        let mut scanner = Scanner::new(START.to_vec(), END.to_vec(), true);
        let mut out = Vec::new();
        scanner.push(b"<s:42>\nbye <e:4", &mut |b: &[u8]| {
            out.extend_from_slice(b)
        });
        assert_eq!(out, b"bye ");
        scanner.flush(&mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(out, b"bye <e:4");
    }
}

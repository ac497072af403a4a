//! A compromised host's SFTP server, for tests: OpenSSH's `sftp-server`
//! behind a relay that renames directory entries on their way out.
//!
//! Used as sshd's `Subsystem sftp` (the first argument, if any, is the
//! real server to run; `/usr/lib/openssh/sftp-server` otherwise). Requests
//! pass through untouched. In every `SSH_FXP_NAME` reply, an entry named
//! `hostile~HEX` is renamed to the bytes HEX encodes, so a test creates a
//! file `hostile~2e2e2f78` and the client is told it is called `../x`. Any
//! name can be sent that way, `/` and NUL included, while the real file
//! keeps a name the filesystem accepts.
//!
//! Only listings carry such names: REALPATH answers are absolute paths and
//! READLINK answers are link targets, which never start with the marker,
//! so the relay need not match replies to requests. A packet that does not
//! parse goes on as it came.

use std::io::{self, Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::thread;

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const MARKER: &[u8] = b"hostile~";
const SSH_FXP_NAME: u8 = 104;

fn main() -> ExitCode {
    let program = std::env::args_os()
        .nth(1)
        .unwrap_or_else(|| SFTP_SERVER.into());
    let mut server = match Command::new(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("hostile-sftp-server: cannot run {program:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (Some(mut requests), Some(replies)) = (server.stdin.take(), server.stdout.take()) else {
        eprintln!("hostile-sftp-server: {program:?} has no pipes");
        return ExitCode::FAILURE;
    };
    // When the client goes, the copy ends and dropping `requests` closes
    // the server's input, so the server exits and its replies end too.
    thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut requests);
    });
    let relayed = relay(replies, io::stdout().lock());
    let status = server.wait();
    match (relayed, status) {
        (Ok(()), Ok(status)) if status.success() => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!("hostile-sftp-server: relaying replies failed: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::FAILURE,
    }
}

/// Copy packets from `from` to `to`, renaming marked entries, until `from`
/// ends between packets.
fn relay(mut from: impl Read, mut to: impl Write) -> io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        match from.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        from.read_exact(&mut body)?;
        let body = rewrite(&body).unwrap_or(body);
        let len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "packet too long"))?;
        to.write_all(&len.to_be_bytes())?;
        to.write_all(&body)?;
        to.flush()?;
    }
}

/// `body` (type byte onwards) with marked names renamed, or `None` when
/// it is not a NAME reply, does not parse, or holds no marked name.
fn rewrite(body: &[u8]) -> Option<Vec<u8>> {
    let mut packet = Reader { buf: body, at: 0 };
    if packet.u8()? != SSH_FXP_NAME {
        return None;
    }
    let id = packet.u32()?;
    let count = packet.u32()?;
    let mut out = vec![SSH_FXP_NAME];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    let mut renamed_any = false;
    for _ in 0..count {
        let name = packet.string()?;
        match renamed(name) {
            Some(new) => {
                renamed_any = true;
                put_string(&mut out, &new);
            }
            None => put_string(&mut out, name),
        }
        let long_name = packet.string()?;
        put_string(&mut out, long_name);
        let attrs = packet.attrs()?;
        out.extend_from_slice(attrs);
    }
    (renamed_any && packet.at == body.len()).then_some(out)
}

/// The name `hostile~HEX` stands for, if `name` is one.
fn renamed(name: &[u8]) -> Option<Vec<u8>> {
    let hex = name.strip_prefix(MARKER)?;
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect()
}

/// Appends an SFTP string. Every string here came out of a packet, or is
/// half as long as one that did, so its length fits in a u32.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Reads SFTP wire types from a packet body, `None` past its end.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let bytes = self.buf.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.take(4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// An ATTRS block (SFTP version 3), returned whole.
    fn attrs(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        let flags = self.u32()?;
        for (flag, len) in [(0x1, 8), (0x2, 8), (0x4, 4), (0x8, 8)] {
            if flags & flag != 0 {
                self.take(len)?;
            }
        }
        if flags & 0x8000_0000 != 0 {
            for _ in 0..self.u32()? {
                self.string()?;
                self.string()?;
            }
        }
        self.buf.get(start..self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_reply(names: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![SSH_FXP_NAME, 0, 0, 0, 7];
        body.extend_from_slice(&u32::try_from(names.len()).unwrap_or(0).to_be_bytes());
        for name in names {
            put_string(&mut body, name);
            put_string(&mut body, b"-rw-r--r-- long");
            // size and permissions
            body.extend_from_slice(&0x5u32.to_be_bytes());
            body.extend_from_slice(&3u64.to_be_bytes());
            body.extend_from_slice(&0o100644u32.to_be_bytes());
        }
        body
    }

    #[test]
    fn marked_names_are_renamed_and_the_rest_kept() {
        let body = name_reply(&[b"plain", b"hostile~2e2e2f78", b"hostile~6100"]);
        let out = rewrite(&body);
        assert_eq!(out, Some(name_reply(&[b"plain", b"../x", b"a\0"])));
    }

    #[test]
    fn other_packets_and_broken_ones_pass_unchanged() {
        assert_eq!(rewrite(&name_reply(&[b"plain"])), None);
        let mut status = vec![101, 0, 0, 0, 7];
        status.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(rewrite(&status), None);
        let body = name_reply(&[b"hostile~2e2e"]);
        assert_eq!(rewrite(&body[..body.len() - 1]), None);
        assert_eq!(renamed(b"hostile~zz"), None);
    }
}

//! The wire decoder under random and mutated input: it never panics, and
//! nothing a payload claims makes it allocate much more than the payload
//! itself. A counting allocator watches every allocation made while
//! decoding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use sshmcp_proto::{
    ClientFrame, ClientInfo, DaemonFrame, Error, ErrorKind, ExecOutput, ExecRequest, Hello,
    PROTO_VERSION, Progress, Request, Response, WriteFileRequest, decode, encode,
};

/// Records the largest single allocation made on this thread while
/// `WATCHING` is set.
struct CountingAllocator;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn note(size: usize) {
    // `try_with`: thread-local storage may be gone while a thread exits.
    let _ = WATCHING.try_with(|watching| {
        if watching.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The most the daemon may allocate at once decoding any client frame:
/// byte buffers are claimed against a limit tied to the frame's size.
const CLIENT_FRAME_MOST: usize = 64 * 1024;

/// The most a client may allocate at once decoding any daemon frame: its
/// lists of records (hosts, directory entries) are preallocated by serde
/// up to 1 MiB, never more, whatever length the frame claims.
const DAEMON_FRAME_MOST: usize = 1024 * 1024;

/// The largest single allocation made while running `decode`.
fn largest_allocation(decode: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    WATCHING.with(|w| w.set(true));
    decode();
    WATCHING.with(|w| w.set(false));
    LARGEST.with(Cell::get)
}

/// Decodes `payload` as both frame kinds, checking what each allocated. A
/// panic fails the test.
fn check_decoding(payload: &[u8]) {
    let client = largest_allocation(|| {
        let _ = decode::<ClientFrame>(payload);
    });
    assert!(
        client <= CLIENT_FRAME_MOST,
        "decoding {} bytes as a client frame allocated {client} bytes at once: {payload:02x?}",
        payload.len()
    );
    let daemon = largest_allocation(|| {
        let _ = decode::<DaemonFrame>(payload);
    });
    assert!(
        daemon <= DAEMON_FRAME_MOST,
        "decoding {} bytes as a daemon frame allocated {daemon} bytes at once: {payload:02x?}",
        payload.len()
    );
}

/// A small deterministic generator (xorshift64*), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Valid encodings of frames of every shape, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let exec = ExecRequest {
        stop_after_secs: None,
        detach: false,
        background: false,
        on_timeout: Default::default(),
        cache_secs: None,
        host: "web1".into(),
        command: "uname -a".into(),
        stdin: Some(b"input".to_vec()),
        timeout_secs: Some(30),
        max_output_bytes: Some(4096),
        sudo: false,
        sudo_user: None,
    };
    let client = [
        ClientFrame::Hello(Hello {
            proto_version: PROTO_VERSION,
            client: ClientInfo {
                mcp_client_version: None,
                binary: "sshmcp".into(),
                version: "0.1.0".into(),
                mcp_client: Some("claude-code".into()),
                ssh_auth_sock: Some("/run/user/1000/agent".into()),
            },
        }),
        ClientFrame::Request {
            id: 7,
            request: Request::Exec(exec),
        },
        ClientFrame::Request {
            id: 8,
            request: Request::WriteFile(WriteFileRequest {
                host: "web1".into(),
                path: "/tmp/x".into(),
                data: vec![1; 300],
                mode: Some(0o644),
                append: false,
                create_dirs: true,
            }),
        },
        ClientFrame::Cancel { id: 7 },
    ];
    let daemon = [
        DaemonFrame::Done {
            id: 7,
            reply: Ok(Response::Exec(ExecOutput {
                job: None,
                exit_code: Some(0),
                signal: None,
                stdout: b"Linux\n".to_vec(),
                stderr: Vec::new(),
                stdout_gap: None,
                stderr_gap: None,
                stdout_bytes: 6,
                stderr_bytes: 0,
                truncated: false,
                duration_ms: 3,
            })),
        },
        DaemonFrame::Done {
            id: 9,
            reply: Err(Error::new(ErrorKind::Timeout, "too slow")),
        },
        DaemonFrame::Progress {
            id: 9,
            progress: Progress {
                done: 10,
                total: Some(100),
                message: Some("copying".into()),
            },
        },
    ];
    let mut seeds: Vec<Vec<u8>> = client.iter().map(|f| encode(f).expect("encode")).collect();
    seeds.extend(daemon.iter().map(|f| encode(f).expect("encode")));
    seeds
}

/// A valid frame with a few of its bytes changed, cut, inserted (length
/// prefixes that promise 2^16..2^64 bytes included) or appended.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if at < bytes.len() => bytes[at] = rng.next() as u8,
            1 => bytes.truncate(at),
            2 => {
                let prefix = [0xFB, 0xFC, 0xFD, 0xFE][rng.below(4)];
                let wide: Vec<u8> = std::iter::once(prefix)
                    .chain((0..8).map(|_| 0xFF))
                    .collect();
                bytes.splice(at..at, wide);
            }
            3 => {
                let noise: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, noise);
            }
            _ => bytes.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
        }
    }
    bytes
}

#[test]
fn random_payloads_decode_to_errors_without_panics_or_large_allocations() {
    let mut rng = Rng(0xDEC0_DE00_2026);
    for _ in 0..50_000 {
        let payload: Vec<u8> = (0..rng.below(256)).map(|_| rng.next() as u8).collect();
        check_decoding(&payload);
    }
}

#[test]
fn mutated_frames_decode_without_panics_or_large_allocations() {
    let seeds = seeds();
    let mut rng = Rng(0x0BAD_F00D_1129);
    for _ in 0..50_000 {
        let seed = &seeds[rng.below(seeds.len())];
        check_decoding(&mutate(&mut rng, seed));
    }
}

#[test]
fn every_seed_still_decodes() {
    for seed in seeds() {
        let client = decode::<ClientFrame>(&seed).is_ok();
        let daemon = decode::<DaemonFrame>(&seed).is_ok();
        assert!(
            client || daemon,
            "a valid frame failed to decode: {seed:02x?}"
        );
    }
}

//! The safety net for owners that are never dropped.
//!
//! Drop kills the kit's processes and removes its directories. But a fleet
//! kept in a `static` (shared by all tests of a binary) is never dropped, so
//! everything the kit starts is also recorded here, and an `atexit` handler
//! cleans up whatever is still recorded when the test binary exits.

use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use tempfile::TempDir;

use crate::process;
use crate::sync::lock;

struct Leftovers {
    /// Children that have not been reaped yet, so their pids are still ours.
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static LEFTOVERS: Mutex<Leftovers> = Mutex::new(Leftovers {
    pids: Vec::new(),
    dirs: Vec::new(),
});

static INSTALL: Once = Once::new();

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `clean_up_at_exit` is a plain `extern "C" fn()` that never
        // unwinds; registering it has no other precondition.
        let rc = unsafe { libc::atexit(clean_up_at_exit) };
        assert_eq!(rc, 0, "atexit failed to register the kit's cleanup");
    });
}

extern "C" fn clean_up_at_exit() {
    // try_lock: a thread stopped mid-update at exit must not deadlock exit.
    let Ok(mut leftovers) = LEFTOVERS.try_lock() else {
        return;
    };
    for pid in leftovers.pids.drain(..) {
        process::kill_tree(pid, true);
    }
    for dir in leftovers.dirs.drain(..) {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Records a child that the kit must kill at exit if nobody reaps it first.
pub(crate) fn track_process(pid: u32) {
    install();
    lock(&LEFTOVERS).pids.push(pid);
}

/// Forgets a child: call it when the child has been reaped, before its pid
/// can be reused by an unrelated process.
pub(crate) fn forget_process(pid: u32) {
    lock(&LEFTOVERS).pids.retain(|p| *p != pid);
}

/// A temporary directory removed on drop or, failing that, at exit.
#[derive(Debug)]
pub(crate) struct KitDir {
    dir: TempDir,
}

impl KitDir {
    /// Creates a fresh directory under the system temp dir named
    /// `<prefix>XXXXXX`.
    pub(crate) fn new(prefix: &str) -> KitDir {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory {prefix}*: {e}"));
        install();
        lock(&LEFTOVERS).dirs.push(dir.path().to_path_buf());
        KitDir { dir }
    }
}

impl Deref for KitDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for KitDir {
    fn drop(&mut self) {
        let path = self.dir.path();
        lock(&LEFTOVERS).dirs.retain(|d| d != path);
    }
}

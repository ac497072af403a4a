//! Locking that survives a panicking test.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poison: a test that panicked while holding one of
/// the kit's locks must not stop the kit from cleaning up after it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

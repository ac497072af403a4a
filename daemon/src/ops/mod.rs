//! One file per operation. Ops know nothing of sockets, limits or metrics:
//! the dispatcher wraps them all alike.

pub mod exec;
pub mod files;
pub mod hosts;
pub mod progress;
pub mod reload;
pub mod status;
pub mod sync;
pub mod transfer;
pub mod warm;

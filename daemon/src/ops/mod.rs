//! One file per operation. Ops know nothing of sockets, limits or metrics:
//! the dispatcher wraps them all alike.

pub mod exec;
pub mod hosts;
pub mod reload;
pub mod status;
pub mod warm;

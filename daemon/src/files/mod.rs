//! The file side shared by the file ops: remote SFTP building blocks, the
//! local-path policy, and the transfer and sync engines.

pub mod local;
pub mod policy;
pub mod remote;
pub mod transfer;

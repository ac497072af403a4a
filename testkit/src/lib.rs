//! Test kit for sshmcp: real OpenSSH servers on loopback, and the sshmcp
//! binaries driven the way users drive them.
//!
//! The project's tests never talk to a mock SSH server. This crate starts
//! real `sshd` processes on addresses in 127.0.0.0/8 with throwaway host and
//! user keys, writes the OpenSSH client config and known_hosts that point at
//! them, launches `sshmcpd` against that config and speaks MCP to the `sshmcp`
//! shim over stdio, exactly as an MCP client would.
//!
//! A typical test:
//!
//! ```no_run
//! use sshmcp_testkit::{Daemon, Fleet, McpClient};
//!
//! let fleet = Fleet::start(2); // host1 and host2
//! let daemon = Daemon::start(&fleet, "");
//! let mcp = McpClient::start(daemon.socket());
//! mcp.initialize();
//! let result = mcp.call_tool(
//!     "exec",
//!     serde_json::json!({ "host": fleet.alias(0), "command": "echo hi" }),
//! );
//! assert_eq!(result["structuredContent"]["stdout"], "hi\n");
//! ```
//!
//! Rules every type here keeps, so a failing test never hangs or leaks:
//!
//! - every wait has a deadline and panics with a message that says what was
//!   awaited and shows the relevant log (sshd's, the daemon's, the shim's
//!   stderr);
//! - every process the kit starts is killed, with its descendants, when its
//!   owner is dropped (also while a test panics), and at process exit for
//!   owners that are never dropped (e.g. kept in a `static`);
//! - every temporary directory is removed the same way.
//!
//! Servers run for a dedicated account, `sshmcp-test` (see [`test_user`]),
//! when the tests run as root, and for the current user otherwise. As root
//! the kit also gives that account sudo rights and a password (see
//! [`test_sudo`]).

#![warn(missing_docs)]

mod daemon;
mod exit_cleanup;
mod fleet;
mod key;
mod mcp;
mod process;
mod sshd;
mod sudo;
mod sync;
mod user;
mod wait;

pub use daemon::{Daemon, DaemonOptions, bin_path};
pub use fleet::{Fleet, FleetBuilder};
pub use key::ClientKey;
pub use mcp::{McpClient, SDK_HOST_ENV, ShimOptions, error_text, structured, text};
pub use process::output_within;
pub use sshd::{SshServer, SshServerOptions};
pub use sudo::{TestSudo, test_sudo};
pub use user::{TestUser, test_user};
pub use wait::{free_port, unique_digits, wait_for};

//! Which hosts exist and how to reach them: OpenSSH client config and known_hosts.

pub mod ssh_config;

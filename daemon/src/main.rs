//! `sshmcpd`: the sshmcp daemon.

mod hosts;

fn main() {}

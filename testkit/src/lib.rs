//! Test kit: real OpenSSH servers on loopback.

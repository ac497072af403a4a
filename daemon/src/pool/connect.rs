//! Making one SSH connection: TCP with a timeout and TCP_NODELAY, the
//! handshake with host key verification, then authentication.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey};
use sshmcp_proto::{Error, ErrorKind};
use tokio::net::TcpStream;

use crate::hosts::known_hosts::{self, Rejection};
use crate::hosts::ssh_config::{ResolvedHost, StrictHostKeyChecking};

/// What a connection attempt needs beyond the host's own settings.
pub struct ConnectOptions {
    pub timeout: Duration,
    pub keepalive: Option<Duration>,
    pub keepalive_max: usize,
    /// An agent socket to fall back on when the host names none and the
    /// daemon has none of its own (the caller's `SSH_AUTH_SOCK`).
    pub fallback_agent: Option<PathBuf>,
}

/// The russh event handler for pooled connections: it verifies the host
/// key and otherwise lets russh do the work.
pub struct HostKeyCheck {
    host: ResolvedHost,
    /// Why the key was refused, read after the handshake fails.
    rejection: Arc<Mutex<Option<Error>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match presented {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
                check_host_key(&self.host, key)
            }
            russh::keys::PublicKeyOrCertificate::Certificate(_) => Err(Error::new(
                ErrorKind::HostKeyUnknown,
                format!(
                    "{} presented a host certificate, which sshmcp does not verify yet; \
                     configure the server to offer a plain host key",
                    self.host.alias
                ),
            )),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(error) => {
                *self.rejection.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                Ok(false)
            }
        }
    }
}

/// A live, authenticated SSH connection.
pub type SshHandle = Handle<HostKeyCheck>;

fn check_host_key(host: &ResolvedHost, key: &PublicKey) -> Result<(), Error> {
    // Keys are recorded under HostKeyAlias when one is set, as ssh does.
    let key_host = host.host_key_alias.as_deref().unwrap_or(&host.hostname);
    let name = known_hosts::lookup_name(key_host, host.port);
    let fingerprint = known_hosts::fingerprint(key);
    let files = &host.user_known_hosts_files;
    let listed = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let verdict = known_hosts::verify(key_host, host.port, key, files).map_err(|unreadable| {
        trust_file_error(&name, host, "read", &unreadable.file, &unreadable.source)
    })?;
    match verdict {
        Ok(()) => Ok(()),
        Err(Rejection::Changed { file, line }) => Err(Error::new(
            ErrorKind::HostKeyMismatch,
            format!(
                "HOST KEY CHANGED for {name} (alias {}): the server now presents {} {fingerprint}, \
                 but {}:{line} records a different key. This may be a man-in-the-middle attack, \
                 or the server was reinstalled. Connection refused. If the change is expected, \
                 remove the old key with `ssh-keygen -R '{name}' -f {}` and verify the new one",
                host.alias,
                key.algorithm(),
                file.display(),
                file.display()
            ),
        )),
        Err(Rejection::Revoked { file, line }) => Err(Error::new(
            ErrorKind::HostKeyMismatch,
            format!(
                "the host key of {name} ({fingerprint}) is marked @revoked in {}:{line}; \
                 connection refused",
                file.display()
            ),
        )),
        Err(Rejection::Unknown) => match host.strict_host_key_checking {
            StrictHostKeyChecking::AcceptNew | StrictHostKeyChecking::No => {
                let Some(file) = files.first() else {
                    return Err(Error::new(
                        ErrorKind::HostKeyUnknown,
                        format!("no UserKnownHostsFile to record {name}'s key in"),
                    ));
                };
                known_hosts::learn(key_host, host.port, key, file)
                    .map_err(|e| trust_file_error(&name, host, "record the key in", file, &e))?;
                tracing::info!(host = %host.alias, %fingerprint, file = %file.display(), "recorded new host key (accept-new)");
                Ok(())
            }
            StrictHostKeyChecking::Yes | StrictHostKeyChecking::Ask => Err(Error::new(
                ErrorKind::HostKeyUnknown,
                format!(
                    "host key of {name} (alias {}) is not known: {} {fingerprint} is in none of \
                     [{listed}]. Verify the fingerprint, then record it by running `ssh {}` once, \
                     or set `StrictHostKeyChecking accept-new` for this host in your ssh config",
                    host.alias,
                    key.algorithm(),
                    host.alias
                ),
            )),
        },
    }
}

/// A trust file the daemon could not read or write: no verdict on the key,
/// so never `HostKeyUnknown` (which would send the user to re-trust a key
/// that may well be recorded). Out of descriptors is the daemon's state
/// and passes (`Overloaded`, retriable); a permission or I/O problem with
/// the file stays until someone fixes it (not retriable).
fn trust_file_error(
    name: &str,
    host: &ResolvedHost,
    doing: &str,
    file: &Path,
    error: &std::io::Error,
) -> Error {
    let failed = format!(
        "cannot check the host key of {name} (alias {}): could not {doing} {} ({error})",
        host.alias,
        file.display()
    );
    if let Some(advice) = crate::resources::out_of_fds_advice(error) {
        return Error::new(ErrorKind::Overloaded, format!("{failed}: {advice}"));
    }
    if error.kind() == std::io::ErrorKind::PermissionDenied {
        return Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{failed}; give the daemon's user access to it, or point UserKnownHostsFile \
                 in your ssh config elsewhere"
            ),
        );
    }
    Error::new(
        ErrorKind::IoError,
        format!(
            "{failed}; repair or replace the file, or point UserKnownHostsFile in your ssh \
             config elsewhere"
        ),
    )
}

/// Connect over TCP, verify and authenticate, all within `options.timeout`.
pub async fn establish(host: &ResolvedHost, options: &ConnectOptions) -> Result<SshHandle, Error> {
    refuse_proxy_command(host)?;
    within_timeout(host, options, async {
        let stream = tcp_connect(host).await?;
        handshake_and_auth(host, options, stream).await
    })
    .await
}

/// Like [`establish`], over a stream already open to the host (a
/// direct-tcpip channel through a ProxyJump host).
pub async fn establish_over<S>(
    host: &ResolvedHost,
    options: &ConnectOptions,
    stream: S,
) -> Result<SshHandle, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    refuse_proxy_command(host)?;
    within_timeout(host, options, handshake_and_auth(host, options, stream)).await
}

fn refuse_proxy_command(host: &ResolvedHost) -> Result<(), Error> {
    match &host.proxy_command {
        Some(command) => Err(Error::new(
            ErrorKind::Unreachable,
            format!(
                "{} is reached through ProxyCommand `{command}`, which sshmcp does not run; \
                 use ProxyJump instead, or a Host alias without ProxyCommand",
                host.alias
            ),
        )),
        None => Ok(()),
    }
}

async fn within_timeout(
    host: &ResolvedHost,
    options: &ConnectOptions,
    work: impl std::future::Future<Output = Result<SshHandle, Error>>,
) -> Result<SshHandle, Error> {
    match tokio::time::timeout(options.timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::ConnectTimeout,
            format!(
                "connecting to {} ({}:{}) took longer than {}s; check the host is up, or raise \
                 ConnectTimeout in your ssh config",
                host.alias,
                host.hostname,
                host.port,
                options.timeout.as_secs()
            ),
        )),
    }
}

async fn tcp_connect(host: &ResolvedHost) -> Result<TcpStream, Error> {
    let target = (host.hostname.as_str(), host.port);
    let addrs = tokio::net::lookup_host(target).await.map_err(|e| {
        Error::new(
            ErrorKind::Unreachable,
            format!(
                "cannot resolve {} (alias {}): {e}; check HostName in your ssh config",
                host.hostname, host.alias
            ),
        )
    })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Nagle would hold small SSH packets for delayed ACKs (~40 ms).
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            // Out of descriptors is the daemon's own state, not the host's:
            // say so, as Overloaded, so the host's circuit breaker (which
            // counts Unreachable) does not blame the host.
            Err(e) if crate::resources::is_out_of_fds(&e) => {
                let advice = crate::resources::out_of_fds_advice(&e).unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Overloaded,
                    format!(
                        "cannot open a connection to {} ({addr}): {e}; {advice}",
                        host.alias
                    ),
                ));
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let detail = match last {
        Some((addr, e)) => format!("{addr}: {e}"),
        None => "no addresses".to_string(),
    };
    Err(Error::new(
        ErrorKind::Unreachable,
        format!(
            "cannot reach {} ({}:{}): {detail}; is sshd running and reachable?",
            host.alias, host.hostname, host.port
        ),
    ))
}

fn russh_config(options: &ConnectOptions) -> client::Config {
    client::Config {
        nodelay: true,
        keepalive_interval: options.keepalive,
        keepalive_max: options.keepalive_max,
        inactivity_timeout: None,
        window_size: 16 * 1024 * 1024,
        ..Default::default()
    }
}

async fn handshake_and_auth<S>(
    host: &ResolvedHost,
    options: &ConnectOptions,
    stream: S,
) -> Result<SshHandle, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let rejection = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        host: host.clone(),
        rejection: rejection.clone(),
    };
    let config = Arc::new(russh_config(options));
    let mut handle = match client::connect_stream(config, stream, handler).await {
        Ok(handle) => handle,
        Err(e) => {
            if let Some(error) = rejection.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(error);
            }
            return Err(Error::new(
                ErrorKind::Unreachable,
                format!(
                    "SSH handshake with {} ({}:{}) failed: {e}",
                    host.alias, host.hostname, host.port
                ),
            ));
        }
    };
    authenticate(&mut handle, host, options).await?;
    Ok(handle)
}

/// Try the agent's keys, then the identity files, as `ssh` does.
async fn authenticate(
    handle: &mut SshHandle,
    host: &ResolvedHost,
    options: &ConnectOptions,
) -> Result<(), Error> {
    let auth_error = |what: String| Error::new(ErrorKind::AuthFailed, what);
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|e| auth_error(format!("lost {} during authentication: {e}", host.alias)))?
        .flatten();
    let mut tried = Vec::new();

    // Public halves of the configured identity files, to pick agent keys
    // when IdentitiesOnly is set.
    let wanted: Vec<PublicKey> = host
        .identity_files
        .iter()
        .filter_map(|f| read_public_key(f))
        .collect();

    if let Some(socket) = agent_socket(host, options) {
        match AgentClient::connect_uds(&socket).await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                for identity in identities {
                    let AgentIdentity::PublicKey { key, .. } = identity else {
                        continue;
                    };
                    if host.identities_only
                        && !wanted.iter().any(|w| w.key_data() == key.key_data())
                    {
                        continue;
                    }
                    tried.push(format!("agent key {}", known_hosts::fingerprint(&key)));
                    match handle
                        .authenticate_publickey_with(&host.user, key, rsa_hash, &mut agent)
                        .await
                    {
                        Ok(result) if result.success() => return Ok(()),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(host = %host.alias, "agent signing failed: {e}"),
                    }
                }
            }
            Err(e) => {
                tracing::debug!(host = %host.alias, agent = %socket.display(), "cannot use agent: {e}")
            }
        }
    }

    let mut encrypted = Vec::new();
    for file in &host.identity_files {
        if !file.exists() {
            continue;
        }
        let key = match russh::keys::load_secret_key(file, None) {
            Ok(key) => key,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                encrypted.push(file.display().to_string());
                continue;
            }
            Err(e) => {
                tried.push(format!("{} (unreadable: {e})", file.display()));
                continue;
            }
        };
        tried.push(file.display().to_string());
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash);
        match handle.authenticate_publickey(&host.user, key).await {
            Ok(result) if result.success() => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(auth_error(format!(
                    "lost {} during authentication: {e}",
                    host.alias
                )));
            }
        }
    }

    let mut message = format!(
        "{}@{} ({}:{}) accepted none of the keys offered",
        host.user, host.alias, host.hostname, host.port
    );
    if tried.is_empty() && encrypted.is_empty() {
        message.push_str(": no agent key and no identity file was available. Set IdentityFile in your ssh config or start ssh-agent and `ssh-add` a key");
    } else if !tried.is_empty() {
        message.push_str(&format!(" (tried {})", tried.join(", ")));
    }
    if !encrypted.is_empty() {
        message.push_str(&format!(
            "; {} is passphrase-protected and the daemon cannot prompt: load it into your agent with `ssh-add {}`",
            encrypted.join(", "),
            encrypted.join(" ")
        ));
    } else if !tried.is_empty() {
        message.push_str(". Check the server's authorized_keys for this user");
    }
    Err(auth_error(message))
}

/// IdentityAgent, else the daemon's own `SSH_AUTH_SOCK`, else the caller's.
fn agent_socket(host: &ResolvedHost, options: &ConnectOptions) -> Option<PathBuf> {
    let from_env = || {
        std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    match host.identity_agent.as_deref() {
        Some("none") => None,
        Some("SSH_AUTH_SOCK") | None => from_env().or_else(|| options.fallback_agent.clone()),
        Some(path) => Some(PathBuf::from(path)),
    }
}

fn read_public_key(identity: &Path) -> Option<PublicKey> {
    let mut pub_path = identity.as_os_str().to_owned();
    pub_path.push(".pub");
    let text = std::fs::read_to_string(pub_path).ok()?;
    let b64 = text.split_whitespace().nth(1)?;
    russh::keys::parse_public_key_base64(b64).ok()
}

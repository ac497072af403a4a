//! `sshmcp`: the process an MCP client launches. It speaks MCP over stdio
//! and forwards every tool call to the `sshmcpd` daemon, whose warm SSH
//! pool all shims share. It is started often and lives as long as its
//! client, so it is small, starts in milliseconds, and owns no SSH state.
//!
//! stdout carries only MCP; anything for a human goes to stderr.

mod args;
mod confirm;
mod daemon;
mod encoding;
mod line_limit;
mod line_writer;
mod outline;
mod server;
mod stdin;
mod terminal;
mod tools;
mod transport;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::handler::server::router::tool::ToolRoute;
use rmcp::service::ServerInitializeError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::args::Command;
use crate::server::SshMcp;
use crate::stdin::WatchedStdin;
use crate::transport::StdioTransport;

/// How long, once the MCP session has ended, the shim waits for tool calls
/// still running to finish. They are normally done by then (stdin closing
/// cancels them); this bounds the wait if one is stuck.
const EXIT_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    match args::parse(
        std::env::args_os().skip(1),
        sshmcp_proto::client_socket_candidates,
    ) {
        Ok(Command::Serve { sockets, tools }) => {
            let task_after = match tools::tasks::after_from(
                std::env::var_os(tools::tasks::AFTER_ENV).as_deref(),
            ) {
                Ok(secs) => secs,
                Err(message) => {
                    eprintln!("sshmcp: {message}");
                    return ExitCode::from(2);
                }
            };
            match tools.as_deref().map(tools::selection::select) {
                None => serve(sockets, tools::all(), None, task_after),
                Some(Ok(selected)) => serve(sockets, selected, tools, task_after),
                Some(Err(message)) => {
                    eprintln!("sshmcp: {message}\n\n{}", args::USAGE);
                    ExitCode::from(2)
                }
            }
        }
        Ok(Command::Version) => {
            println!("sshmcp {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("sshmcp: {message}\n\n{}", args::USAGE);
            ExitCode::from(2)
        }
    }
}

/// Serve MCP until stdin closes. One thread: the shim's work is waiting on
/// two pipes and a socket, and a thread pool would only cost startup time
/// and memory. Calls that run over `task_after` seconds become tasks for
/// clients that take them.
fn serve(
    sockets: Vec<PathBuf>,
    tools: Vec<ToolRoute<SshMcp>>,
    selection: Option<String>,
    task_after: u64,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sshmcp: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(sockets, tools, selection, task_after));
    // When stdin is not a pipe, tokio reads it on a blocking thread that
    // may still be parked in read(2); exit without waiting for it.
    runtime.shutdown_background();
    code
}

async fn run(
    sockets: Vec<PathBuf>,
    tools: Vec<ToolRoute<SshMcp>>,
    selection: Option<String>,
    task_after: u64,
) -> ExitCode {
    let (running, mut all_done) = mpsc::channel::<()>(1);
    let stdin_closed = CancellationToken::new();
    // Non-blocking pipes when the client gave us pipes (they all do), so no
    // thread is spawned to read stdin.
    let (stdin, stdout) = rmcp::transport::io::stdio_pipes();
    let stdin = WatchedStdin::new(stdin, stdin_closed.clone());
    let server =
        SshMcp::new(sockets, tools, selection, stdin_closed, running).with_task_after(task_after);
    let service = match server.serve(StdioTransport::new(stdin, stdout)).await {
        Ok(service) => service,
        // stdin closed before `initialize` or a first request with its
        // protocol version in `_meta`: the client went away (perhaps after
        // only `server/discover`), which is not an error of ours.
        Err(ServerInitializeError::ConnectionClosed(_)) => return ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sshmcp: MCP session failed to start: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = service.waiting().await {
        eprintln!("sshmcp: MCP session ended abnormally: {err}");
        return ExitCode::FAILURE;
    }
    // `recv` returns `None` once the service, and with it every sender, is
    // dropped: see `SshMcp::_running`.
    let _ = tokio::time::timeout(EXIT_GRACE, all_done.recv()).await;
    ExitCode::SUCCESS
}

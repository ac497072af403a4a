#!/usr/bin/env python3
"""Drive the sshmcp shim with the official MCP Python SDK client, as MCP
hosts do. shim/tests/python_sdk.rs runs one scenario per test:

    sdk_client.py SCENARIO --shim PATH [--socket PATH] [--host ALIAS] [--remote-dir DIR]

The `modern` and `tasks` scenarios use the SDK's `Client` (SDK 2.x), which
asks `server/discover` and speaks the 2026-07-28 revision: no `initialize`,
the protocol version and capabilities in every request's `_meta`. `tasks`
also declares the MCP Tasks extension through the SDK's extension API (the
SDK has no tasks support of its own) and polls `tasks/get`.

The SDK launches the shim itself, through `stdio_client`. With `--socket`
the shim gets it as an argument, since the SDK passes the server only HOME,
LOGNAME, PATH, SHELL, TERM and USER from its environment; without it, the
shim is launched as the README's `mcpServers` entry launches it: the bare
command, no arguments, no extra environment.

Exits 0 when the scenario holds. Otherwise prints what differed and exits 1.
Works with SDK 2.x (`is_error`, `structured_content`, `input_schema`) and
1.x (`isError`, `structuredContent`, `inputSchema`).
"""

import argparse
import asyncio
import sys
from typing import Any, Literal

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

# The tools the design names; the shim may offer more.
CORE_TOOLS = {"hosts", "exec", "stat", "list_dir", "read_file", "write_file"}
CONCURRENT_CALLS = 20
# The revision without `initialize`, and the tasks extension's identifier.
MODERN = "2026-07-28"
TASKS = "io.modelcontextprotocol/tasks"
# Polls of `tasks/get` before a scenario gives up on a task.
MAX_POLLS = 120


class Failed(Exception):
    """The scenario did not hold; the message says how."""


def check(condition, message):
    if not condition:
        raise Failed(message)


def attr(obj, snake, camel):
    """The field spelled `snake` in SDK 2.x and `camel` in 1.x."""
    missing = object()
    value = getattr(obj, snake, missing)
    return getattr(obj, camel, None) if value is missing else value


def is_error(result):
    return bool(attr(result, "is_error", "isError"))


def text(result):
    return "\n".join(getattr(block, "text", "") for block in result.content)


def structured(result, what):
    """The structured content of a result that must have succeeded."""
    check(not is_error(result), f"{what} failed: {text(result)}")
    content = attr(result, "structured_content", "structuredContent")
    check(isinstance(content, dict), f"{what} has no structured content: {result!r}")
    return content


async def tools(session, args):
    listed = await session.list_tools()
    names = set()
    for tool in listed.tools:
        names.add(tool.name)
        for snake, camel in (("input_schema", "inputSchema"), ("output_schema", "outputSchema")):
            schema = attr(tool, snake, camel)
            check(
                isinstance(schema, dict) and schema.get("type") == "object",
                f"tool {tool.name} has no object {camel}: {schema!r}",
            )
    check(CORE_TOOLS <= names, f"tools missing from tools/list: {sorted(CORE_TOOLS - names)}")
    print(f"{len(names)} tools: {', '.join(sorted(names))}")


async def exec_hello(session, args):
    # The SDK checks structured content against the tool's outputSchema
    # before returning it, so getting here means it matched.
    result = await session.call_tool("exec", {"host": args.host, "command": "echo hello; exit 3"})
    out = structured(result, "exec")
    check(out.get("stdout") == "hello\n", f"stdout: {out.get('stdout')!r}")
    check(out.get("exit_code") == 3, f"exit_code: {out.get('exit_code')!r}")
    check("hello" in text(result), f"the text rendering lacks the output: {text(result)!r}")


async def unknown_host(session, args):
    result = await session.call_tool("exec", {"host": "no-such-host", "command": "true"})
    check(is_error(result), f"exec on an unknown host succeeded: {result!r}")
    message = text(result)
    check("no-such-host" in message, f"the error does not name the host: {message!r}")
    check(args.host in message, f"the error does not list the known host {args.host}: {message!r}")


async def files(session, args):
    path = f"{args.remote_dir}/sdk/note.txt"
    content = "written through the MCP Python SDK\n"
    written = structured(
        await session.call_tool(
            "write_file",
            {"host": args.host, "path": path, "content": content, "create_dirs": True},
        ),
        "write_file",
    )
    check(written.get("bytes_written") == len(content), f"write_file: {written}")

    read = structured(await session.call_tool("read_file", {"host": args.host, "path": path}), "read_file")
    check(read.get("content") == content, f"read_file: {read}")

    stat = structured(await session.call_tool("stat", {"host": args.host, "path": path}), "stat")
    check(stat.get("type") == "file" and stat.get("size") == len(content), f"stat: {stat}")

    listing = structured(
        await session.call_tool("list_dir", {"host": args.host, "path": f"{args.remote_dir}/sdk"}),
        "list_dir",
    )
    entries = [entry.get("path") for entry in listing.get("entries", [])]
    check(entries == ["note.txt"], f"list_dir entries: {entries}")


async def concurrent(session, args):
    calls = [
        session.call_tool("exec", {"host": args.host, "command": f"echo call-{i}"})
        for i in range(CONCURRENT_CALLS)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = []
    for i, result in enumerate(results):
        if isinstance(result, BaseException):
            failures.append(f"call {i} raised {result!r}")
        elif is_error(result):
            failures.append(f"call {i} failed: {text(result)}")
        else:
            stdout = attr(result, "structured_content", "structuredContent").get("stdout")
            if stdout != f"call-{i}\n":
                failures.append(f"call {i} printed {stdout!r}")
    check(not failures, f"{len(failures)} of {CONCURRENT_CALLS} calls failed:\n" + "\n".join(failures))
    print(f"{CONCURRENT_CALLS} concurrent calls, no errors")


async def batch_and_cache(session, args):
    # One call at a time, in order: the read sees the write before it.
    path = f"{args.remote_dir}/batched.txt"
    batch = structured(
        await session.call_tool(
            "batch",
            {
                "concurrency": 1,
                "calls": [
                    {"tool": "write_file", "arguments": {"host": args.host, "path": path, "content": "batched\n"}},
                    {"tool": "read_file", "arguments": {"host": args.host, "path": path}},
                    {"tool": "stat", "arguments": {"host": args.host, "path": f"{path}.missing"}},
                    {"tool": "exec", "arguments": {"host": args.host, "command": "echo done"}},
                ],
            },
        ),
        "batch",
    )
    results = batch.get("results", [])
    check([r.get("tool") for r in results] == ["write_file", "read_file", "stat", "exec"], f"batch: {batch}")
    check(results[1].get("result", {}).get("content") == "batched\n", f"read in the batch: {results[1]}")
    check(results[2].get("ok") is False and results[2].get("error", "").startswith("not_found"), f"stat: {results[2]}")
    check(results[3].get("result", {}).get("stdout") == "done\n", f"exec in the batch: {results[3]}")

    # Asked again, a stat comes from the daemon's cache, and says so.
    first = structured(await session.call_tool("stat", {"host": args.host, "path": path}), "stat")
    check("cached" not in first, f"the first stat came from the cache: {first}")
    again = structured(await session.call_tool("stat", {"host": args.host, "path": path}), "stat")
    check(again.get("cached") is True and isinstance(again.get("age_ms"), int), f"the second stat: {again}")


async def modern(client, tasks, args):
    """A 2026-07-28 session: tools listed, a command run with its progress."""
    extensions = getattr(client.server_capabilities, "extensions", None) or {}
    check(TASKS in extensions, f"the server does not offer tasks: {extensions!r}")
    listed = await client.list_tools()
    names = {tool.name for tool in listed.tools}
    check(CORE_TOOLS <= names, f"tools missing from tools/list: {sorted(CORE_TOOLS - names)}")
    lines = []

    async def on_progress(progress, total, message):
        lines.append(message)

    result = await client.call_tool(
        "exec",
        {"host": args.host, "command": "for i in 1 2 3 4; do echo step $i; sleep 0.3; done"},
        progress_callback=on_progress,
    )
    out = structured(result, "exec")
    check(out.get("stdout") == "step 1\nstep 2\nstep 3\nstep 4\n", f"stdout: {out.get('stdout')!r}")
    check(lines and all(line.startswith("step ") for line in lines), f"progress: {lines!r}")
    print(f"{len(names)} tools, {len(lines)} progress notifications")


async def long_exec_as_task(client, tasks, args):
    """A long command becomes a task; the client polls it to its result."""
    result = await client.call_tool("exec", {"host": args.host, "command": "sleep 2; echo from a task"})
    check(tasks.task_ids, "the long exec was answered without a task")
    out = structured(result, "exec")
    check(out.get("stdout") == "from a task\n", f"stdout: {out.get('stdout')!r}")
    quick = structured(await client.call_tool("exec", {"host": args.host, "command": "echo at once"}), "exec")
    check(quick.get("stdout") == "at once\n", f"stdout: {quick.get('stdout')!r}")
    print(f"task {tasks.task_ids[0]} completed")


def task_extension():
    """The MCP Tasks extension as the SDK's extension API builds one: it
    claims `resultType: "task"` on `tools/call` and polls `tasks/get` until
    the task carries the call's result."""
    import mcp_types as types
    from mcp.client.extension import ClientExtension, ResultClaim
    from pydantic import TypeAdapter

    class TaskHandle(types.Result):
        result_type: Literal["task"]
        task_id: str
        status: str
        poll_interval_ms: int | None = None

    class Tasks(ClientExtension):
        identifier = TASKS

        def __init__(self):
            self.task_ids = []

        def claims(self):
            return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.resolve)]

        async def resolve(self, handle, ctx):
            self.task_ids.append(handle.task_id)
            # The SDK's 2025-11-25 request type: `tasks/get` has the same
            # parameters under the extension.
            get = types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=handle.task_id))
            for _ in range(MAX_POLLS):
                task = await ctx.session.send_request(get, TypeAdapter(dict[str, Any]))
                if task.get("status") == "completed":
                    return types.CallToolResult.model_validate(task["result"])
                check(task.get("status") == "working", f"task {handle.task_id} ended: {task!r}")
                await asyncio.sleep(min(task.get("pollIntervalMs") or 1000, 1000) / 1000)
            raise Failed(f"task {handle.task_id} still works after {MAX_POLLS} polls")

    return Tasks()


# What the daemon's policy asks to confirm in the `confirm-*` scenarios
# (the Rust side sets `confirm_commands = [["echo"]]` for the host).
CONFIRMED_COMMAND = "echo confirmed by a person"


def answering(action, decision=None):
    """An elicitation callback that answers `action` (and, on accept, the
    form's `decision`), keeping what it was asked."""
    from mcp import types

    asked = []

    async def callback(context, params):
        asked.append(params)
        content = {"decision": decision} if decision is not None else None
        return types.ElicitResult(action=action, content=content)

    return callback, asked


async def confirm_allow(session, asked, args):
    result = await session.call_tool("exec", {"host": args.host, "command": CONFIRMED_COMMAND})
    out = structured(result, "exec")
    check(out["stdout"] == "confirmed by a person\n", f"stdout {out['stdout']!r}")
    check(len(asked) == 1, f"asked {len(asked)} times")
    params = asked[0]
    message = params.message
    check(CONFIRMED_COMMAND in message and args.host in message, f"the form says {message!r}")
    schema = attr(params, "requested_schema", "requestedSchema")
    schema = schema if isinstance(schema, dict) else schema.model_dump()
    check(set(schema["properties"]) == {"decision"}, f"the form asks for {schema!r}")
    check(schema["properties"]["decision"].get("enum") == ["allow", "deny"], f"choices {schema!r}")
    # A command no rule asks about runs without a question.
    plain = structured(await session.call_tool("exec", {"host": args.host, "command": "true"}), "exec")
    check(plain["exit_code"] == 0 and len(asked) == 1, "a plain command asked too")


async def confirm_refused(session, asked, args, reason):
    result = await session.call_tool("exec", {"host": args.host, "command": CONFIRMED_COMMAND})
    check(is_error(result), f"the command ran: {text(result)}")
    message = text(result)
    check("policy_denied" in message and "confirmation" in message, f"the error says {message!r}")
    check(reason in message, f"the error does not say {reason!r}: {message!r}")


async def confirm_declined(session, asked, args):
    await confirm_refused(session, asked, args, "declined")
    check(len(asked) == 1, f"asked {len(asked)} times")


async def confirm_denied(session, asked, args):
    await confirm_refused(session, asked, args, "chose deny")


async def confirm_unsupported(session, asked, args):
    await confirm_refused(session, asked, args, "does not support elicitation")


# Scenarios on a session whose client answers elicitation (or, for
# `confirm-unsupported`, declares none): the callback's action and choice.
CONFIRM_SCENARIOS = {
    "confirm-allow": (confirm_allow, ("accept", "allow")),
    "confirm-deny": (confirm_denied, ("accept", "deny")),
    "confirm-declined": (confirm_declined, ("decline", None)),
    "confirm-unsupported": (confirm_unsupported, None),
}


# Scenarios on the SDK's `Client`, which speaks 2026-07-28 with a server
# that offers it; `tasks` ones declare the tasks extension.
MODERN_SCENARIOS = {
    "modern": (modern, False),
    "tasks": (long_exec_as_task, True),
}


SCENARIOS = {
    "batch-and-cache": batch_and_cache,
    "tools": tools,
    "exec": exec_hello,
    "unknown-host": unknown_host,
    "files": files,
    "concurrent": concurrent,
}


async def run(args):
    server = StdioServerParameters(
        command=args.shim,
        args=["--socket", args.socket] if args.socket else [],
    )
    if args.scenario in MODERN_SCENARIOS:
        from mcp import Client

        scenario, with_tasks = MODERN_SCENARIOS[args.scenario]
        tasks = task_extension() if with_tasks else None
        async with Client(server, mode="auto", extensions=[tasks] if tasks else None) as client:
            check(client.protocol_version == MODERN, f"negotiated {client.protocol_version!r}")
            check(client.session.initialize_result is None, "the session began with initialize")
            info = client.server_info
            check(info is not None and info.name == "sshmcp", f"discover names the server {info!r}")
            await scenario(client, tasks, args)
        return
    if args.scenario in CONFIRM_SCENARIOS:
        scenario, answer = CONFIRM_SCENARIOS[args.scenario]
        callback, asked = answering(*answer) if answer else (None, [])
        async with stdio_client(server) as (read, write):
            async with ClientSession(read, write, elicitation_callback=callback) as session:
                await session.initialize()
                await scenario(session, asked, args)
        return
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            initialized = await session.initialize()
            info = attr(initialized, "server_info", "serverInfo")
            check(info.name == "sshmcp", f"initialize names the server {info.name!r}")
            await SCENARIOS[args.scenario](session, args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario",
        choices=sorted(SCENARIOS.keys() | MODERN_SCENARIOS.keys() | CONFIRM_SCENARIOS.keys()),
    )
    parser.add_argument("--shim", required=True, help="the sshmcp binary")
    parser.add_argument("--socket", help="pass --socket PATH to the shim")
    parser.add_argument("--host", default="host1", help="a host alias the daemon knows")
    parser.add_argument("--remote-dir", help="a writable directory on the host")
    args = parser.parse_args()
    if args.scenario in ("files", "batch-and-cache") and not args.remote_dir:
        parser.error(f"the {args.scenario} scenario needs --remote-dir")
    try:
        asyncio.run(run(args))
    except BaseException as error:  # noqa: BLE001 - re-raised unless it is ours
        failure = failure_in(error)
        if failure is None:
            raise
        print(f"FAILED ({args.scenario}): {failure}", file=sys.stderr)
        sys.exit(1)


def failure_in(error):
    """The `Failed` in `error`, which the SDK's task groups wrap in
    exception groups; None if there is none."""
    if isinstance(error, Failed):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = failure_in(inner)
        if found is not None:
            return found
    return None


if __name__ == "__main__":
    main()

"""Python test driver: one official `iii-sdk` worker, steered over stdin/stdout.

Usage: python driver.py <engine ws url> [worker name]

Same line protocol as tests/node/driver.mjs:
  in : {"id": 1, "cmd": "<name>", ...args}
  out: {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": {code, message}}
  out: {"event": "<name>", ...}
Commands run one at a time, in order. The SDK logs to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
import uuid
from typing import Any, Callable

from iii import InitOptions, TriggerAction, register_worker
from iii.helpers import create_channel_async

logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

_out_lock = threading.Lock()


def emit(obj: dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def error_body(err: BaseException) -> dict[str, str]:
    return {"code": str(getattr(err, "code", None) or "driver_error"), "message": str(getattr(err, "message", None) or err)}


def pattern(n: int) -> str:
    # A position-dependent test text of `n` characters, as in driver.mjs.
    return "".join(f"{i:08d}|" for i in range((n + 8) // 9))[:n]


def summary(text: Any) -> dict[str, Any]:
    # What the tests check of a big text instead of echoing it back.
    if not isinstance(text, str):
        return {"not_a_string": type(text).__name__}
    return {"len": len(text), "intact": text == pattern(len(text)), "head": text[:18], "tail": text[-18:]}


URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("III_URL", "")
NAME = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("III_WORKER_NAME", "python-driver")
if not URL:
    sys.stderr.write("usage: python driver.py <engine ws url> [worker name]\n")
    sys.exit(2)

iii = register_worker(URL, InitOptions(worker_name=NAME, invocation_timeout_ms=30000))


def kind_echo(_spec: dict[str, Any]) -> Callable[..., Any]:
    def echo(data: Any) -> Any:
        return data

    return echo


def kind_add(_spec: dict[str, Any]) -> Callable[..., Any]:
    def add(data: Any) -> Any:
        return {"sum": data["a"] + data["b"]}

    return add


def kind_boom(_spec: dict[str, Any]) -> Callable[..., Any]:
    def boom(_data: Any) -> Any:
        raise RuntimeError("kaboom")

    return boom


def kind_size(_spec: dict[str, Any]) -> Callable[..., Any]:
    # Answers with the length of `blob`: big inputs, small answers.
    def size(data: Any) -> Any:
        return {"len": len(data["blob"])}

    return size


def kind_relay(_spec: dict[str, Any]) -> Callable[..., Any]:
    # Calls `data.target` with `data.payload` and answers with what it got back.
    async def relay(data: Any) -> Any:
        answer = await iii.trigger_async(
            {"function_id": data["target"], "payload": data["payload"], "timeout_ms": 10000, "dispatch": "remote"}
        )
        return {"relayed": answer, "by": "python"}

    return relay


KINDS = {"echo": kind_echo, "add": kind_add, "boom": kind_boom, "size": kind_size, "relay": kind_relay}


def sync() -> None:
    # Frames of one connection are applied in order; see driver.mjs.
    fid = f"__sync::{uuid.uuid4()}"
    ref = iii.register_function(fid, lambda _data: "synced")
    try:
        answer = iii.trigger({"function_id": fid, "payload": {}, "timeout_ms": 10000, "dispatch": "remote"})
        if answer != "synced":
            raise RuntimeError(f"sync call answered {answer!r}")
    finally:
        ref.unregister()


def cmd_register(msg: dict[str, Any]) -> Any:
    for spec in msg["functions"]:
        make = KINDS.get(spec["kind"])
        if make is None:
            raise ValueError(f"unknown function kind {spec['kind']}")
        iii.register_function(spec["id"], make(spec), description=spec.get("description"))
    sync()
    return {"registered": [f["id"] for f in msg["functions"]]}


def cmd_sync(_msg: dict[str, Any]) -> Any:
    sync()
    return None


def cmd_trigger(msg: dict[str, Any]) -> Any:
    request: dict[str, Any] = {"function_id": msg["function_id"], "payload": msg.get("payload"), "dispatch": "remote"}
    if msg.get("timeoutMs"):
        request["timeout_ms"] = msg["timeoutMs"]
    if msg.get("void"):
        request["action"] = TriggerAction.Void()
    if msg.get("blob_bytes"):
        # A payload too big to pass through the command line: built here.
        request["payload"] = {"blob": pattern(int(msg["blob_bytes"]))}
    answer = iii.trigger(request)
    return summary(answer) if msg.get("summarize") else answer


TRIGGERS: dict[str, Any] = {}


def kind_http(spec: dict[str, Any]) -> Callable[..., Any]:
    # http trigger handler: answers `status` and echoes what it saw.
    def handle(req: Any) -> Any:
        return {
            "status_code": spec.get("status", 200),
            "headers": spec.get("headers", {}),
            "body": {k: req.get(k) for k in ("method", "path", "path_params", "query_params", "body")},
        }

    return handle


KINDS["http"] = kind_http


def cmd_register_trigger(msg: dict[str, Any]) -> Any:
    TRIGGERS[msg["key"]] = iii.register_trigger(
        {"type": msg["type"], "function_id": msg["function_id"], "config": msg.get("config")}
    )
    sync()
    return {"key": msg["key"]}


def cmd_unregister_trigger(msg: dict[str, Any]) -> Any:
    TRIGGERS.pop(msg["key"]).unregister()
    sync()
    return {"key": msg["key"]}


def cmd_channel_send(msg: dict[str, Any]) -> Any:
    # Creates a channel, hands its reader to `function_id` and writes into it meanwhile:
    # text frames first, then `data` as binary.
    async def run() -> Any:
        channel = await create_channel_async(iii, msg.get("buffer_size"))
        call = asyncio.ensure_future(
            iii.trigger_async(
                {
                    "function_id": msg["function_id"],
                    "payload": {"reader": channel.reader_ref.model_dump()},
                    "timeout_ms": 20000,
                    "dispatch": "remote",
                }
            )
        )
        for text in msg.get("messages", []):
            await channel.writer.send_message_async(text)
        await channel.writer.write(msg.get("data", "").encode() * int(msg.get("repeat", 1)))
        await channel.writer.close_async()
        return {"answer": await call}

    return asyncio.run(run())


def cmd_shutdown(_msg: dict[str, Any]) -> Any:
    iii.shutdown()
    return None


COMMANDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "register": cmd_register,
    "sync": cmd_sync,
    "trigger": cmd_trigger,
    "channel_send": cmd_channel_send,
    "register_trigger": cmd_register_trigger,
    "unregister_trigger": cmd_unregister_trigger,
    "shutdown": cmd_shutdown,
}


def main() -> None:
    deadline = time.monotonic() + 20
    while iii.worker_id is None:
        if time.monotonic() > deadline:
            sys.stderr.write("driver: no workerregistered within 20 s\n")
            os._exit(4)
        time.sleep(0.01)
    sync()
    emit({"event": "ready", "worker_id": iii.worker_id, "name": NAME})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except ValueError as err:
            emit({"event": "bad_command", "line": line, "error": str(err)})
            continue
        if msg.get("cmd") == "exit":
            os._exit(3)
        command = COMMANDS.get(msg.get("cmd"))
        if command is None:
            emit({"id": msg.get("id"), "ok": False, "error": {"code": "unknown_command", "message": str(msg.get("cmd"))}})
            continue
        try:
            emit({"id": msg.get("id"), "ok": True, "result": command(msg)})
        except Exception as err:  # noqa: BLE001 - every failure goes back to the test
            emit({"id": msg.get("id"), "ok": False, "error": error_body(err)})
        if msg.get("cmd") == "shutdown":
            os._exit(0)
    # stdin closed: the harness is gone.
    os._exit(0)


main()

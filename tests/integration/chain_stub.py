"""A JSON-RPC stub on 127.0.0.1 that answers from recorded responses (ethereum-etl's
``web3_response.<method>_<params>.json`` files, see shared/conformance/ethereum-etl/README.md).

A request whose method+params has a recording gets that response, with the request's id.
Three answers are derived from recordings, never invented:
- ``eth_getBlockByNumber [n, false]`` from the ``[n, true]`` recording (transactions → hashes);
- ``eth_getLogs`` from the logs of the recorded receipts, filtered by range, address and
  topic0 as a node does; every block of the range must be recorded with all its receipts;
- ``eth_blockNumber`` from the recorded ``latest`` block, else the highest recorded block.
Anything else is an error answer, so a test fails loudly on an unrecorded request.

``faults`` (a list of ``(http_status, json_error)``) is served first, one per request: the
retry tests use it for 429s, 5xx and JSON-RPC errors.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "web3_response."


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "_".join(_flat(v) for v in value)
    return str(value).lower()


def file_key(method: str, params: Iterable[Any]) -> str:
    """The recording's file stem for a request (README "File naming")."""
    parts = [method]
    for param in params:
        if isinstance(param, dict):
            for key in sorted(param):
                parts += [key, _flat(param[key])]
        else:
            parts.append(_flat(param))
    return "_".join(parts)


class NotRecorded(LookupError):
    pass


class RpcFault(Exception):
    """Raised by an answer function: the stub answers with this JSON-RPC error."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class RecordedChain:
    def __init__(self, folders: Iterable[Path]):
        self.recorded: dict[str, Any] = {}
        for folder in folders:
            for path in sorted(Path(folder).glob(f"{PREFIX}*.json")):
                stem = path.name[len(PREFIX) : -len(".json")]
                self.recorded[stem] = json.loads(path.read_text())["result"]
        self.blocks = {
            int(b["number"], 16): b
            for key, b in self.recorded.items()
            if key.startswith("eth_getBlockByNumber_0x") and key.endswith("_true")
        }
        self.receipts = {
            r["transactionHash"].lower(): r
            for key, r in self.recorded.items()
            if key.startswith("eth_getTransactionReceipt_")
        }

    def answer(self, method: str, params: list[Any]) -> Any:
        key = file_key(method, params)
        if key in self.recorded:
            return self.recorded[key]
        derived: dict[str, Callable[[list[Any]], Any]] = {
            "eth_getBlockByNumber": self._block_without_txs,
            "eth_getLogs": self._logs,
            "eth_blockNumber": self._block_number,
        }
        if method not in derived:
            raise NotRecorded(key)
        return derived[method](params)

    def _block_without_txs(self, params: list[Any]) -> Any:
        full = self.recorded.get(file_key("eth_getBlockByNumber", [params[0], True]))
        if full is None or params[1] is not False:
            raise NotRecorded(file_key("eth_getBlockByNumber", params))
        return {**full, "transactions": [tx["hash"] for tx in full["transactions"]]}

    def _block_number(self, params: list[Any]) -> str:
        latest = self.recorded.get("eth_getBlockByNumber_latest_false")
        return latest["number"] if latest else hex(max(self.blocks))

    def _logs(self, params: list[Any]) -> list[dict]:
        query = params[0]
        start, end = int(query["fromBlock"], 16), int(query["toBlock"], 16)
        addresses = _as_set(query.get("address"))
        topic0 = _as_set((query.get("topics") or [None])[0])
        out = []
        for number in range(start, end + 1):
            for entry in self._block_logs(number):
                if addresses and entry["address"].lower() not in addresses:
                    continue
                if topic0 and (not entry["topics"] or entry["topics"][0].lower() not in topic0):
                    continue
                out.append(entry)
        return out

    def _block_logs(self, number: int) -> list[dict]:
        block = self.blocks.get(number)
        if block is None:
            raise NotRecorded(f"eth_getLogs: block {number} not recorded")
        logs = []
        for tx in block["transactions"]:
            receipt = self.receipts.get(tx["hash"].lower())
            if receipt is None:
                raise NotRecorded(f"eth_getLogs: receipt of {tx['hash']} not recorded")
            logs.extend(receipt["logs"])
        return logs


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    values = value if isinstance(value, list) else [value]
    return {v.lower() for v in values}


class RpcStub:
    """A threaded HTTP JSON-RPC server on 127.0.0.1 (ephemeral port); a context manager."""

    def __init__(self, answer: Callable[[str, list[Any]], Any]):
        self.answer = answer
        self.faults: list[tuple[int, dict | None]] = []
        self.requests: list[tuple[str, list[Any]]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RpcStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def respond(self, request: dict) -> tuple[int, dict]:
        method, params = request["method"], request.get("params") or []
        with self._lock:
            self.requests.append((method, params))
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            status, error = fault
            return status, {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
        try:
            result = self.answer(method, params)
        except NotRecorded as exc:
            error = {"code": -32601, "message": f"not recorded: {exc}"}
            return 200, {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
        except RpcFault as exc:
            error = {"code": exc.code, "message": exc.message}
            return 200, {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
        return 200, {"jsonrpc": "2.0", "id": request.get("id"), "result": result}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if isinstance(body, list):
                    status, payload = 200, [stub.respond(r)[1] for r in body]
                else:
                    status, payload = stub.respond(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

"""A local stand-in for the parts of the Nomad HTTP API the launcher uses.

`PUT|POST /v1/jobs` and `POST /v1/job/<id>` (register), `GET /v1/job/<id>`,
`GET /v1/job/<id>/allocations`, `DELETE /v1/job/<id>` (stop, `?purge=true` removes it), with ACL
tokens (`X-Nomad-Token`), namespaces (`?namespace=`, default "default") and a region (`?region=`
other than the server's gives Nomad's 500 "No path to region").

Tests script each job's life: `server.script("task-", ["pending", "running", ("complete", 0)])`.
Each `GET /v1/job/<id>` moves the job one step along its script (the last step sticks) and the
allocations show the step the last job read showed, so one `job_state` call is one step. Steps:
"queued" (no allocation yet), "pending", "running", ("complete", code), ("failed", code), with
code None for a task that never started (driver failure), and "lost".
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Step = str | tuple[str, int | None]
DEFAULT_SCRIPT: tuple[Step, ...] = ("pending", "running", ("complete", 0))
_STEP_NAMES = {"queued", "pending", "running", "complete", "failed", "lost"}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    params: dict[str, str]
    token: str | None
    body: Any = None


@dataclass
class FakeJob:
    """A registered job and where it is in its script."""

    namespace: str
    payload: dict[str, Any]
    steps: list[Step]
    create_index: int
    modify_index: int
    submit_time: int
    alloc_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    eval_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    reads: int = 0
    shown: int = 0
    stopped: bool = False

    @property
    def job_id(self) -> str:
        return str(self.payload["ID"])

    def step(self) -> tuple[str, int | None]:
        """The step the last job read showed, as (name, exit code)."""
        raw = self.steps[min(self.shown, len(self.steps) - 1)]
        return (raw, None) if isinstance(raw, str) else (raw[0], raw[1])


def _normalise(steps: Sequence[Step]) -> list[Step]:
    if not steps:
        raise ValueError("a script needs at least one step")
    for step in steps:
        name = step if isinstance(step, str) else step[0]
        if name not in _STEP_NAMES:
            raise ValueError(f"unknown step {step!r}; use one of {sorted(_STEP_NAMES)}")
    return list(steps)


def _event(kind: str, message: str, now: int, **details: str) -> dict[str, Any]:
    # Like Nomad, every event carries the deprecated ExitCode field, 0 unless it terminated.
    exit_code = int(details.get("exit_code", "0"))
    return {
        "Type": kind,
        "Time": now,
        "DisplayMessage": message,
        "Message": "",
        "Details": dict(details),
        "ExitCode": exit_code,
        "Signal": 0,
        "FailsTask": kind in ("Not Restarting", "Driver Failure"),
    }


class FakeNomadServer(ThreadingHTTPServer):
    """The Nomad stand-in; use `running_nomad_server` to start and stop it."""

    daemon_threads = True

    def __init__(
        self,
        *,
        token: str | None = None,
        region: str = "global",
        default_script: Sequence[Step] = DEFAULT_SCRIPT,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _NomadHandler)
        self.token = token
        self.region = region
        self.default_script = _normalise(default_script)
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], FakeJob] = {}
        self._scripts: dict[str, list[Step]] = {}
        self._registered: list[dict[str, Any]] = []
        self._requests: list[RecordedRequest] = []
        self._index = 10

    @property
    def address(self) -> str:
        """`http://127.0.0.1:<port>`, what NomadLauncher takes as `address`."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    # -- test API ------------------------------------------------------------------------------

    def script(self, job_id_or_prefix: str, steps: Sequence[Step]) -> None:
        """Script the jobs whose id starts with this (the longest matching key wins)."""
        with self._lock:
            self._scripts[job_id_or_prefix] = _normalise(steps)
            for job in self._jobs.values():
                if self._script_key(job.job_id) == job_id_or_prefix:
                    job.steps, job.reads, job.shown = list(steps), 0, 0

    @property
    def registered_jobs(self) -> list[dict[str, Any]]:
        """Every registered job payload (the value of "Job"), in order, re-registrations included."""
        with self._lock:
            return [json.loads(json.dumps(payload)) for payload in self._registered]

    def job_payload(self, job_id: str, namespace: str = "default") -> dict[str, Any]:
        """The current payload of a job (KeyError if unknown)."""
        with self._lock:
            return json.loads(json.dumps(self._jobs[(namespace, job_id)].payload))

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, refused ones included."""
        with self._lock:
            return list(self._requests)

    # -- internals -----------------------------------------------------------------------------

    def _script_key(self, job_id: str) -> str | None:
        keys = [key for key in self._scripts if job_id.startswith(key)]
        return max(keys, key=len) if keys else None

    def _next_index(self) -> int:
        self._index += 1
        return self._index

    def register(self, namespace: str, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._registered.append(payload)
            index = self._next_index()
            key = (namespace, str(payload["ID"]))
            job = self._jobs.get(key)
            if job is None:
                script_key = self._script_key(key[1])
                steps = self._scripts[script_key] if script_key else self.default_script
                job = FakeJob(namespace, payload, list(steps), index, index, time.time_ns())
                self._jobs[key] = job
            else:
                job.payload, job.modify_index = payload, index
            return {
                "EvalID": job.eval_id,
                "EvalCreateIndex": index,
                "JobModifyIndex": index,
                "Warnings": "",
                "Index": index,
                "LastContact": 0,
                "KnownLeader": True,
            }

    def read_job(self, namespace: str, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get((namespace, job_id))
            if job is None:
                return None
            if not job.stopped:
                job.shown = job.reads
                job.reads += 1
            name, _ = job.step()
            if job.stopped or name in ("complete", "failed", "lost"):
                status = "dead"
            else:
                status = "running" if name == "running" else "pending"
            return {
                **json.loads(json.dumps(job.payload)),
                "Namespace": job.namespace,
                "Region": self.region,
                "Status": status,
                "Stop": job.stopped,
                "CreateIndex": job.create_index,
                "ModifyIndex": job.modify_index,
                "JobModifyIndex": job.modify_index,
                "SubmitTime": job.submit_time,
            }

    def read_allocations(self, namespace: str, job_id: str) -> list[dict[str, Any]] | None:
        with self._lock:
            job = self._jobs.get((namespace, job_id))
            if job is None:
                return None
            return self._allocations(job)

    def _allocations(self, job: FakeJob) -> list[dict[str, Any]]:
        name, code = job.step()
        if name == "queued":  # not placed yet, or stopped before placement: no allocation
            return []
        now = time.time_ns()
        events = [
            _event("Received", "Task received by client", now),
            _event("Task Setup", "Building Task Directory", now),
        ]
        task = {"State": "pending", "Failed": False, "Restarts": 0, "Events": events}
        client_status, description = name, ""
        if name in ("running", "complete") or (name == "failed" and code is not None):
            events.append(_event("Started", "Task started by client", now))
            task["State"] = "running"
        if name in ("complete", "failed") and code is not None:
            events.append(
                _event("Terminated", f"Exit Code: {code}", now, exit_code=str(code), signal="0")
            )
            task["State"] = "dead"
        if name == "failed":
            task["Failed"] = True
            task["State"] = "dead"
            if code is None:
                events.append(_event("Driver Failure", "Failed to pull image: not found", now))
            events.append(_event("Not Restarting", "Policy allows no restarts", now))
            description = "Failed tasks"
        if name == "complete":
            description = "All tasks have completed"
        if name == "lost":
            description = "alloc is lost since its node is down"
        if job.stopped and name in ("pending", "running"):
            events.append(_event("Killing", "Sent interrupt. Waiting 5s before force killing", now))
            if name == "running":
                events.append(
                    _event("Terminated", "Exit Code: 137", now, exit_code="137", signal="9")
                )
            events.append(_event("Killed", "Task successfully killed", now))
            task["State"] = "dead"
            client_status, description = "complete", "All tasks have completed"
        constraints = job.payload.get("Constraints") or [{}]
        group = (job.payload.get("TaskGroups") or [{}])[0]
        task_name = (group.get("Tasks") or [{}])[0].get("Name", "task")
        return [
            {
                "ID": job.alloc_id,
                "EvalID": job.eval_id,
                "Name": f"{job.job_id}.{group.get('Name', 'group')}[0]",
                "Namespace": job.namespace,
                "NodeID": str(uuid.uuid5(uuid.NAMESPACE_DNS, str(constraints[0].get("RTarget")))),
                "NodeName": constraints[0].get("RTarget"),
                "JobID": job.job_id,
                "TaskGroup": group.get("Name"),
                "DesiredStatus": "stop" if job.stopped else "run",
                "DesiredDescription": "alloc is being stopped" if job.stopped else "",
                "ClientStatus": client_status,
                "ClientDescription": description,
                "TaskStates": {task_name: task},
                "CreateIndex": job.create_index + 1,
                "ModifyIndex": job.modify_index + 1 + job.reads,
                "CreateTime": job.submit_time,
                "ModifyTime": now,
            }
        ]

    def stop(self, namespace: str, job_id: str, purge: bool) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get((namespace, job_id))
            if job is None:
                return None
            index = self._next_index()
            if purge:
                del self._jobs[(namespace, job_id)]
            else:
                job.stopped, job.modify_index = True, index
            return {"EvalID": str(uuid.uuid4()), "EvalCreateIndex": index, "JobModifyIndex": index}

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


class _NomadHandler(BaseHTTPRequestHandler):
    server: FakeNomadServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, body: Any) -> None:
        if isinstance(body, str):  # Nomad answers errors as plain text
            data, content_type = body.encode(), "text/plain"
        else:
            data, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status < 300:
            self.send_header("X-Nomad-Index", str(self.server._index))
            self.send_header("X-Nomad-KnownLeader", "true")
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body: Any = None
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._send(400, "invalid JSON body")
                return
        token = self.headers.get("X-Nomad-Token")
        self.server.record(RecordedRequest(self.command, url.path, params, token, body))

        if self.server.token is not None and token != self.server.token:
            self._send(403, "ACL token not found" if token else "Permission denied")
            return
        if params.get("region") not in (None, self.server.region):
            self._send(500, f"No path to region {params['region']!r}")
            return
        namespace = params.get("namespace") or "default"
        parts = [unquote(part) for part in url.path.strip("/").split("/")]

        if parts == ["v1", "jobs"] and self.command in ("PUT", "POST"):
            self._register(body, namespace, path_id=None)
        elif len(parts) == 3 and parts[:2] == ["v1", "job"]:
            job_id = parts[2]
            if self.command in ("PUT", "POST"):
                self._register(body, namespace, path_id=job_id)
            elif self.command == "GET":
                self._reply(self.server.read_job(namespace, job_id))
            elif self.command == "DELETE":
                purge = params.get("purge", "").lower() == "true"
                self._reply(self.server.stop(namespace, job_id, purge))
            else:
                self._send(405, "method not allowed")
        elif len(parts) == 4 and parts[:2] == ["v1", "job"] and parts[3] == "allocations":
            if self.command != "GET":
                self._send(405, "method not allowed")
                return
            # Nomad answers [] for the allocations of a job it does not know.
            self._send(200, self.server.read_allocations(namespace, parts[2]) or [])
        else:
            self._send(404, "Not found")

    def _reply(self, body: Any) -> None:
        if body is None:
            self._send(404, "job not found")
        else:
            self._send(200, body)

    def _register(self, body: Any, namespace: str, path_id: str | None) -> None:
        job = body.get("Job") if isinstance(body, Mapping) else None
        if not isinstance(job, Mapping) or not job.get("ID"):
            self._send(400, "Job must be specified")
            return
        if path_id is not None and job["ID"] != path_id:
            self._send(400, "Job ID does not match name")
            return
        if job.get("Type", "service") not in ("service", "batch", "system", "sysbatch"):
            self._send(400, f"Invalid job type {job.get('Type')!r}")
            return
        self._send(200, self.server.register(job.get("Namespace") or namespace, dict(job)))

    do_GET = _handle
    do_PUT = _handle
    do_POST = _handle
    do_DELETE = _handle


@contextmanager
def running_nomad_server(
    token: str | None = None,
    *,
    region: str = "global",
    default_script: Sequence[Step] = DEFAULT_SCRIPT,
) -> Iterator[FakeNomadServer]:
    """Run a fake Nomad agent in a background thread for the duration of the block."""
    server = FakeNomadServer(token=token, region=region, default_script=default_script)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-nomad", daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

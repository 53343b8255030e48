"""Python client for Lethe's public gRPC API, the `lethe.v1.Coordinator` service.

    from lethe_client import LetheClient

    with LetheClient("127.0.0.1:7070") as client:
        submitted = client.submit_forget("forget-airplane-1", class_name="airplane")
        job = client.wait_for_job(submitted.job.job_id)
        print(client.get_receipt(submitted.receipt_id))

Importing the package generates the stubs from proto/lethe/v1 when they are missing or stale
(see `lethe_client._stubs`). The generated modules are re-exported as `coordinator_pb2`,
`coordinator_pb2_grpc` and `common_pb2`.
"""

from __future__ import annotations

from pathlib import Path

try:
    import grpc as _grpc  # noqa: F401
    import google.protobuf as _protobuf  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the interpreter
    from ._stubs import INSTALL_HINT as _HINT

    raise ImportError(f"lethe_client needs grpcio and protobuf: {_HINT}") from _err

from ._stubs import StubGenerationError, ensure_stubs as _ensure_stubs

_STUBS_ROOT = _ensure_stubs()

from lethe.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc  # noqa: E402

if not Path(coordinator_pb2.__file__).resolve().is_relative_to(_STUBS_ROOT.resolve()):
    raise ImportError(
        f"`lethe.v1` resolved to {coordinator_pb2.__file__}, not to the generated stubs in "
        f"{_STUBS_ROOT}: another package named `lethe` shadows them"
    )

from .client import (  # noqa: E402
    TERMINAL_STATES,
    LetheClient,
    LetheError,
    is_terminal,
    job_state_name,
)

__all__ = [
    "LetheClient",
    "LetheError",
    "StubGenerationError",
    "TERMINAL_STATES",
    "common_pb2",
    "coordinator_pb2",
    "coordinator_pb2_grpc",
    "is_terminal",
    "job_state_name",
]

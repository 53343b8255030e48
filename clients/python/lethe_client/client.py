"""`LetheClient`: a thin, typed wrapper over the `lethe.v1.Coordinator` gRPC stub.

Methods return the generated protobuf messages unchanged; field names are those of
proto/lethe/v1/coordinator.proto. Every failed call raises `LetheError`.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from lethe.v1 import common_pb2, coordinator_pb2 as pb, coordinator_pb2_grpc as pb_grpc

TERMINAL_STATES = frozenset(
    {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
)

# Options of SubmitForgetRequest besides request_id and the target. `lambda` is a Python keyword,
# so it is also accepted as `lambda_`.
_FORGET_OPTIONS = (
    "method",
    "loss",
    "epochs",
    "learning_rate",
    "lambda",
    "select",
    "mask_output",
    "batch_size",
    "seed",
)

# How long wait_for_job keeps re-attaching to a coordinator that stays UNAVAILABLE.
RECONNECT_SECONDS = 60.0

_DEFAULT: Any = object()  # "use the client's default timeout"
PathOrBytes = Union[bytes, str, "os.PathLike[str]"]


class LetheError(Exception):
    """A failed Coordinator call: the gRPC status code name and the server's message.

    `code_name` is e.g. `NOT_FOUND`; `code` the matching `grpc.StatusCode` (None if unknown).
    `str(err)` is `NOT_FOUND: <message>`. The original `grpc.RpcError`, if any, is `__cause__`.
    """

    def __init__(self, code_name: str, message: str) -> None:
        super().__init__(code_name, message)
        self.code_name = code_name
        self.message = message
        self.code: grpc.StatusCode | None = getattr(grpc.StatusCode, code_name, None)

    def __str__(self) -> str:
        return f"{self.code_name}: {self.message}"

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "LetheError":
        code = err.code() if hasattr(err, "code") else None
        details = err.details() if hasattr(err, "details") else None
        name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
        return cls(name, details or str(err))


def enum_value(enum: EnumTypeWrapper, prefix: str, value: int | str) -> int:
    """An enum value from an int, a full name (`FORGET_METHOD_SISA_REPLAY`) or a short name in any
    case, with `-` or `_` (`sisa-replay`)."""
    if isinstance(value, bool):
        raise TypeError(f"expected an int or a name, got {value!r}")
    if isinstance(value, int):
        return value
    key = str(value).strip().upper().replace("-", "_")
    for candidate in (key, prefix + key):
        if candidate in enum.keys():
            return enum.Value(candidate)
    raise ValueError(
        f"unknown {enum.DESCRIPTOR.name} {value!r}; expected one of "
        f"{', '.join(enum_choices(enum, prefix))}"
    )


def enum_choices(enum: EnumTypeWrapper, prefix: str) -> list[str]:
    """Short lower-case names of an enum's values, without UNSPECIFIED: `sisa-replay`, ..."""
    return [
        name[len(prefix):].lower().replace("_", "-")
        for name in enum.keys()
        if not name.endswith("_UNSPECIFIED")
    ]


def job_state_name(state: int) -> str:
    """`SUCCEEDED` for JOB_STATE_SUCCEEDED, etc."""
    try:
        return pb.JobState.Name(state).removeprefix("JOB_STATE_")
    except ValueError:
        return str(state)


def is_terminal(state: int) -> bool:
    return state in TERMINAL_STATES


def _read_pem(value: PathOrBytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as handle:
        return handle.read()


class LetheClient:
    """Client of the public Coordinator service.

    target: `host:port` of the coordinator.
    token: when given, every call carries `authorization: Bearer <token>` metadata.
    root_certificates: PEM bytes, or the path of a PEM file, of the CAs to trust; giving it (or
        `tls=True`, which uses the system's roots) makes the channel TLS. Plaintext otherwise.
    timeout: default deadline in seconds of unary calls (None: no deadline). Each method takes
        its own `timeout` too. Streams (watch_job) have no deadline unless given one.
    options: extra gRPC channel options, e.g. [("grpc.max_receive_message_length", 64 << 20)].
    """

    def __init__(
        self,
        target: str,
        token: str | None = None,
        root_certificates: PathOrBytes | None = None,
        timeout: float | None = 30.0,
        *,
        tls: bool = False,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        if root_certificates is not None or tls:
            credentials = grpc.ssl_channel_credentials(_read_pem(root_certificates))
            self._channel = grpc.secure_channel(target, credentials, options=list(options))
        else:
            self._channel = grpc.insecure_channel(target, options=list(options))
        self.stub = pb_grpc.CoordinatorStub(self._channel)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "LetheClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LetheClient({self.target!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is _DEFAULT else timeout

    def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        try:
            return getattr(self.stub, method)(
                request, timeout=self._deadline(timeout), metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise LetheError.from_rpc_error(err) from err

    # -- forgetting ----------------------------------------------------------------------------

    def submit_forget(
        self,
        request_id: str,
        class_name: str | None = None,
        class_index: int | None = None,
        sample_ids: Iterable[str] | str | None = None,
        *,
        class_id: int | None = None,
        timeout: float | None = _DEFAULT,
        **options: Any,
    ) -> pb.SubmitForgetResponse:
        """Submits a forget request for exactly one target: a class by name (`class_name`), a class
        by index (`class_index`, alias `class_id`) or training samples by id (`sample_ids`).

        options: method (`targeted`, `retrain`, `finetune`, `gradient-ascent`, `random-label`,
        `mask`, `sisa-replay`, a full enum name or an int), loss (`complement-ce`,
        `random-label`), epochs, learning_rate, lambda (or lambda_), select (`coverage:0.8`,
        `top:2`), mask_output, batch_size, seed. Unset options take the server's defaults.
        Idempotent by request_id (see SubmitForgetResponse.duplicate).
        """
        if class_id is not None:
            if class_index is not None:
                raise TypeError("give class_index or class_id, not both")
            class_index = class_id
        given = [
            name
            for name, value in (
                ("class_name", class_name),
                ("class_index", class_index),
                ("sample_ids", sample_ids),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one target: class_name, class_index or sample_ids"
                + (f" (got {', '.join(given)})" if given else "")
            )
        request = pb.SubmitForgetRequest(request_id=request_id)
        if class_name is not None:
            request.class_name = class_name
        elif class_index is not None:
            request.class_index = class_index
        else:
            ids = [sample_ids] if isinstance(sample_ids, str) else list(sample_ids or ())
            # CopyFrom sets the oneof even for an empty list, which the server then rejects
            # by name instead of reporting a missing target.
            request.sample_ids.CopyFrom(common_pb2.SampleIds(ids=ids))

        if "lambda_" in options:
            if "lambda" in options:
                raise TypeError("give lambda or lambda_, not both")
            options["lambda"] = options.pop("lambda_")
        unknown = sorted(set(options) - set(_FORGET_OPTIONS))
        if unknown:
            raise TypeError(f"unknown forget option(s): {', '.join(unknown)}")
        for name, value in options.items():
            if value is None:
                continue
            if name == "method":
                value = enum_value(pb.ForgetMethod, "FORGET_METHOD_", value)
            elif name == "loss":
                value = enum_value(pb.UnlearningLoss, "UNLEARNING_LOSS_", value)
            setattr(request, name, value)
        return self._unary("SubmitForget", request, timeout)

    def get_receipt(self, receipt_id: str, *, timeout: float | None = _DEFAULT) -> pb.Receipt:
        """The receipt of a completed forget request (receipt_id = the request_id)."""
        return self._unary("GetReceipt", pb.GetReceiptRequest(request_id=receipt_id), timeout)

    def list_receipts(
        self, page_size: int = 0, page_token: str = "", *, timeout: float | None = _DEFAULT
    ) -> pb.ListReceiptsResponse:
        """One page of receipts, oldest first (page_size 0: the server's default, 50)."""
        request = pb.ListReceiptsRequest(page_size=page_size, page_token=page_token)
        return self._unary("ListReceipts", request, timeout)

    def iter_receipts(
        self, page_size: int = 0, *, timeout: float | None = _DEFAULT
    ) -> Iterator[pb.Receipt]:
        """Every receipt, oldest first, fetching pages as needed."""
        token = ""
        while True:
            page = self.list_receipts(page_size, token, timeout=timeout)
            yield from page.receipts
            token = page.next_page_token
            if not token:
                return

    # -- jobs ----------------------------------------------------------------------------------

    def get_job(self, job_id: str, *, timeout: float | None = _DEFAULT) -> pb.Job:
        return self._unary("GetJob", pb.GetJobRequest(job_id=job_id), timeout)

    def cancel_job(self, job_id: str, *, timeout: float | None = _DEFAULT) -> pb.Job:
        return self._unary("CancelJob", pb.CancelJobRequest(job_id=job_id), timeout)

    def watch_job(
        self, job_id: str, *, include_logs: bool = False, timeout: float | None = None
    ) -> Iterator[pb.JobEvent]:
        """Yields a job's events: a status snapshot first, then each event as it happens, ending
        after the terminal status. Closing the generator cancels the stream, not the job."""
        request = pb.WatchJobRequest(job_id=job_id, include_logs=include_logs)
        call = self.stub.WatchJob(request, timeout=timeout, metadata=self._metadata)
        try:
            for event in call:
                yield event
        except grpc.RpcError as err:
            raise LetheError.from_rpc_error(err) from err
        finally:
            call.cancel()

    def wait_for_job(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        on_event: Callable[[pb.JobEvent], None] | None = None,
        poll_interval: float = 1.0,
    ) -> pb.Job:
        """Blocks until the job is SUCCEEDED, FAILED or CANCELLED and returns it (check
        `job.state`; a failed job is returned, not raised).

        Follows WatchJob, re-attaching after a dropped stream (UNAVAILABLE, for up to
        RECONNECT_SECONDS), and falls back to
        polling GetJob every `poll_interval` seconds where WatchJob is UNIMPLEMENTED. `on_event`
        sees each JobEvent (watching only). Raises LetheError DEADLINE_EXCEEDED when `timeout`
        seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last_state = pb.JOB_STATE_UNSPECIFIED

        def timed_out() -> LetheError:
            return LetheError(
                "DEADLINE_EXCEEDED",
                f"job {job_id} did not finish within {timeout:g}s "
                f"(last state {job_state_name(last_state)})",
            )

        def remaining() -> float | None:
            if deadline is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out()
            return left

        def call_timeout() -> float | None:
            left = remaining()
            if left is None:
                return _DEFAULT
            return left if self.timeout is None else min(left, self.timeout)

        def sleep(seconds: float) -> None:
            left = remaining()
            time.sleep(seconds if left is None else min(seconds, left))

        backoff = 0.2
        unavailable_since: float | None = None
        watching = True
        while True:
            if watching:
                try:
                    for event in self.watch_job(job_id, timeout=remaining()):
                        backoff, unavailable_since = 0.2, None
                        if on_event is not None:
                            on_event(event)
                        if event.WhichOneof("event") != "status":
                            continue
                        last_state = event.status.state
                        if is_terminal(last_state):
                            job = event.status.job
                            if event.status.HasField("job") and is_terminal(job.state):
                                return job
                            break
                except LetheError as err:
                    if err.code_name == "DEADLINE_EXCEEDED" and deadline is not None:
                        raise timed_out() from err
                    if err.code_name == "UNIMPLEMENTED":
                        watching = False  # a coordinator without WatchJob: poll instead
                        continue
                    if err.code_name != "UNAVAILABLE":
                        raise
                    now = time.monotonic()
                    unavailable_since = unavailable_since or now
                    if now - unavailable_since > RECONNECT_SECONDS:
                        raise
                    sleep(backoff)  # the stream dropped: re-attach (the snapshot re-syncs)
                    backoff = min(backoff * 2, 5.0)
                    continue
            # Polling; or the stream ended, or its terminal status lacked the job: ask directly.
            try:
                job = self.get_job(job_id, timeout=call_timeout())
            except LetheError as err:
                if err.code_name == "DEADLINE_EXCEEDED" and deadline is not None:
                    raise timed_out() from err
                raise
            last_state = job.state
            if is_terminal(job.state):
                return job
            if watching:
                sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                sleep(poll_interval)

    # -- model, evaluation and cluster ---------------------------------------------------------

    def evaluate(
        self,
        dataset_uri: str | None = None,
        *,
        split: int | str | None = None,
        limit: int = 0,
        batch_size: int = 0,
        ignore_output_mask: bool = False,
        timeout: float | None = 600.0,
    ) -> pb.EvaluateResponse:
        """Evaluates the current model. dataset_uri like `cifar10:/data/cifar-10-batches-bin`;
        None: the test split of the training dataset. split: `train`, `test` or a Split value.
        Runs synchronously on the server, hence the longer default deadline (600 s)."""
        request = pb.EvaluateRequest(batch_size=batch_size, ignore_output_mask=ignore_output_mask)
        if dataset_uri is not None or split is not None or limit:
            request.dataset.limit = limit
            if dataset_uri is not None:
                request.dataset.uri = dataset_uri
            if split is not None:
                request.dataset.split = enum_value(common_pb2.Split, "SPLIT_", split)
        return self._unary("Evaluate", request, timeout)

    def list_samples(
        self,
        subject: str | None = None,
        class_name: str | None = None,
        shard: int | None = None,
        *,
        timeout: float | None = _DEFAULT,
    ) -> pb.ListSamplesResponse:
        """The current model's training samples, from its stored roster and without those the
        erasure ledger holds, for exactly one selector: a data subject id (`subject`), a class by
        name (`class_name`) or a shard of a sisa model (`shard`, 0 included). Samples come in
        index order, each with its class, its subject ("" when it has none) and, listed by shard,
        its slice. One response: ListSamples does not page.

        Raises LetheError: INVALID_ARGUMENT for an empty or over-long subject or class name;
        NOT_FOUND for a shard the model does not have; FAILED_PRECONDITION with no trained
        model, a model stored without a roster, or a shard of a joint model.
        """
        given = [
            name
            for name, value in (("subject", subject), ("class_name", class_name), ("shard", shard))
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one selector: subject, class_name or shard"
                + (f" (got {', '.join(given)})" if given else "")
            )
        request = pb.ListSamplesRequest()
        # Assigning a oneof member selects it even at its default ("", 0): an empty name then
        # reaches the server, which refuses it by name, and shard 0 is a shard.
        if subject is not None:
            request.subject = subject
        elif class_name is not None:
            request.class_name = class_name
        else:
            if isinstance(shard, bool) or not isinstance(shard, int):
                raise TypeError(f"shard: expected an int, got {shard!r}")
            if shard < 0:
                raise ValueError(f"shard: must be >= 0, got {shard}")
            request.shard = shard
        return self._unary("ListSamples", request, timeout)

    def list_experts(self, *, timeout: float | None = _DEFAULT) -> pb.ListExpertsResponse:
        return self._unary("ListExperts", pb.ListExpertsRequest(), timeout)

    def list_workers(self, *, timeout: float | None = _DEFAULT) -> pb.ListWorkersResponse:
        return self._unary("ListWorkers", pb.ListWorkersRequest(), timeout)

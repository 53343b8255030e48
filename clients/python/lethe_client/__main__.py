"""Command line client of the Lethe coordinator: `python3 -m lethe_client --help`.

    python3 -m lethe_client --target 127.0.0.1:7070 forget --class airplane --request-id r1 \
        --wait --json
    python3 -m lethe_client --target 127.0.0.1:7070 receipt r1 --json

Exit status: 0 on success; 1 when a call fails (one line `error: CODE: message` on stderr) or a
waited-for job ends FAILED or CANCELLED; 2 on a usage error; 130 when interrupted.
`--json` prints the response message as proto3 JSON with the .proto field names, including fields
at their default value (so `"duplicate": false` is present); 64-bit integers are JSON strings.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any, Callable, Sequence, TextIO

from google.protobuf import json_format
from google.protobuf.message import Message

from . import LetheClient, LetheError, common_pb2, coordinator_pb2 as pb, job_state_name
from .client import enum_choices, is_terminal

PROG = "python3 -m lethe_client"
DEFAULT_TARGET = "127.0.0.1:7070"


# -- output ----------------------------------------------------------------------------------------


def to_json(message: Message, *, indent: int | None = 2) -> str:
    """proto3 JSON with the .proto field names and default-valued fields included."""
    kwargs: dict[str, Any] = {"preserving_proto_field_name": True, "indent": indent}
    try:
        text = json_format.MessageToJson(message, including_default_value_fields=True, **kwargs)
    except TypeError:  # protobuf >= 5.26 renamed the option
        text = json_format.MessageToJson(
            message, always_print_fields_with_no_presence=True, **kwargs
        )
    return text if indent is not None else " ".join(text.split("\n"))


def _enum(enum: Any, prefix: str, value: int) -> str:
    try:
        return enum.Name(value).removeprefix(prefix)
    except ValueError:
        return str(value)


def _time(ts: Any) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    moment = datetime.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ints(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values) or "-"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def format_progress(p: Any) -> str:
    parts = [p.phase or "?"]
    if p.epochs:
        parts.append(f"epoch {p.epoch}/{p.epochs}")
    if p.steps_per_epoch:
        parts.append(f"step {p.step}/{p.steps_per_epoch}")
    if p.HasField("shard"):
        parts.append(f"shard {p.shard}")
    if p.HasField("slice"):
        parts.append(f"slice {p.slice}")
    parts.append(f"loss {p.loss:.4f}")
    parts.append(f"acc {p.accuracy:.3f}")
    if p.HasField("eta_seconds"):
        parts.append(f"eta {p.eta_seconds:.0f}s")
    return " ".join(parts)


def format_job(job: Any) -> str:
    lines = [
        f"job        {job.job_id}",
        f"kind       {_enum(pb.JobKind, 'JOB_KIND_', job.kind)}",
        f"state      {job_state_name(job.state)}",
        f"request    {job.request_id or '-'}",
        f"created    {_time(job.created_at)}",
        f"started    {_time(job.started_at)}",
        f"finished   {_time(job.finished_at)}",
    ]
    if job.HasField("progress"):
        lines.append(f"progress   {format_progress(job.progress)}")
    if job.manifest_revision:
        lines.append(f"revision   {job.manifest_revision}")
    if job.error:
        lines.append(f"error      {job.error}")
    return "\n".join(lines)


def format_submit(response: Any) -> str:
    note = " (duplicate: the original job)" if response.duplicate else ""
    return f"receipt    {response.receipt_id}{note}\n{format_job(response.job)}"


def _metrics_row(name: str, before: Any, after: Any) -> str:
    return f"  {name:<28} {before:>8.2f} -> {after:>8.2f}"


def format_receipt(r: Any) -> str:
    req = r.request
    target = req.WhichOneof("target")
    if target == "class_target":
        what = f"class {req.class_target.name} ({req.class_target.index})"
    elif target == "sample_ids":
        what = f"{len(req.sample_ids.ids)} sample(s)"
    else:
        what = "-"
    lines = [
        f"receipt    {r.request_id}",
        f"job        {r.job_id or '-'}",
        f"created    {_time(r.created_at)}",
        f"target     {what}",
        f"method     {_enum(pb.ForgetMethod, 'FORGET_METHOD_', req.method).lower()}"
        f" ({_enum(pb.ForgetMode, 'FORGET_MODE_', r.mode).lower()})",
        f"retrained  experts {_ints(r.experts_retrained)}",
        f"changed    {', '.join(r.parts_changed) or '-'}",
        f"manifest   {r.manifest.before} -> {r.manifest.after}",
    ]
    if r.suppress_classes:
        lines.append(f"suppressed {_ints(r.suppress_classes)}")
    if r.HasField("metrics"):
        b, a = r.metrics.before, r.metrics.after
        lines.append("metrics (%)                      before       after")
        lines.append(_metrics_row("unlearning accuracy (UA)", b.ua, a.ua))
        lines.append(_metrics_row("retain accuracy (RA)", b.ra, a.ra))
        lines.append(_metrics_row("test accuracy, kept (TA)", b.ta, a.ta))
        if target == "class_target":
            lines.append(
                _metrics_row(
                    "forgotten-class test acc.",
                    b.forgotten_class_test_accuracy,
                    a.forgotten_class_test_accuracy,
                )
            )
        lines.append(_metrics_row("MIA-efficacy", b.mia_efficacy, a.mia_efficacy))
    if r.HasField("timings"):
        lines.append(f"seconds    {r.timings.total_seconds:.1f}")
    return "\n".join(lines)


def format_receipts(receipts: Sequence[Any]) -> str:
    rows = [("REQUEST", "JOB", "CREATED", "TARGET", "METHOD", "EXPERTS")]
    for r in receipts:
        req = r.request
        target = req.WhichOneof("target")
        what = (
            f"class:{req.class_target.name}"
            if target == "class_target"
            else f"samples:{len(req.sample_ids.ids)}"
            if target == "sample_ids"
            else "-"
        )
        method = _enum(pb.ForgetMethod, "FORGET_METHOD_", req.method).lower()
        rows.append(
            (r.request_id, r.job_id or "-", _time(r.created_at), what, method,
             _ints(r.experts_retrained))
        )
    return _table(rows)


def format_workers(workers: Sequence[Any]) -> str:
    rows = [("WORKER", "ADDRESS", "STATE", "DEVICE", "EXPERTS", "CAPACITY", "LAST HEARTBEAT")]
    for w in workers:
        kind = _enum(common_pb2.DeviceKind, "DEVICE_KIND_", w.device.kind)
        device = f"{kind}/{w.device.engine or '?'}"
        rows.append(
            (w.worker_id, w.address, _enum(pb.WorkerState, "WORKER_STATE_", w.state), device,
             _ints(w.expert_ids), str(w.capacity.max_experts), _time(w.last_heartbeat))
        )
    return _table(rows)


def format_experts(response: Any) -> str:
    rows = [("EXPERT", "STATUS", "WORKER", "ADDRESS", "PARAMETERS", "CHECKPOINT")]
    for e in response.experts:
        rows.append(
            (str(e.expert_id), _enum(pb.ExpertStatus, "EXPERT_STATUS_", e.status),
             e.worker_id or "-", e.worker_address or "-", str(e.parameters),
             e.checkpoint.sha256[:12] or "-")
        )
    return f"manifest revision {response.manifest_revision}\n" + _table(rows)


def format_samples(response: Any, *, by_shard: bool = False) -> str:
    """A table of listed samples (with each one's slice when listed by shard) and a count."""
    count = len(response.samples)
    tail = f"(manifest revision {response.manifest_revision})"
    if not count:
        return f"no samples {tail}"
    header = ("SAMPLE", "CLASS", "SUBJECT") + (("SLICE",) if by_shard else ())
    rows: list[tuple[str, ...]] = [header]
    for s in response.samples:
        row: tuple[str, ...] = (s.sample_id, s.class_name, s.subject or "-")
        if by_shard:
            row += (str(s.slice) if s.HasField("slice") else "-",)
        rows.append(row)
    return f"{_table(rows)}\n{count} sample{'' if count == 1 else 's'} {tail}"


def format_evaluation(r: Any) -> str:
    lines = [
        f"revision   {r.manifest_revision}",
        f"accuracy   {r.accuracy * 100:.2f}% ({r.correct}/{r.samples}) in {r.seconds:.1f}s",
    ]
    for c in r.per_class:
        lines.append(f"  {c.class_index:>3} {c.class_name:<16} {c.accuracy * 100:6.2f}%")
    return "\n".join(lines)


def format_event(event: Any) -> str:
    kind = event.WhichOneof("event")
    head = f"{_time(event.time)} #{event.sequence}"
    if kind == "status":
        s = event.status
        line = f"{head} state {job_state_name(s.state)}"
        if s.job.error:
            line += f": {s.job.error}"
        return line
    if kind == "progress":
        return f"{head} {format_progress(event.progress)}"
    if kind == "log":
        level = _enum(pb.LogLevel, "LOG_LEVEL_", event.log.level)
        return f"{head} {level} {event.log.source}: {event.log.text}"
    return head


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


# -- commands --------------------------------------------------------------------------------------


class JobDidNotSucceed(Exception):
    """A waited-for job ended FAILED or CANCELLED (exit status 1)."""


def _emit(args: argparse.Namespace, message: Message, text: Callable[[Any], str]) -> None:
    print(to_json(message) if args.json else text(message))


def _read_sample_ids(path: str) -> list[str]:
    handle: TextIO = sys.stdin if path == "-" else open(path, encoding="utf-8")
    with handle:
        lines = (line.strip() for line in handle)
        return [line for line in lines if line and not line.startswith("#")]


def cmd_forget(client: LetheClient, args: argparse.Namespace) -> None:
    sample_ids = list(args.samples or [])
    if args.samples_file:
        sample_ids += _read_sample_ids(args.samples_file)
    response = client.submit_forget(
        args.request_id,
        class_name=args.class_name,
        class_index=args.class_index,
        sample_ids=sample_ids if (args.samples or args.samples_file) else None,
        method=args.method,
        loss=args.loss,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        lambda_=args.lambda_,
        select=args.select,
        mask_output=args.mask_output or None,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if args.wait and not is_terminal(response.job.state):
        last_phase = [""]

        def report(event: Any) -> None:
            kind = event.WhichOneof("event")
            if kind == "status":
                print(f"{event.job_id}: {job_state_name(event.status.state)}", file=sys.stderr)
            elif kind == "progress" and event.progress.phase != last_phase[0]:
                last_phase[0] = event.progress.phase
                print(f"{event.job_id}: {event.progress.phase}", file=sys.stderr)

        job = client.wait_for_job(
            response.job.job_id,
            args.wait_timeout,
            on_event=None if args.json else report,
        )
        response.job.CopyFrom(job)
    _emit(args, response, format_submit)
    if args.wait and response.job.state != pb.JOB_STATE_SUCCEEDED:
        detail = f": {_one_line(response.job.error)}" if response.job.error else ""
        raise JobDidNotSucceed(
            f"job {response.job.job_id} {job_state_name(response.job.state)}{detail}"
        )


def cmd_job(client: LetheClient, args: argparse.Namespace) -> None:
    _emit(args, client.get_job(args.job_id), format_job)


def cmd_cancel(client: LetheClient, args: argparse.Namespace) -> None:
    _emit(args, client.cancel_job(args.job_id), format_job)


def cmd_watch(client: LetheClient, args: argparse.Namespace) -> None:
    for event in client.watch_job(args.job_id, include_logs=args.logs):
        print(to_json(event, indent=None) if args.json else format_event(event), flush=True)


def cmd_receipt(client: LetheClient, args: argparse.Namespace) -> None:
    _emit(args, client.get_receipt(args.receipt_id), format_receipt)


def cmd_receipts(client: LetheClient, args: argparse.Namespace) -> None:
    receipts = list(client.iter_receipts(args.page_size))
    response = pb.ListReceiptsResponse(receipts=receipts, total_size=len(receipts))
    _emit(args, response, lambda r: format_receipts(r.receipts))


def cmd_samples(client: LetheClient, args: argparse.Namespace) -> None:
    response = client.list_samples(
        subject=args.subject, class_name=args.class_name, shard=args.shard
    )
    _emit(args, response, lambda r: format_samples(r, by_shard=args.shard is not None))


def cmd_workers(client: LetheClient, args: argparse.Namespace) -> None:
    _emit(args, client.list_workers(), lambda r: format_workers(r.workers))


def cmd_experts(client: LetheClient, args: argparse.Namespace) -> None:
    _emit(args, client.list_experts(), format_experts)


def cmd_evaluate(client: LetheClient, args: argparse.Namespace) -> None:
    response = client.evaluate(
        args.data,
        split=args.split,
        limit=args.limit,
        batch_size=args.batch_size,
        ignore_output_mask=args.ignore_output_mask,
        timeout=args.eval_timeout,
    )
    _emit(args, response, format_evaluation)


# -- arguments -------------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def _deadline(text: str) -> float | None:
    """Seconds > 0, or 0 / `none` for no deadline."""
    if text.lower() in ("0", "none"):
        return None
    return _positive_float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Client of the Lethe coordinator's public gRPC API (lethe.v1.Coordinator).",
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("LETHE_TARGET", DEFAULT_TARGET),
        help=f"coordinator host:port (default $LETHE_TARGET or {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("LETHE_TOKEN") or None,
        help="bearer token sent as `authorization: Bearer TOKEN` (default $LETHE_TOKEN)",
    )
    parser.add_argument("--tls", action="store_true", help="use TLS with the system's CAs")
    parser.add_argument("--ca-cert", metavar="PEM", help="use TLS trusting the CAs in this file")
    parser.add_argument(
        "--timeout",
        type=_deadline,
        default=30.0,
        metavar="SECONDS",
        help="deadline of each call (default 30; 0 for none)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--json", action="store_true", help="print the response as JSON (proto field names)"
    )

    def command(name: str, run: Callable[..., None], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[output], help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    forget = command("forget", cmd_forget, "submit a forget request (SubmitForget)")
    target = forget.add_mutually_exclusive_group(required=True)
    target.add_argument("--class", dest="class_name", metavar="NAME", help="a class by name")
    target.add_argument("--class-index", type=int, metavar="N", help="a class by index")
    target.add_argument(
        "--samples", nargs="+", metavar="ID", help="training samples, e.g. cifar10:train:123"
    )
    target.add_argument(
        "--samples-file", metavar="FILE", help="sample ids, one per line (`-`: stdin)"
    )
    forget.add_argument(
        "--request-id", required=True, metavar="ID", help="idempotency key and receipt id"
    )
    forget.add_argument(
        "--method", choices=enum_choices(pb.ForgetMethod, "FORGET_METHOD_"),
        help="default: the model's (targeted for joint, sisa-replay for sisa)",
    )
    forget.add_argument("--loss", choices=enum_choices(pb.UnlearningLoss, "UNLEARNING_LOSS_"))
    forget.add_argument("--epochs", type=int)
    forget.add_argument("--learning-rate", type=float, metavar="LR")
    forget.add_argument("--lambda", dest="lambda_", type=float, metavar="LAMBDA")
    forget.add_argument("--select", metavar="RULE", help="coverage:F or top:N")
    forget.add_argument("--mask-output", action="store_true")
    forget.add_argument("--batch-size", type=int)
    forget.add_argument("--seed", type=int)
    forget.add_argument(
        "--wait",
        action="store_true",
        help="block until the job ends; print the response with the final job; "
        "exit 1 unless it SUCCEEDED",
    )
    forget.add_argument(
        "--wait-timeout",
        type=_deadline,
        metavar="SECONDS",
        help="with --wait: give up (exit 1) after this long (default: wait indefinitely)",
    )

    job = command("job", cmd_job, "show a job (GetJob)")
    job.add_argument("job_id", metavar="JOB_ID")
    watch = command("watch", cmd_watch, "stream a job's events until it ends (WatchJob)")
    watch.add_argument("job_id", metavar="JOB_ID")
    watch.add_argument("--logs", action="store_true", help="include log lines")
    cancel = command("cancel", cmd_cancel, "cancel a queued or running job (CancelJob)")
    cancel.add_argument("job_id", metavar="JOB_ID")

    receipt = command("receipt", cmd_receipt, "show a forget request's receipt (GetReceipt)")
    receipt.add_argument("receipt_id", metavar="ID", help="the forget request id")
    receipts = command("receipts", cmd_receipts, "list all receipts (ListReceipts)")
    receipts.add_argument("--page-size", type=int, default=0, help=argparse.SUPPRESS)

    samples = command(
        "samples", cmd_samples,
        "list the current model's training samples, without those the erasure ledger holds "
        "(ListSamples)",
    )
    selector = samples.add_mutually_exclusive_group(required=True)
    selector.add_argument("--subject", metavar="ID", help="the samples of one data subject")
    selector.add_argument("--class", dest="class_name", metavar="NAME",
                          help="the samples of one class")
    selector.add_argument("--shard", type=_non_negative_int, metavar="N",
                          help="the samples of one shard (sisa models), with their slices")

    command("workers", cmd_workers, "list registered workers (ListWorkers)")
    command("experts", cmd_experts, "list the current model's experts (ListExperts)")

    evaluate = command("evaluate", cmd_evaluate, "evaluate the current model (Evaluate)")
    evaluate.add_argument("--data", metavar="URI", help="e.g. cifar10:/data/cifar-10-batches-bin")
    evaluate.add_argument("--split", choices=["train", "test"])
    evaluate.add_argument("--limit", type=int, default=0)
    evaluate.add_argument("--batch-size", type=int, default=0)
    evaluate.add_argument("--ignore-output-mask", action="store_true")
    evaluate.add_argument(
        "--eval-timeout", type=_deadline, default=600.0, metavar="SECONDS",
        help="deadline of the call (default 600; 0 for none)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with LetheClient(
            args.target,
            token=args.token,
            root_certificates=args.ca_cert,
            timeout=args.timeout,
            tls=args.tls,
        ) as client:
            args.run(client, args)
    except LetheError as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return 1
    except JobDidNotSucceed as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:  # bad option values, unreadable files
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

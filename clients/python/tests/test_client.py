"""Tests of lethe_client against an in-process fake Coordinator.

    /usr/bin/python3 -m unittest discover -s clients/python/tests

The fake serves canned data on 127.0.0.1:<free port>; the library is called directly and the CLI
(`python3 -m lethe_client`) in subprocesses. Jobs advance one state (QUEUED -> RUNNING -> final)
per GetJob call, or all the way while a WatchJob stream is open.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parents[1]
REPO_PROTO_DIR = CLIENT_DIR.parents[1] / "proto"
sys.path.insert(0, str(CLIENT_DIR))

import grpc  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402

import lethe_client  # noqa: E402
from lethe_client import LetheClient, LetheError, _stubs  # noqa: E402
from lethe_client import common_pb2, coordinator_pb2 as pb, coordinator_pb2_grpc  # noqa: E402

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FAILING_CLASS = "truck"  # its forget job ends FAILED
HANGING_CLASS = "deer"  # its forget job stays RUNNING forever
NO_PROXY = [("grpc.enable_http_proxy", 0)]
# The fake's current model: a sisa model of 2 shards of 2 slices, trained on these samples
# (index, class, subject; "" for none), cifar10:train:3 since erased by the ledger. Listing by
# shard puts sample i in shard i % 2, slice i // 2 % 2.
ROSTER = [(0, "cat", "s1"), (1, "airplane", "s1"), (2, "cat", ""), (4, "cat", "s2"),
          (5, "airplane", "s1"), (6, "cat", "s1")]
ROSTER_SHARDS = 2
ROSTER_REVISION = 3


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


class FakeCoordinator(coordinator_pb2_grpc.CoordinatorServicer):
    """Canned Coordinator: records each call's request and metadata."""

    def __init__(self, required_token: str | None = None) -> None:
        self.required_token = required_token
        self.lock = threading.Lock()
        self.calls: list[tuple[str, object, dict[str, str]]] = []
        self.jobs: dict[str, dict] = {}
        self.submissions: dict[str, tuple[bytes, str]] = {}
        self.receipts: dict[str, pb.Receipt] = {}
        self.next_job = 1

    # -- helpers -------------------------------------------------------------------------------

    def _enter(self, name: str, request: object, context: grpc.ServicerContext) -> None:
        metadata = {key: value for key, value in context.invocation_metadata()}
        with self.lock:
            self.calls.append((name, request, metadata))
        if self.required_token and metadata.get("authorization") != f"Bearer {self.required_token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

    def last_call(self, name: str) -> tuple[object, dict[str, str]]:
        with self.lock:
            for call_name, request, metadata in reversed(self.calls):
                if call_name == name:
                    return request, metadata
        raise AssertionError(f"no {name} call")

    def _job(self, job_id: str, context: grpc.ServicerContext) -> dict:
        if not job_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job_id: required")
        entry = self.jobs.get(job_id)
        if entry is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: unknown job {job_id!r}")
        return entry

    def _advance(self, entry: dict) -> tuple[int, int] | None:
        """Moves a job one state on; returns (previous, new) or None when it cannot move."""
        with self.lock:
            job: pb.Job = entry["job"]
            if not entry["script"]:
                return None
            previous, job.state = job.state, entry["script"].pop(0)
            if job.state == pb.JOB_STATE_RUNNING:
                job.started_at.CopyFrom(_now())
                job.progress.CopyFrom(
                    pb.JobProgress(phase="forget", epoch=1, epochs=5, step=3, steps_per_epoch=10,
                                   loss=0.5, accuracy=0.8)
                )
            elif job.state == pb.JOB_STATE_FAILED:
                job.finished_at.CopyFrom(_now())
                job.error = "worker w1 lost while retraining expert 2"
            elif job.state == pb.JOB_STATE_SUCCEEDED:
                job.finished_at.CopyFrom(_now())
                job.manifest_revision = 2
                self.receipts[job.request_id] = self._receipt(entry)
            return previous, job.state

    def _event(self, entry: dict, **event: object) -> pb.JobEvent:
        with self.lock:
            entry["sequence"] += 1
            return pb.JobEvent(job_id=entry["job"].job_id, sequence=entry["sequence"],
                               time=_now(), **event)

    def _receipt(self, entry: dict) -> pb.Receipt:
        job, request = entry["job"], entry["request"]
        index = CLASSES.index(request.class_name) if request.class_name else request.class_index
        record = pb.ForgetRequestRecord(method=pb.FORGET_METHOD_TARGETED, epochs=5, seed=0,
                                        learning_rate=1e-4, select="coverage:0.8", batch_size=128)
        if request.WhichOneof("target") == "sample_ids":
            record.sample_ids.CopyFrom(request.sample_ids)
        else:
            record.class_target.CopyFrom(pb.ClassTarget(index=index, name=CLASSES[index]))
        before = pb.ForgetMetrics(ua=5.0, ra=95.0, ta=90.0, forgotten_class_test_accuracy=91.0,
                                  mia_efficacy=10.0)
        after = pb.ForgetMetrics(ua=99.0, ra=94.0, ta=89.5, forgotten_class_test_accuracy=0.7,
                                 mia_efficacy=97.0)
        return pb.Receipt(
            schema=1, request_id=job.request_id, created_at=_now(), request=record,
            mode=pb.FORGET_MODE_APPROXIMATE, experts_retrained=[1, 3],
            parts_changed=["router", "expert/1", "expert/3"],
            manifest=pb.ManifestRevisions(before=1, after=2),
            metrics=pb.ReceiptMetrics(before=before, after=after),
            timings=pb.ReceiptTimings(total_seconds=12.5), engine="tensorflow",
            job_id=job.job_id,
            object=common_pb2.ObjectRef(key="objects/ab", sha256="ab" * 32, size=100,
                                        kind="receipt"),
        )

    # -- RPCs ----------------------------------------------------------------------------------

    def SubmitForget(self, request, context):
        self._enter("SubmitForget", request, context)
        target = request.WhichOneof("target")
        if target is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "target: required")
        if target == "class_name" and request.class_name not in CLASSES:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"class_name: unknown class {request.class_name!r}")
        if target == "class_index" and request.class_index >= len(CLASSES):
            context.abort(grpc.StatusCode.NOT_FOUND, f"class_index: {request.class_index} >= 10")
        if target == "sample_ids" and not request.sample_ids.ids:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sample_ids: empty")
        key = request.SerializeToString(deterministic=True)
        with self.lock:
            seen = self.submissions.get(request.request_id)
            if seen is not None:
                if seen[0] != key:
                    context.abort(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"request_id: {request.request_id!r} was used for another request",
                    )
                job = self.jobs[seen[1]]["job"]
                return pb.SubmitForgetResponse(job=job, receipt_id=request.request_id,
                                               duplicate=True)
            job_id = f"job-{self.next_job:06d}"
            self.next_job += 1
            final = pb.JOB_STATE_SUCCEEDED
            if request.class_name == FAILING_CLASS:
                final = pb.JOB_STATE_FAILED
            script = [pb.JOB_STATE_RUNNING] + ([] if request.class_name == HANGING_CLASS
                                               else [final])
            job = pb.Job(job_id=job_id, kind=pb.JOB_KIND_FORGET, state=pb.JOB_STATE_QUEUED,
                         mode=common_pb2.TRAINING_MODE_JOINT, request_id=request.request_id,
                         created_at=_now())
            self.jobs[job_id] = {"job": job, "script": script, "request": request, "sequence": 1}
            self.submissions[request.request_id] = (key, job_id)
            return pb.SubmitForgetResponse(job=job, receipt_id=request.request_id)

    def GetJob(self, request, context):
        self._enter("GetJob", request, context)
        entry = self._job(request.job_id, context)
        self._advance(entry)
        with self.lock:
            return pb.Job.FromString(entry["job"].SerializeToString())

    def CancelJob(self, request, context):
        self._enter("CancelJob", request, context)
        entry = self._job(request.job_id, context)
        with self.lock:
            job = entry["job"]
            if job.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED):
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "job already finished")
            entry["script"] = []
            job.state = pb.JOB_STATE_CANCELLED
            return job

    def WatchJob(self, request, context):
        self._enter("WatchJob", request, context)
        entry = self._job(request.job_id, context)
        with self.lock:
            snapshot = pb.Job()
            snapshot.CopyFrom(entry["job"])
        yield self._event(entry, status=pb.JobStatus(state=snapshot.state, job=snapshot))
        while context.is_active() and snapshot.state not in lethe_client.TERMINAL_STATES:
            time.sleep(0.01)
            moved = self._advance(entry)
            if moved is None:
                continue  # a hanging job: keep the stream open until the client gives up
            with self.lock:
                snapshot = pb.Job()
                snapshot.CopyFrom(entry["job"])
            if snapshot.state == pb.JOB_STATE_RUNNING:
                yield self._event(entry, progress=snapshot.progress)
            if request.include_logs:
                yield self._event(entry, log=pb.LogLine(level=pb.LOG_LEVEL_INFO,
                                                        source="coordinator", text="step"))
            yield self._event(entry, status=pb.JobStatus(state=moved[1], previous_state=moved[0],
                                                         job=snapshot))

    def GetReceipt(self, request, context):
        self._enter("GetReceipt", request, context)
        with self.lock:
            receipt = self.receipts.get(request.request_id)
            pending = request.request_id in self.submissions
        if receipt is not None:
            return receipt
        if pending:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"request_id: {request.request_id!r} has not finished")
        context.abort(grpc.StatusCode.NOT_FOUND,
                      f"request_id: no completed forget request {request.request_id!r}")

    def ListReceipts(self, request, context):
        self._enter("ListReceipts", request, context)
        with self.lock:
            receipts = list(self.receipts.values())
        size = request.page_size or 50
        start = int(request.page_token or 0)
        end = start + size
        return pb.ListReceiptsResponse(
            receipts=receipts[start:end],
            next_page_token=str(end) if end < len(receipts) else "",
            total_size=len(receipts),
        )

    def ListWorkers(self, request, context):
        self._enter("ListWorkers", request, context)
        return pb.ListWorkersResponse(workers=[
            pb.WorkerInfo(worker_id="w1", address="10.0.0.5:7071",
                          device=common_pb2.Device(kind=common_pb2.DEVICE_KIND_CPU,
                                                   engine="tensorflow", name="8 x Xeon"),
                          capacity=common_pb2.Capacity(max_experts=2),
                          last_heartbeat=_now(), state=pb.WORKER_STATE_ALIVE, expert_ids=[0, 1]),
        ])

    def ListExperts(self, request, context):
        self._enter("ListExperts", request, context)
        return pb.ListExpertsResponse(manifest_revision=2, experts=[
            pb.ExpertInfo(expert_id=i, worker_id="w1", worker_address="10.0.0.5:7071",
                          status=pb.EXPERT_STATUS_READY, parameters=1000 + i,
                          checkpoint=common_pb2.ObjectRef(sha256=f"{i}" * 64))
            for i in range(2)
        ])

    roster_stored = True

    def ListSamples(self, request, context):
        self._enter("ListSamples", request, context)
        selector = request.WhichOneof("selector")
        if selector is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "a selector is required: subject, class_name or shard")
        if selector != "shard":
            value = getattr(request, selector)
            if not value or len(value) > 256:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{selector}: {value!r}")
        if not self.roster_stored:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "the current model was trained before rosters were stored")
        if selector == "shard" and request.shard >= ROSTER_SHARDS:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"shard {request.shard} (the model has {ROSTER_SHARDS})")
        samples = []
        for index, class_name, subject in ROSTER:
            sample = pb.TrainingSample(sample_id=f"cifar10:train:{index}", class_name=class_name,
                                       subject=subject)
            if selector == "shard":
                if index % ROSTER_SHARDS != request.shard:
                    continue
                sample.slice = index // ROSTER_SHARDS % 2
            elif (class_name if selector == "class_name" else subject) != getattr(request,
                                                                                   selector):
                continue
            samples.append(sample)
        return pb.ListSamplesResponse(samples=samples, manifest_revision=ROSTER_REVISION)


class RosterlessCoordinator(FakeCoordinator):
    """A coordinator whose current model was stored before rosters were."""

    roster_stored = False


class WatchlessCoordinator(FakeCoordinator):
    """A coordinator whose WatchJob is UNIMPLEMENTED (the generated servicer's default)."""

    WatchJob = coordinator_pb2_grpc.CoordinatorServicer.WatchJob


def start_server(servicer: FakeCoordinator) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    coordinator_pb2_grpc.add_CoordinatorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


class ServerTestCase(unittest.TestCase):
    servicer_class = FakeCoordinator
    required_token: str | None = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.fake = cls.servicer_class(required_token=cls.required_token)
        cls.server, cls.target = start_server(cls.fake)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop(grace=None)

    def client(self, **kwargs: object) -> LetheClient:
        client = LetheClient(self.target, options=NO_PROXY, **kwargs)
        self.addCleanup(client.close)
        return client


class ClientTests(ServerTestCase):
    def test_submit_forget_by_class_name_with_options(self) -> None:
        response = self.client().submit_forget(
            "opts-1", class_name="airplane", method="targeted", loss="RANDOM_LABEL", epochs=3,
            learning_rate=1e-3, lambda_=0.5, select="top:2", mask_output=True, batch_size=64,
            seed=7,
        )
        self.assertEqual(response.receipt_id, "opts-1")
        self.assertEqual(response.job.state, pb.JOB_STATE_QUEUED)
        self.assertFalse(response.duplicate)
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual(request.WhichOneof("target"), "class_name")
        self.assertEqual(request.class_name, "airplane")
        self.assertEqual(request.method, pb.FORGET_METHOD_TARGETED)
        self.assertEqual(request.loss, pb.UNLEARNING_LOSS_RANDOM_LABEL)
        self.assertEqual((request.epochs, request.batch_size, request.seed), (3, 64, 7))
        self.assertAlmostEqual(request.learning_rate, 1e-3)
        self.assertEqual(getattr(request, "lambda"), 0.5)
        self.assertEqual(request.select, "top:2")
        self.assertTrue(request.mask_output)

    def test_submit_forget_by_class_index_zero_and_alias(self) -> None:
        self.client().submit_forget("index-0", class_index=0)
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual(request.WhichOneof("target"), "class_index")
        self.assertEqual(request.class_index, 0)
        self.client().submit_forget("index-1", class_id=1, method=pb.FORGET_METHOD_MASK)
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual((request.class_index, request.method), (1, pb.FORGET_METHOD_MASK))

    def test_submit_forget_by_sample_ids(self) -> None:
        ids = ["cifar10:train:1", "cifar10:train:22"]
        self.client().submit_forget("samples-1", sample_ids=iter(ids), method="sisa-replay")
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual(request.WhichOneof("target"), "sample_ids")
        self.assertEqual(list(request.sample_ids.ids), ids)
        self.assertEqual(request.method, pb.FORGET_METHOD_SISA_REPLAY)
        self.client().submit_forget("samples-2", sample_ids="cifar10:train:5")
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual(list(request.sample_ids.ids), ["cifar10:train:5"])

    def test_empty_sample_ids_reach_the_server_as_a_target(self) -> None:
        with self.assertRaises(LetheError) as caught:
            self.client().submit_forget("samples-empty", sample_ids=[])
        self.assertEqual(caught.exception.code_name, "INVALID_ARGUMENT")
        self.assertIn("sample_ids", caught.exception.message)

    def test_submit_forget_rejects_bad_arguments_locally(self) -> None:
        client = self.client()
        calls = len(self.fake.calls)
        with self.assertRaisesRegex(ValueError, "exactly one target"):
            client.submit_forget("bad-1")
        with self.assertRaisesRegex(ValueError, r"got class_name, class_index"):
            client.submit_forget("bad-2", class_name="cat", class_index=3)
        with self.assertRaisesRegex(TypeError, "unknown forget option"):
            client.submit_forget("bad-3", class_name="cat", epoch=3)
        with self.assertRaisesRegex(ValueError, "unknown ForgetMethod 'forget-harder'"):
            client.submit_forget("bad-4", class_name="cat", method="forget-harder")
        self.assertEqual(len(self.fake.calls), calls, "nothing was sent")

    def test_duplicate_and_conflicting_submissions(self) -> None:
        client = self.client()
        first = client.submit_forget("dup-1", class_name="bird")
        again = client.submit_forget("dup-1", class_name="bird")
        self.assertTrue(again.duplicate)
        self.assertEqual(again.job.job_id, first.job.job_id)
        with self.assertRaises(LetheError) as caught:
            client.submit_forget("dup-1", class_name="cat")
        self.assertEqual(caught.exception.code, grpc.StatusCode.ALREADY_EXISTS)

    def test_bearer_token_metadata_reaches_the_server(self) -> None:
        self.client(token="s3cret").get_job(self.client().submit_forget(
            "token-1", class_name="cat").job.job_id)
        _, metadata = self.fake.last_call("GetJob")
        self.assertEqual(metadata.get("authorization"), "Bearer s3cret")
        list(self.client(token="s3cret").watch_job(
            self.fake.last_call("GetJob")[0].job_id))
        self.assertEqual(self.fake.last_call("WatchJob")[1].get("authorization"), "Bearer s3cret")
        self.client().list_workers()
        self.assertNotIn("authorization", self.fake.last_call("ListWorkers")[1])

    def test_errors_are_lethe_errors(self) -> None:
        with self.assertRaises(LetheError) as caught:
            self.client().get_receipt("never-submitted")
        err = caught.exception
        self.assertEqual(err.code_name, "NOT_FOUND")
        self.assertIs(err.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(str(err), "NOT_FOUND: request_id: no completed forget request "
                                   "'never-submitted'")
        self.assertIsInstance(err.__cause__, grpc.RpcError)
        with self.assertRaises(LetheError) as caught:
            self.client().get_job("job-999999")
        self.assertEqual(caught.exception.code_name, "NOT_FOUND")
        with self.assertRaises(LetheError) as caught:
            list(self.client().watch_job("job-999999"))
        self.assertEqual(caught.exception.code_name, "NOT_FOUND")

    def test_watch_job_streams_until_terminal(self) -> None:
        job_id = self.client().submit_forget("watch-1", class_name="dog").job.job_id
        events = list(self.client().watch_job(job_id, include_logs=True))
        kinds = [event.WhichOneof("event") for event in events]
        self.assertEqual(kinds[0], "status")
        self.assertEqual(events[0].status.state, pb.JOB_STATE_QUEUED)
        self.assertIn("progress", kinds)
        self.assertIn("log", kinds)
        self.assertEqual(events[-1].status.state, pb.JOB_STATE_SUCCEEDED)
        self.assertEqual(events[-1].status.previous_state, pb.JOB_STATE_RUNNING)
        sequences = [event.sequence for event in events]
        self.assertEqual(sequences, sorted(sequences))

    def test_wait_for_job_then_receipt(self) -> None:
        client = self.client()
        submitted = client.submit_forget("wait-1", class_name="airplane")
        seen: list[pb.JobEvent] = []
        job = client.wait_for_job(submitted.job.job_id, timeout=10, on_event=seen.append)
        self.assertEqual(job.state, pb.JOB_STATE_SUCCEEDED)
        self.assertEqual(job.manifest_revision, 2)
        self.assertTrue(seen)
        receipt = client.get_receipt(submitted.receipt_id)
        self.assertEqual(receipt.request_id, "wait-1")
        self.assertEqual(receipt.job_id, job.job_id)
        self.assertEqual(receipt.request.WhichOneof("target"), "class_target")
        self.assertEqual(receipt.request.class_target.name, "airplane")
        self.assertEqual(list(receipt.experts_retrained), [1, 3])
        self.assertEqual(self.fake.last_call("GetReceipt")[0].request_id, "wait-1")

    def test_wait_for_failed_job_returns_it(self) -> None:
        client = self.client()
        job_id = client.submit_forget("fail-1", class_name=FAILING_CLASS).job.job_id
        job = client.wait_for_job(job_id, timeout=10)
        self.assertEqual(job.state, pb.JOB_STATE_FAILED)
        self.assertIn("worker w1 lost", job.error)
        with self.assertRaises(LetheError) as caught:
            client.get_receipt("fail-1")
        self.assertEqual(caught.exception.code_name, "FAILED_PRECONDITION")

    def test_wait_for_job_times_out(self) -> None:
        client = self.client()
        job_id = client.submit_forget("hang-1", class_name=HANGING_CLASS).job.job_id
        started = time.monotonic()
        with self.assertRaises(LetheError) as caught:
            client.wait_for_job(job_id, timeout=0.5)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(caught.exception.code_name, "DEADLINE_EXCEEDED")
        self.assertIn(f"job {job_id} did not finish within 0.5s", caught.exception.message)
        self.assertEqual(client.cancel_job(job_id).state, pb.JOB_STATE_CANCELLED)

    def test_iter_receipts_follows_pages(self) -> None:
        client = self.client()
        for name in ("page-a", "page-b", "page-c"):
            job_id = client.submit_forget(name, class_name="ship").job.job_id
            client.wait_for_job(job_id, timeout=10)
        ids = [receipt.request_id for receipt in client.iter_receipts(page_size=1)]
        self.assertTrue({"page-a", "page-b", "page-c"} <= set(ids))
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(client.list_receipts(page_size=1).next_page_token, "1")

    def test_workers_and_experts(self) -> None:
        client = self.client()
        workers = client.list_workers().workers
        self.assertEqual([w.worker_id for w in workers], ["w1"])
        self.assertEqual(workers[0].state, pb.WORKER_STATE_ALIVE)
        experts = client.list_experts()
        self.assertEqual((experts.manifest_revision, len(experts.experts)), (2, 2))

    def test_list_samples_by_subject_class_and_shard(self) -> None:
        client = self.client()
        by_subject = client.list_samples(subject="s1")
        self.assertEqual([s.sample_id for s in by_subject.samples],
                         ["cifar10:train:0", "cifar10:train:1", "cifar10:train:5",
                          "cifar10:train:6"])
        self.assertEqual(by_subject.manifest_revision, ROSTER_REVISION)
        self.assertFalse(any(s.HasField("slice") for s in by_subject.samples))
        request, _ = self.fake.last_call("ListSamples")
        self.assertEqual((request.WhichOneof("selector"), request.subject), ("subject", "s1"))

        by_class = client.list_samples(class_name="airplane")
        self.assertEqual([(s.sample_id, s.subject) for s in by_class.samples],
                         [("cifar10:train:1", "s1"), ("cifar10:train:5", "s1")])
        request, _ = self.fake.last_call("ListSamples")
        self.assertEqual(request.WhichOneof("selector"), "class_name")

        # Shard 0 is a selector too (the oneof is set at its default value).
        by_shard = client.list_samples(shard=0)
        self.assertEqual([(s.sample_id, s.slice) for s in by_shard.samples],
                         [("cifar10:train:0", 0), ("cifar10:train:2", 1),
                          ("cifar10:train:4", 0), ("cifar10:train:6", 1)])
        self.assertTrue(all(s.HasField("slice") for s in by_shard.samples))
        request, _ = self.fake.last_call("ListSamples")
        self.assertEqual((request.WhichOneof("selector"), request.shard), ("shard", 0))

        self.assertEqual(len(client.list_samples(subject="nobody").samples), 0)

    def test_list_samples_needs_exactly_one_selector(self) -> None:
        client = self.client()
        calls = len(self.fake.calls)
        with self.assertRaisesRegex(ValueError, r"exactly one selector: subject, class_name"):
            client.list_samples()
        with self.assertRaisesRegex(ValueError, r"\(got subject, shard\)"):
            client.list_samples(subject="s1", shard=1)
        with self.assertRaisesRegex(ValueError, r"shard: must be >= 0"):
            client.list_samples(shard=-1)
        with self.assertRaisesRegex(TypeError, r"shard: expected an int"):
            client.list_samples(shard=True)
        self.assertEqual(len(self.fake.calls), calls, "nothing was sent")

    def test_list_samples_errors_carry_the_status_code(self) -> None:
        client = self.client()
        with self.assertRaises(LetheError) as caught:
            client.list_samples(shard=ROSTER_SHARDS)
        self.assertEqual(str(caught.exception), "NOT_FOUND: shard 2 (the model has 2)")
        # An empty name is sent as the selector, for the server to refuse by name.
        for bad in ({"subject": ""}, {"class_name": "x" * 257}):
            with self.assertRaises(LetheError) as caught:
                client.list_samples(**bad)
            self.assertEqual(caught.exception.code_name, "INVALID_ARGUMENT")
            self.assertTrue(caught.exception.message.startswith(next(iter(bad))))

    def test_unreachable_coordinator_is_unavailable(self) -> None:
        with LetheClient("127.0.0.1:1", options=NO_PROXY, timeout=5) as client:
            with self.assertRaises(LetheError) as caught:
                client.list_workers()
        self.assertEqual(caught.exception.code_name, "UNAVAILABLE")


class TokenRequiredTests(ServerTestCase):
    required_token = "letmein"

    def test_missing_or_wrong_token_is_unauthenticated(self) -> None:
        for token in (None, "wrong"):
            with self.assertRaises(LetheError) as caught:
                self.client(token=token).list_workers()
            self.assertEqual(caught.exception.code_name, "UNAUTHENTICATED")
        self.assertEqual(len(self.client(token="letmein").list_workers().workers), 1)


class RosterlessTests(ServerTestCase):
    servicer_class = RosterlessCoordinator

    def test_list_samples_without_a_roster_is_failed_precondition(self) -> None:
        with self.assertRaises(LetheError) as caught:
            self.client().list_samples(class_name="cat")
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)


class WatchlessTests(ServerTestCase):
    servicer_class = WatchlessCoordinator

    def test_wait_for_job_polls_get_job(self) -> None:
        client = self.client()
        job_id = client.submit_forget("poll-1", class_name="horse").job.job_id
        job = client.wait_for_job(job_id, timeout=10, poll_interval=0.01)
        self.assertEqual(job.state, pb.JOB_STATE_SUCCEEDED)
        self.assertEqual(self.fake.last_call("GetJob")[0].job_id, job_id)


class CliTests(ServerTestCase):
    """Runs `python3 -m lethe_client` in a subprocess against the fake."""

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        base = {
            key: value
            for key, value in os.environ.items()
            if "proxy" not in key.lower() and not key.startswith("LETHE_")
        }
        base["PYTHONPATH"] = str(CLIENT_DIR)
        base.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "lethe_client", "--target", self.target, *args],
            capture_output=True, text=True, env=base, timeout=60, check=False,
        )

    def assert_ok(self, result: subprocess.CompletedProcess) -> None:
        self.assertEqual(result.returncode, 0, f"stdout: {result.stdout}\nstderr: {result.stderr}")

    def test_forget_wait_json_then_receipt_json(self) -> None:
        result = self.cli("forget", "--class", "airplane", "--request-id", "cli-1", "--wait",
                          "--json")
        self.assert_ok(result)
        response = json.loads(result.stdout)
        self.assertEqual(response["receipt_id"], "cli-1")
        self.assertIs(response["duplicate"], False)
        self.assertEqual(response["job"]["state"], "JOB_STATE_SUCCEEDED")
        self.assertEqual(response["job"]["request_id"], "cli-1")
        self.assertEqual(response["job"]["manifest_revision"], "2")  # uint64: a JSON string
        self.assertEqual(result.stderr, "")
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual((request.class_name, request.request_id), ("airplane", "cli-1"))

        result = self.cli("receipt", "cli-1", "--json")
        self.assert_ok(result)
        receipt = json.loads(result.stdout)
        self.assertEqual(receipt["request_id"], "cli-1")
        self.assertEqual(receipt["job_id"], response["job"]["job_id"])
        self.assertEqual(receipt["request"]["class_target"], {"index": 0, "name": "airplane"})
        self.assertEqual(receipt["mode"], "FORGET_MODE_APPROXIMATE")
        self.assertEqual(receipt["metrics"]["after"]["ua"], 99.0)

    def test_forget_without_wait_prints_the_queued_job(self) -> None:
        result = self.cli("forget", "--class-index", "2", "--request-id", "cli-nowait",
                          "--method", "mask", "--mask-output", "--epochs", "2", "--lambda", "0.3")
        self.assert_ok(result)
        self.assertIn("receipt    cli-nowait", result.stdout)
        self.assertIn("state      QUEUED", result.stdout)
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual((request.class_index, request.method, request.epochs),
                         (2, pb.FORGET_METHOD_MASK, 2))
        self.assertTrue(request.mask_output)
        self.assertAlmostEqual(getattr(request, "lambda"), 0.3)

    def test_forget_samples_from_file(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("# forget these\ncifar10:train:7\n\ncifar10:train:9\n")
        self.addCleanup(os.unlink, handle.name)
        result = self.cli("forget", "--samples-file", handle.name, "--request-id", "cli-samples",
                          "--wait")
        self.assert_ok(result)
        self.assertIn("SUCCEEDED", result.stdout)
        self.assertIn("RUNNING", result.stderr)  # progress goes to stderr in text mode
        request, _ = self.fake.last_call("SubmitForget")
        self.assertEqual(list(request.sample_ids.ids), ["cifar10:train:7", "cifar10:train:9"])

    def test_failed_job_exits_1_after_printing_it(self) -> None:
        result = self.cli("forget", "--class", FAILING_CLASS, "--request-id", "cli-fail",
                          "--wait", "--json")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(json.loads(result.stdout)["job"]["state"], "JOB_STATE_FAILED")
        self.assertRegex(result.stderr,
                         r"^error: job job-\d+ FAILED: worker w1 lost while retraining expert 2\n$")

    def test_wait_timeout_exits_1(self) -> None:
        result = self.cli("forget", "--class", HANGING_CLASS, "--request-id", "cli-hang",
                          "--wait", "--wait-timeout", "0.5", "--json")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertRegex(result.stderr, r"^error: DEADLINE_EXCEEDED: job job-\d+ did not finish")

    def test_not_found_exits_1_with_one_line(self) -> None:
        result = self.cli("receipt", "no-such-request", "--json")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(
            result.stderr,
            "error: NOT_FOUND: request_id: no completed forget request 'no-such-request'\n",
        )
        result = self.cli("forget", "--class", "unicorn", "--request-id", "cli-unicorn")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stderr, "error: NOT_FOUND: class_name: unknown class 'unicorn'\n")

    def test_bearer_token_from_flag_and_environment(self) -> None:
        self.assert_ok(self.cli("--token", "tok-flag", "workers"))
        self.assertEqual(self.fake.last_call("ListWorkers")[1]["authorization"], "Bearer tok-flag")
        self.assert_ok(self.cli("experts", env={"LETHE_TOKEN": "tok-env"}))
        self.assertEqual(self.fake.last_call("ListExperts")[1]["authorization"], "Bearer tok-env")

    def test_text_listings(self) -> None:
        self.assert_ok(self.cli("forget", "--class", "frog", "--request-id", "cli-list", "--wait"))
        receipts = self.cli("receipts")
        self.assert_ok(receipts)
        self.assertRegex(receipts.stdout, r"(?m)^REQUEST\s+JOB\s+CREATED")
        self.assertRegex(receipts.stdout, r"(?m)^cli-list\s+job-\d+\s+\S+\s+class:frog\s+targeted")
        receipt = self.cli("receipt", "cli-list")
        self.assert_ok(receipt)
        self.assertIn("target     class frog (6)", receipt.stdout)
        self.assertIn("unlearning accuracy (UA)", receipt.stdout)
        workers = self.cli("workers")
        self.assert_ok(workers)
        self.assertRegex(workers.stdout, r"(?m)^w1\s+10\.0\.0\.5:7071\s+ALIVE\s+CPU/tensorflow")
        receipts_json = json.loads(self.cli("receipts", "--json").stdout)
        self.assertIn("cli-list", [r["request_id"] for r in receipts_json["receipts"]])

    def test_job_and_watch(self) -> None:
        submitted = json.loads(self.cli("forget", "--class", "cat", "--request-id", "cli-job",
                                        "--json").stdout)
        job_id = submitted["job"]["job_id"]
        job = self.cli("job", job_id, "--json")
        self.assert_ok(job)
        self.assertEqual(json.loads(job.stdout)["job_id"], job_id)
        watch = self.cli("watch", job_id, "--json")
        self.assert_ok(watch)
        events = [json.loads(line) for line in watch.stdout.splitlines()]
        self.assertEqual(events[-1]["status"]["state"], "JOB_STATE_SUCCEEDED")
        text = self.cli("job", job_id)
        self.assertIn("state      SUCCEEDED", text.stdout)
        self.assertIn("revision   2", text.stdout)

    def test_usage_errors_exit_2(self) -> None:
        result = self.cli("forget", "--request-id", "cli-usage")  # no target
        self.assertEqual(result.returncode, 2)
        self.assertIn("one of the arguments --class", result.stderr)
        result = self.cli("forget", "--class", "cat", "--samples", "x:train:1",
                          "--request-id", "cli-usage")
        self.assertEqual(result.returncode, 2)

    def test_samples_text_and_json(self) -> None:
        by_class = self.cli("samples", "--class", "cat")
        self.assert_ok(by_class)
        self.assertEqual(by_class.stdout.splitlines(), [
            "SAMPLE           CLASS  SUBJECT",
            "cifar10:train:0  cat    s1",
            "cifar10:train:2  cat    -",
            "cifar10:train:4  cat    s2",
            "cifar10:train:6  cat    s1",
            f"4 samples (manifest revision {ROSTER_REVISION})",
        ])
        self.assertEqual(by_class.stderr, "")
        self.assertEqual(self.fake.last_call("ListSamples")[0].class_name, "cat")

        by_shard = self.cli("samples", "--shard", "1")
        self.assert_ok(by_shard)
        self.assertRegex(by_shard.stdout, r"(?m)^SAMPLE\s+CLASS\s+SUBJECT\s+SLICE$")
        self.assertRegex(by_shard.stdout, r"(?m)^cifar10:train:5\s+airplane\s+s1\s+0$")
        self.assertIn("\n2 samples (manifest revision", by_shard.stdout)

        nobody = self.cli("samples", "--subject", "nobody")
        self.assert_ok(nobody)
        self.assertEqual(nobody.stdout, f"no samples (manifest revision {ROSTER_REVISION})\n")

        as_json = self.cli("samples", "--shard", "0", "--json")
        self.assert_ok(as_json)
        body = json.loads(as_json.stdout)
        self.assertEqual(body["manifest_revision"], str(ROSTER_REVISION))  # uint64: a string
        self.assertEqual(body["samples"][1], {"sample_id": "cifar10:train:2", "class_name": "cat",
                                              "subject": "", "slice": 1})
        self.assertEqual(len(body["samples"]), 4)
        subject_json = json.loads(self.cli("samples", "--subject", "s2", "--json").stdout)
        self.assertEqual(subject_json["samples"], [
            {"sample_id": "cifar10:train:4", "class_name": "cat", "subject": "s2"}])

    def test_samples_usage_and_call_errors(self) -> None:
        calls = len(self.fake.calls)
        for args, error in (
            ((), "one of the arguments --subject --class --shard is required"),
            (("--subject", "s1", "--class", "cat"),
             "argument --class: not allowed with argument --subject"),
            (("--shard", "-1"), "argument --shard: must be >= 0: -1"),
        ):
            result = self.cli("samples", *args)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertEqual(result.stdout, "")
            # argparse's usage, then the one-line error.
            self.assertEqual(result.stderr.splitlines()[-1],
                             f"python3 -m lethe_client samples: error: {error}")
        self.assertEqual(len(self.fake.calls), calls, "nothing was sent")

        missing = self.cli("samples", "--shard", "7")
        self.assertEqual(missing.returncode, 1)
        self.assertEqual(missing.stdout, "")
        self.assertEqual(missing.stderr, "error: NOT_FOUND: shard 7 (the model has 2)\n")
        empty = self.cli("samples", "--subject", "")
        self.assertEqual(empty.returncode, 1)
        self.assertEqual(empty.stderr, "error: INVALID_ARGUMENT: subject: ''\n")

    def test_unreachable_coordinator(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "lethe_client", "--target", "127.0.0.1:1", "--timeout", "5",
             "workers"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
                 "PYTHONPATH": str(CLIENT_DIR)},
        )
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr, r"^error: UNAVAILABLE: .*\n$")


class StubGenerationTests(unittest.TestCase):
    def test_rewrite_proto3_optional(self) -> None:
        source = (
            "message M {\n"
            "  // optional fields below are optional\n"
            "  optional double weight_decay = 10;\n"
            "  optional uint32 shard = 7 [deprecated = true];\n"
            "  optional lethe.v1.Other other = 3;\n"
            "  uint32 plain = 1;\n"
            "}\n"
        )
        rewritten = _stubs.rewrite_proto3_optional(source)
        self.assertEqual(rewritten.count("\n"), source.count("\n"), "line numbers are kept")
        self.assertIn("  // optional fields below are optional\n", rewritten)
        self.assertIn("  oneof _weight_decay { double weight_decay = 10; }\n", rewritten)
        self.assertIn("  oneof _shard { uint32 shard = 7 [deprecated = true]; }\n", rewritten)
        self.assertIn("  oneof _other { lethe.v1.Other other = 3; }\n", rewritten)
        self.assertIn("  uint32 plain = 1;\n", rewritten)

    def test_optional_fields_keep_presence(self) -> None:
        plan = pb.ForgetPlan()
        self.assertFalse(plan.HasField("class_index"))
        plan.class_index = 0
        self.assertTrue(plan.HasField("class_index"))
        self.assertEqual(pb.ForgetPlan.FromString(plan.SerializeToString()).HasField(
            "class_index"), True)

    def test_the_package_uses_current_stubs(self) -> None:
        root = lethe_client._STUBS_ROOT
        self.assertTrue(_stubs.stubs_present(root))
        self.assertEqual(_stubs.stamp_of(root), _stubs.fingerprint(REPO_PROTO_DIR))

    def test_regenerates_when_a_proto_changes(self) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="lethe-stubs-test-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        protos = tmp / "proto"
        for name in _stubs.PROTO_FILES:
            (protos / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_PROTO_DIR / name, protos / name)
        out = tmp / "out"
        fp = _stubs.fingerprint(protos)
        self.assertFalse(_stubs.is_current(out, fp))
        _stubs.generate(protos, out)
        self.assertTrue(_stubs.is_current(out, fp))

        with open(protos / "lethe/v1/common.proto", "a") as handle:
            handle.write("\nmessage AddedByTest { string note = 1; }\n")
        changed = _stubs.fingerprint(protos)
        self.assertNotEqual(changed, fp)
        self.assertFalse(_stubs.is_current(out, changed))
        _stubs.generate(protos, out)
        self.assertTrue(_stubs.is_current(out, changed))
        self.assertEqual(sorted(p.name for p in out.iterdir() if p.name.startswith(".tmp")), [])
        probe = subprocess.run(
            [sys.executable, "-c",
             "from lethe.v1 import common_pb2, coordinator_pb2_grpc; "
             "print(common_pb2.AddedByTest(note='x').note)"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(out)},
            check=False,
        )
        self.assertEqual((probe.returncode, probe.stdout), (0, "x\n"), probe.stderr)

    def test_generate_sh(self) -> None:
        out = Path(tempfile.mkdtemp(prefix="lethe-stubs-sh-"))
        self.addCleanup(shutil.rmtree, out, True)
        result = subprocess.run(
            [str(CLIENT_DIR / "generate.sh"), "--out", str(out)],
            capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable},
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("grpc_tools.protoc", result.stderr)
        self.assertTrue(_stubs.is_current(out, _stubs.fingerprint(REPO_PROTO_DIR)))


if __name__ == "__main__":
    unittest.main()

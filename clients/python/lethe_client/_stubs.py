"""Generates the Python gRPC stubs of the public Lethe API (proto/lethe/v1) on demand.

The stubs are not committed. `ensure_stubs()` (called when `lethe_client` is imported) regenerates
them when they are missing or were generated from other .proto contents (a SHA-256 fingerprint of
the sources is kept in `STAMP`; file times are not trusted, since a git checkout resets them), then
puts their root on `sys.path`: generated code imports its siblings as `from lethe.v1 import ...`.

Where the stubs go: `$LETHE_CLIENT_STUBS_DIR` if set; else `lethe_client/_generated/` when it is
current or writable; else `${XDG_CACHE_HOME:-~/.cache}/lethe-client/<fingerprint>/`. Where the
.proto files come from: `$LETHE_PROTO_DIR` if set, else `<repo>/proto`. Without .proto files
(a copy of the package outside the repo) already generated stubs are used as they are.

Also a script, standard library only (generate.sh runs it):

    /usr/bin/python3 clients/python/lethe_client/_stubs.py [--force] [--out DIR] [--proto-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

PROTO_FILES = ("lethe/v1/common.proto", "lethe/v1/coordinator.proto")
GENERATED_FILES = (
    "lethe/v1/common_pb2.py",
    "lethe/v1/coordinator_pb2.py",
    "lethe/v1/coordinator_pb2_grpc.py",
)
STAMP = "STAMP"
# Part of the fingerprint: bump when the way stubs are generated changes.
_GENERATOR_VERSION = "1"

_PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = _PACKAGE_DIR / "_generated"
INSTALL_HINT = (
    "install grpcio and grpcio-tools for this interpreter "
    "(Debian/Ubuntu: apt-get install python3-grpcio python3-grpc-tools, then use /usr/bin/python3)"
)

# `optional <type> <name> = <number> [options];` on a line of its own.
_OPTIONAL_FIELD = re.compile(
    r"^(?P<indent>[ \t]*)optional\s+(?P<type>[\w.]+)\s+(?P<name>\w+)\s*=\s*(?P<number>\d+)"
    r"\s*(?P<options>\[[^\]\n]*\])?\s*;",
    re.MULTILINE,
)


class StubGenerationError(ImportError):
    """The stubs are missing or stale and could not be generated."""


def find_proto_dir() -> Path | None:
    """The directory holding lethe/v1/*.proto, or None when there is none."""
    env = os.environ.get("LETHE_PROTO_DIR")
    if env:
        path = Path(env).resolve()
        missing = [f for f in PROTO_FILES if not (path / f).is_file()]
        if missing:
            raise StubGenerationError(f"LETHE_PROTO_DIR={env} lacks {', '.join(missing)}")
        return path
    candidate = _PACKAGE_DIR.parents[2] / "proto"  # <repo>/clients/python/lethe_client
    if all((candidate / f).is_file() for f in PROTO_FILES):
        return candidate
    return None


def fingerprint(proto_dir: Path) -> str:
    """SHA-256 over the generator version and the names and bytes of the .proto files."""
    digest = hashlib.sha256(f"lethe-client-stubs/{_GENERATOR_VERSION}\0".encode())
    for name in PROTO_FILES:
        digest.update(name.encode() + b"\0" + (proto_dir / name).read_bytes() + b"\0")
    return digest.hexdigest()


def stubs_present(root: Path) -> bool:
    return all((root / f).is_file() for f in GENERATED_FILES)


def stamp_of(root: Path) -> str | None:
    try:
        return (root / STAMP).read_text().split("\n", 1)[0].strip() or None
    except OSError:
        return None


def is_current(root: Path, fp: str) -> bool:
    return stubs_present(root) and stamp_of(root) == fp


def rewrite_proto3_optional(text: str) -> str:
    """Rewrites each proto3 `optional` field as a one-field oneof named `_<field>`.

    That is how descriptors represent proto3 optional (a "synthetic" oneof), so the generated
    classes keep field presence (HasField) and the wire format and JSON stay the same. Needed for
    protoc < 3.12, such as the one inside Debian's python3-grpc-tools 1.14. Line numbers are kept.
    """

    def replace(m: re.Match[str]) -> str:
        options = f" {m['options']}" if m["options"] else ""
        return (
            f"{m['indent']}oneof _{m['name']} {{ {m['type']} {m['name']} = {m['number']}"
            f"{options}; }}"
        )

    return _OPTIONAL_FIELD.sub(replace, text)


def _well_known_include() -> Path | None:
    """grpc_tools' bundled include dir (google/protobuf/*.proto), found without importing it."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise StubGenerationError(
            f"grpc_tools is not available to {sys.executable}: {INSTALL_HINT}"
        )
    include = Path(spec.origin).parent / "_proto"
    return include if (include / "google/protobuf/timestamp.proto").is_file() else None


def protoc_command(proto_dir: Path, out: Path) -> list[str]:
    """The protoc invocation (grpc_tools.protoc run by this interpreter)."""
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_dir}"]
    include = _well_known_include()
    if include is not None:
        cmd.append(f"-I{include}")
    cmd += [f"--python_out={out}", f"--grpc_python_out={out}", *PROTO_FILES]
    return cmd


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _protoc(proto_dir: Path, out: Path, verbose: bool) -> str:
    """Generates into `out`; returns how (`native` or `proto3-optional-as-oneof`)."""
    cmd = protoc_command(proto_dir, out)
    if verbose:
        print("+ " + " ".join(cmd), file=sys.stderr)
    first = _run(cmd)
    if first.returncode == 0:
        return "native"
    # An old protoc that predates proto3 `optional`: retry on rewritten copies of the sources.
    sources = {name: (proto_dir / name).read_text() for name in PROTO_FILES}
    if any(_OPTIONAL_FIELD.search(text) for text in sources.values()):
        with tempfile.TemporaryDirectory(prefix="lethe-proto-") as tmp:
            for name, text in sources.items():
                target = Path(tmp) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(rewrite_proto3_optional(text))
            retry_cmd = protoc_command(Path(tmp), out)
            if verbose:
                print(
                    "protoc does not support proto3 optional; retrying with optional fields "
                    "rewritten as one-field oneofs",
                    file=sys.stderr,
                )
            retry = _run(retry_cmd)
            if retry.returncode == 0:
                return "proto3-optional-as-oneof"
    raise StubGenerationError(
        f"generating the Lethe gRPC stubs failed: {' '.join(cmd)}\n{first.stderr.strip()}"
    )


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialises generation across processes sharing `root` (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def generate(proto_dir: Path, root: Path, *, verbose: bool = False) -> None:
    """Generates the stubs into `root`, replacing what is there, and writes the stamp last."""
    fp = fingerprint(proto_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    trash = root / f".old-{os.getpid()}"
    try:
        mode = _protoc(proto_dir, tmp, verbose)
        missing = [f for f in GENERATED_FILES if not (tmp / f).is_file()]
        if missing:
            raise StubGenerationError(f"protoc did not write {', '.join(missing)}")
        (root / STAMP).unlink(missing_ok=True)
        if (root / "lethe").exists():
            os.rename(root / "lethe", trash)
        os.rename(tmp / "lethe", root / "lethe")
        stamp_tmp = tmp / STAMP
        stamp_tmp.write_text(f"{fp}\n{mode}\n")
        os.replace(stamp_tmp, root / STAMP)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)
    importlib.invalidate_caches()
    if verbose:
        print(f"generated {', '.join(GENERATED_FILES)} in {root} ({mode})", file=sys.stderr)


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _cache_root(fp: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lethe-client" / fp[:16]


def _add_to_path(root: Path) -> None:
    entry = str(root)
    if entry not in sys.path:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()


def ensure_stubs(
    out: Path | None = None,
    proto_dir: Path | None = None,
    *,
    force: bool = False,
    verbose: bool = False,
) -> Path:
    """Makes sure current stubs exist, puts their root on sys.path and returns that root."""
    if out is None and os.environ.get("LETHE_CLIENT_STUBS_DIR"):
        out = Path(os.environ["LETHE_CLIENT_STUBS_DIR"])
    proto_dir = proto_dir or find_proto_dir()
    if proto_dir is None:
        # No sources to compare against: use what was generated before, as it is.
        for root in [out] if out is not None else [DEFAULT_OUT]:
            if stubs_present(root):
                _add_to_path(root)
                return root
        raise StubGenerationError(
            "the Lethe gRPC stubs are not generated and proto/lethe/v1 was not found: "
            "set LETHE_PROTO_DIR to the repository's proto/ directory"
        )
    fp = fingerprint(proto_dir)
    if out is not None:
        root = out
    elif not force and is_current(DEFAULT_OUT, fp):
        root = DEFAULT_OUT
    elif _writable(DEFAULT_OUT):
        root = DEFAULT_OUT
    else:
        root = _cache_root(fp)
    if force or not is_current(root, fp):
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            if force or not is_current(root, fp):  # another process may have just done it
                generate(proto_dir, root, verbose=verbose)
    _add_to_path(root)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate the Python gRPC stubs of proto/lethe/v1 (common, coordinator)."
    )
    parser.add_argument("--force", action="store_true", help="regenerate even when current")
    parser.add_argument("--out", type=Path, help=f"output root (default {DEFAULT_OUT})")
    parser.add_argument("--proto-dir", type=Path, help="the repository's proto/ directory")
    args = parser.parse_args(argv)
    try:
        root = ensure_stubs(args.out, args.proto_dir, force=args.force, verbose=True)
    except StubGenerationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())

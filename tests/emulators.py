"""Cloud storage emulators for tests: GCS and S3 servers on 127.0.0.1.

Each emulator runs as a subprocess of the test session on a free loopback
port and is stopped when its context ends. Clients reach it through the
storage options of the yielded ``Bucket`` (and, for GCS, through environment
variables, which worker processes of a multi-process runner inherit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import fsspec
import pytest

BUCKET = "test-bucket"
_HOST = "127.0.0.1"
_BIN = pathlib.Path(sys.executable).parent
_STARTUP_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Bucket:
    """A bucket on a running emulator and the fsspec options that reach it."""

    scheme: str
    storage_options: Mapping[str, Any]

    def url(self, *parts: str) -> str:
        """A URL inside the bucket."""
        return "/".join([f"{self.scheme}://{BUCKET}", *parts])

    def new_prefix(self) -> str:
        """A URL under which nothing exists yet, so tests never share objects."""
        return self.url(uuid.uuid4().hex)

    def filesystem(self) -> fsspec.AbstractFileSystem:
        """A filesystem with fresh listings, so it sees what others just wrote."""
        fs = fsspec.filesystem(self.scheme, **self.storage_options)
        fs.invalidate_cache()
        return fs

    def exists(self, url: str) -> bool:
        """Whether any object exists at or below ``url``."""
        fs = self.filesystem()
        return fs.exists(url) or bool(fs.find(url))

    def upload(self, local: str | os.PathLike, url: str) -> None:
        """Copy a local directory tree to ``url`` file by file, exactly.

        gcsfs sends small objects as multipart bodies whose parts end in a bare
        LF; the GCS emulator's parser then takes a last data byte of CR as part
        of the delimiter and drops it. Resumable uploads (one chunk holding the
        whole object) carry the bytes as they are.
        """
        fs = self.filesystem()
        root = pathlib.Path(local)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            target = f"{url}/{path.relative_to(root).as_posix()}"
            if self.scheme == "gs":
                fs.pipe_file(target, data, chunksize=max(len(data), 1))
            else:
                fs.pipe_file(target, data)

    def snapshot(self, url: str) -> dict[str, bytes]:
        """Every object below ``url``, as path -> bytes."""
        fs = self.filesystem()
        return {path: fs.cat_file(path) for path in fs.find(url)}


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        return sock.getsockname()[1]


def _wait_until_listening(
    port: int, process: subprocess.Popen, log: pathlib.Path
) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode}:\n"
                f"{log.read_text()}"
            )
        try:
            with socket.create_connection((_HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"{process.args[0]} did not listen on {_HOST}:{port} within "
        f"{_STARTUP_SECONDS} s:\n{log.read_text()}"
    )


@contextlib.contextmanager
def _server(args: list[str], port: int, log: pathlib.Path) -> Iterator[None]:
    """Run a server subprocess until the context ends."""
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_listening(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def gcs_bucket(log_dir: pathlib.Path) -> Iterator[Bucket]:
    """``gs://test-bucket`` on gcp-storage-emulator, in memory.

    gcsfs finds the emulator through ``STORAGE_EMULATOR_HOST``; without
    ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` it hangs against it.

    Objects that gcsfs writes in one request lose a last byte of CR on this
    emulator (see ``Bucket.upload``): if a chunk written to gs:// fails to
    decode while the same test passes on s3://, suspect that first.
    """
    port = free_port()
    args = [
        str(_BIN / "gcp-storage-emulator"),
        "start",
        f"--host={_HOST}",
        f"--port={port}",
        "--in-memory",
        f"--default-bucket={BUCKET}",
    ]
    with (
        _server(args, port, log_dir / "gcs-emulator.log"),
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("STORAGE_EMULATOR_HOST", f"http://{_HOST}:{port}")
        env.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        yield Bucket("gs", {"token": "anon"})


@contextlib.contextmanager
def s3_bucket(log_dir: pathlib.Path) -> Iterator[Bucket]:
    """``s3://test-bucket`` on moto's server mode."""
    port = free_port()
    args = [str(_BIN / "moto_server"), "-H", _HOST, "-p", str(port)]
    options = {
        "key": "test",
        "secret": "test",
        "client_kwargs": {
            "endpoint_url": f"http://{_HOST}:{port}",
            "region_name": "us-east-1",
        },
    }
    with _server(args, port, log_dir / "moto-server.log"):
        bucket = Bucket("s3", options)
        # mkdir asks moto for a location constraint it rejects in us-east-1.
        bucket.filesystem().call_s3("create_bucket", Bucket=BUCKET)
        yield bucket

"""The checkpoint file: one JSON header and an opaque payload (a VW model), written atomically.

Layout: the magic line ``SWITCHYARD-CHECKPOINT 1``, one line of JSON (the policy's class,
parameters, random state and whatever the service adds), then the payload bytes. A checkpoint
is written to a temporary file in the same directory, fsynced and moved over the old one with
``os.replace``, so a kill at any moment leaves either the old or the new checkpoint whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bandit.errors import ModelStateError

MAGIC = b"SWITCHYARD-CHECKPOINT 1\n"
JsonDict = dict[str, object]


def write_checkpoint(path: Path, header: JsonDict, payload: bytes = b"") -> None:
    """Write ``header`` and ``payload`` to ``path`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    if b"\n" in line:
        raise ModelStateError("checkpoint header must serialise to one line")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(MAGIC)
            fh.write(line + b"\n")
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_checkpoint(path: Path) -> tuple[JsonDict, bytes]:
    """The header and payload of a checkpoint; ``ModelStateError`` if it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelStateError(f"cannot read checkpoint {path}: {exc}") from exc
    if not data.startswith(MAGIC):
        raise ModelStateError(f"{path} is not a Switchyard checkpoint")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise ModelStateError(f"{path}: truncated checkpoint header")
    try:
        header = json.loads(data[len(MAGIC) : end])
    except ValueError as exc:
        raise ModelStateError(f"{path}: bad checkpoint header: {exc}") from exc
    if not isinstance(header, dict):
        raise ModelStateError(f"{path}: checkpoint header is not an object")
    return header, data[end + 1 :]

"""Messages between the checker and its worker: a JSON header and a bundle of plain float64 /
int arrays (.npz, loaded with allow_pickle=False so nothing the worker sends is unpickled)."""
from __future__ import annotations

import io
import json
import struct
from typing import BinaryIO

import numpy as np

MAX_MESSAGE = 1 << 30  # a reply larger than 1 GiB is not a gradient; refuse it
MAX_HEADER = 16 << 20  # the JSON part: texts are capped at TEXT_CAP before they are sent
TEXT_CAP = 1 << 20  # characters of one message, traceback or line kept in a reply


class ProtocolError(Exception):
    pass


def encode(header: dict, arrays: dict[str, np.ndarray] | None = None) -> bytes:
    buf = io.BytesIO()
    if arrays:
        np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    h = json.dumps(header).encode()
    body = buf.getvalue()
    return struct.pack("<QQ", len(h), len(body)) + h + body


def decode(h: bytes, body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    header = json.loads(h.decode())
    arrays = {}
    if body:
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    return header, arrays


def read_exact(f: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        c = f.read(n - got)
        if not c:
            raise EOFError
        chunks.append(c)
        got += len(c)
    return b"".join(chunks)


def receive(f: BinaryIO) -> tuple[dict, dict[str, np.ndarray]]:
    nh, nb = struct.unpack("<QQ", read_exact(f, 16))
    if nh > MAX_HEADER or nh + nb > MAX_MESSAGE:
        raise ProtocolError(f"a message of {nh:,} + {nb:,} bytes (at most {MAX_HEADER:,} of "
                            f"header and {MAX_MESSAGE:,} in all)")
    try:
        return decode(read_exact(f, nh), read_exact(f, nb))
    except EOFError:
        raise
    except Exception as e:  # noqa: BLE001 - not JSON, not an .npz, pickled arrays, ...
        raise ProtocolError(f"an unreadable message ({type(e).__name__}: {e})"[:500]) from None


def cap_text(text: str, limit: int = TEXT_CAP) -> str:
    """At most ``limit`` characters of ``text``, and how many more there were."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... {len(text) - limit:,} more characters not kept"


def cap_strings(obj, limit: int = TEXT_CAP):
    """``obj`` (a reply's JSON header) with every string in it capped by cap_text."""
    if isinstance(obj, str):
        return cap_text(obj, limit)
    if isinstance(obj, dict):
        return {k: cap_strings(v, limit) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [cap_strings(v, limit) for v in obj]
    return obj


def send(f: BinaryIO, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    f.write(encode(header, arrays))
    f.flush()


def pack_params(prefix: str, P: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": np.asarray(v) for k, v in P.items()}


def unpack_params(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + ".")}

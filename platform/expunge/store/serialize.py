"""Encoders and decoders per file format: the extension of an artifact file decides its format.

No pickle anywhere: weights are safetensors, arrays ``.npy`` read with ``allow_pickle=False``, tables
parquet (plus a CSV copy for people), structured data JSON.
"""
from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np


def encode(name: str, value: Any) -> bytes:
    """``value`` as the bytes of file ``name`` (its extension decides the format); bytes pass through
    unchanged, so a stored file can be copied into another artifact as it is."""
    if isinstance(value, bytes):
        return value
    ext = name.rsplit(".", 1)[-1]
    if ext == "npy":
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{name}: object arrays are not storable (they would need pickle)")
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()
    if ext == "safetensors":
        from safetensors.torch import save

        return save({k: v.detach().contiguous().cpu() for k, v in value.items()})
    if ext == "parquet":
        buf = io.BytesIO()
        value.to_parquet(buf, index=False)
        return buf.getvalue()
    if ext == "csv":
        return value.to_csv(index=False).encode()
    if ext == "json":
        return json.dumps(value, indent=2, sort_keys=True, default=_json_default).encode()
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{name}: cannot store a {type(value).__name__} with extension .{ext}")


def decode(name: str, data: bytes) -> Any:
    ext = name.rsplit(".", 1)[-1]
    if ext == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if ext == "safetensors":
        from safetensors.torch import load

        return load(data)
    if ext == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data))
    if ext == "csv":
        import pandas as pd

        return pd.read_csv(io.BytesIO(data))
    if ext == "json":
        return json.loads(data)
    if ext in ("md", "html", "txt", "yaml", "log"):
        return data.decode()
    return data


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def normalize(obj: Any) -> Any:
    """JSON round-trip, so manifests compare equal whether fresh or read back."""
    return json.loads(json.dumps(obj, sort_keys=True, default=_json_default))


#: keys whose values are secrets wherever they appear in a config or manifest
SECRET_KEY = re.compile(r"(token|secret|password|passwd|api[_-]?key|access[_-]?key|credential)", re.I)
#: credentials inside a URI (s3://KEY:SECRET@bucket/..., https://user:pass@host/...)
URI_CREDENTIALS = re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+@")


def redact(obj: Any) -> Any:
    """``obj`` with secrets replaced by ``"***"``: string values under secret-looking keys and
    credentials embedded in URIs (numbers such as ``max_new_tokens`` are not secrets). Manifests and reports go through this, so no token reaches the run directory."""
    if isinstance(obj, dict):
        return {k: "***" if isinstance(k, str) and isinstance(v, str) and v and SECRET_KEY.search(k) else redact(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return URI_CREDENTIALS.sub("***:***@", obj)
    return obj

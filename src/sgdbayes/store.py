"""A storage format for results that cannot run code when read, and that is checked before it is decoded.

Cached values and shards are trees of plain data: numbers, strings, lists, dicts, numpy arrays, tensors, pandas
frames, and the project's own dataclasses. :func:`dumps` turns such a tree into bytes; :func:`loads` turns the bytes
back into the tree, but only after the SHA-256 written in the file's header matches the bytes that follow it. No
pickle is involved at any point: reading a file can fail, it cannot execute anything.

File layout (all integers little-endian)::

    b"SGDBAYES-STORE\\n"                 magic
    u64  header length, header JSON       {"format": 2, "size": payload bytes, "sha256": hex of payload, **meta}
    payload:
        u64  tree length, tree JSON       the value with every array replaced by a reference into the blob
        blob                              the arrays' raw bytes, each starting at a multiple of 64

``meta`` holds what the caller needs to check that the file is the one it asked for (the cache key, a shard's
index and seed); :func:`loads` compares it with ``expect`` before decoding anything.

Which values can be stored (:func:`encode` raises ``TypeError`` naming the path of anything else):

- ``None``, ``bool``, ``int``, ``float`` (NaN and ±inf included), ``complex``, ``str``;
- ``list``, ``tuple``, ``dict`` (keys of any storable scalar type), ``set`` / ``frozenset``;
- ``numpy.ndarray`` and numpy scalars of numeric, boolean, fixed-width string or datetime dtype (no object arrays);
- ``torch.Tensor`` (dense; returned on the CPU, without ``requires_grad``), ``torch.device``, ``torch.dtype``;
- ``pandas.DataFrame`` / ``Series`` / ``Index`` (values of the types above), ``pathlib.Path``;
- dataclass instances and enum members whose class is defined inside the ``sgdbayes`` package, and classes of the
  package that define ``__store_state__`` / ``__from_store_state__`` (e.g. :class:`~sgdbayes.functions.FunctionCounts`).
  Classes are looked up by module and qualified name, and only in ``sgdbayes`` modules: a file cannot name any
  other class.

Dataclasses are rebuilt field by field without calling ``__init__`` or ``__post_init__`` (the stored object was
valid when it was stored, and the checksum shows it is the same object).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
import math
import struct
from pathlib import Path, PurePath
from typing import Any

import numpy as np

__all__ = ["StoreError", "dumps", "loads", "encode", "decode", "PACKAGE"]

MAGIC = b"SGDBAYES-STORE\n"
FORMAT = 2
PACKAGE = "sgdbayes"
_ALIGN = 64
_MAX_HEADER = 1 << 20
_U64 = struct.Struct("<Q")


class StoreError(ValueError):
    """A stored file is not a valid store file, does not match what was asked for, or fails its checksum."""


# --------------------------------------------------------------------------------------------------------------------
# encoding


class _Blob:
    """Collects array buffers; ``add`` returns the reference written into the tree."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, arr: np.ndarray) -> dict[str, Any]:
        pad = (-self.size) % _ALIGN
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        # Fortran order is kept (LAPACK returns it): a matrix product over a C-ordered copy may round differently
        # in the last bit, so a cached array would not reproduce a fresh run's numbers byte for byte.
        fortran = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
        data = arr.tobytes(order="F") if fortran else np.ascontiguousarray(arr).tobytes()
        ref = {"dtype": arr.dtype.str, "shape": list(arr.shape), "offset": self.size, "nbytes": len(data)}
        if fortran:
            ref["order"] = "F"
        self.parts.append(data)
        self.size += len(data)
        return ref


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _ours(cls: type) -> bool:
    module = getattr(cls, "__module__", "") or ""
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _check_array_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in "biufcSUMm" or dtype.fields is not None:
        raise TypeError(f"cannot store {where}: numpy dtype {dtype} is not allowed (numeric, bool, fixed-width "
                        "string or datetime arrays only; object arrays would need pickle)")


def encode(value: Any, blob: _Blob, where: str = "value") -> Any:
    """The JSON tree of ``value`` (arrays go to ``blob``). ``where`` names the position in error messages."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, complex):
        return {"$complex": [encode(value.real, blob), encode(value.imag, blob)]}
    if isinstance(value, np.ndarray):
        _check_array_dtype(value.dtype, where)
        return {"$ndarray": blob.add(value)}
    if isinstance(value, np.generic):
        arr = np.asarray(value)
        _check_array_dtype(arr.dtype, where)
        return {"$npscalar": blob.add(arr)}
    if isinstance(value, list):
        return [encode(v, blob, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"$tuple": [encode(v, blob, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        items = [encode(v, blob, f"{where}{{...}}") for v in value]
        items.sort(key=lambda t: json.dumps(t, sort_keys=True))
        return {"$frozenset" if isinstance(value, frozenset) else "$set": items}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, blob, f"{where}[{k!r}]") for k, v in value.items()}
        return {"$dict": [[encode(k, blob, f"{where} key"), encode(v, blob, f"{where}[{k!r}]")]
                          for k, v in value.items()]}
    if isinstance(value, PurePath):
        return {"$path": str(value)}
    encoded = _encode_library_type(value, blob, where)
    if encoded is not None:
        return encoded
    raise TypeError(
        f"cannot store {where} of type {type(value).__module__}.{type(value).__qualname__}: allowed are numbers, "
        "strings, lists, tuples, dicts, sets, numpy arrays, tensors, pandas frames and sgdbayes dataclasses"
    )


def _encode_library_type(value: Any, blob: _Blob, where: str) -> Any:
    """Tensors, pandas objects and the package's own classes; None when ``value`` is none of them."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided:
                raise TypeError(f"cannot store {where}: only dense tensors (got layout {value.layout})")
            t = value.detach().cpu().contiguous()
            dtype = str(t.dtype).removeprefix("torch.")
            if t.dtype == torch.bfloat16:
                arr = t.view(torch.int16).numpy()
            else:
                arr = t.numpy()
            return {"$tensor": {"torch_dtype": dtype, **blob.add(arr)}}
        if isinstance(value, torch.device):
            return {"$device": str(value)}
        if isinstance(value, torch.dtype):
            return {"$torch_dtype": str(value).removeprefix("torch.")}
    pd = sys.modules.get("pandas")
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            return {"$dataframe": {
                "columns": _encode_index(value.columns, blob, f"{where}.columns"),
                "index": _encode_index(value.index, blob, f"{where}.index"),
                "data": [_encode_column(value.iloc[:, i], blob, f"{where}[{c!r}]")
                         for i, c in enumerate(value.columns)]}}
        if isinstance(value, pd.Series):
            return {"$series": {"index": _encode_index(value.index, blob, f"{where}.index"),
                                "name": encode(value.name, blob, f"{where}.name"),
                                "data": _encode_column(value, blob, where)}}
        if isinstance(value, pd.Index):
            return {"$index": _encode_index(value, blob, where)}
    cls = type(value)
    if _ours(cls):
        if isinstance(value, enum.Enum):
            return {"$enum": _qualified(cls), "name": value.name}
        if hasattr(cls, "__store_state__") and hasattr(cls, "__from_store_state__"):
            return {"$state": _qualified(cls), "state": encode(value.__store_state__(), blob, where)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {"$dataclass": _qualified(cls), "fields": {
                f.name: encode(getattr(value, f.name), blob, f"{where}.{f.name}") for f in dataclasses.fields(value)}}
    return None


def _encode_column(series: Any, blob: _Blob, where: str) -> Any:
    values = series.to_numpy()
    if values.dtype == object:
        return {"$objects": [encode(v, blob, f"{where}[{i}]") for i, v in enumerate(values.tolist())],
                "dtype": str(series.dtype)}
    _check_array_dtype(values.dtype, where)
    return {"$ndarray": blob.add(values)}


def _encode_index(index: Any, blob: _Blob, where: str) -> Any:
    import pandas as pd

    names = [encode(n, blob, f"{where}.name") for n in index.names]
    if isinstance(index, pd.RangeIndex):
        return {"range": [index.start, index.stop, index.step], "names": names}
    if isinstance(index, pd.MultiIndex):
        return {"tuples": [encode(tuple(t), blob, f"{where}[{i}]") for i, t in enumerate(index.tolist())],
                "names": names}
    values = index.to_numpy()
    if values.dtype == object:
        return {"objects": [encode(v, blob, f"{where}[{i}]") for i, v in enumerate(values.tolist())], "names": names,
                "dtype": str(index.dtype)}
    _check_array_dtype(values.dtype, where)
    return {"array": blob.add(values), "names": names}


# --------------------------------------------------------------------------------------------------------------------
# decoding


def _array(ref: Any, blob: memoryview) -> np.ndarray:
    try:
        dtype = np.dtype(str(ref["dtype"]))
        shape = tuple(int(s) for s in ref["shape"])
        offset, nbytes = int(ref["offset"]), int(ref["nbytes"])
    except (KeyError, TypeError, ValueError) as err:
        raise StoreError(f"bad array reference {ref!r} ({err})") from None
    _check_array_dtype(dtype, "array")
    if offset < 0 or nbytes < 0 or offset + nbytes > len(blob) or any(s < 0 for s in shape) \
            or math.prod(shape) * dtype.itemsize != nbytes:
        raise StoreError(f"array reference {ref!r} does not fit the stored data")
    order = ref.get("order", "C")
    if order not in ("C", "F"):
        raise StoreError(f"array reference {ref!r}: order must be 'C' or 'F'")
    return np.frombuffer(blob[offset:offset + nbytes], dtype=dtype).reshape(shape, order=order).copy(order="K")


def _library_class(name: Any) -> type:
    """The class ``module:qualname`` — only from modules of the sgdbayes package."""
    if not isinstance(name, str) or ":" not in name:
        raise StoreError(f"bad class name {name!r}")
    module, qualname = name.split(":", 1)
    if not (module == PACKAGE or module.startswith(PACKAGE + ".")):
        raise StoreError(f"refusing to rebuild class {name!r}: only classes of the {PACKAGE} package can be stored")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise StoreError(f"class {name!r} no longer exists ({err})") from None
    if not isinstance(obj, type):
        raise StoreError(f"{name!r} is not a class")
    return obj


def decode(tree: Any, blob: memoryview) -> Any:
    """Inverse of :func:`encode`."""
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if isinstance(tree, list):
        return [decode(v, blob) for v in tree]
    if not isinstance(tree, dict):
        raise StoreError(f"unexpected JSON value {tree!r}")
    tags = [k for k in tree if k.startswith("$")]
    if not tags:
        return {k: decode(v, blob) for k, v in tree.items()}
    tag = tags[0]
    body = tree[tag]
    if tag == "$float":
        if body not in ("nan", "inf", "-inf"):
            raise StoreError(f"bad float {body!r}")
        return float(body)
    if tag == "$complex":
        return complex(decode(body[0], blob), decode(body[1], blob))
    if tag == "$ndarray":
        return _array(body, blob)
    if tag == "$npscalar":
        return _array(body, blob)[()]
    if tag == "$tuple":
        return tuple(decode(v, blob) for v in body)
    if tag in ("$set", "$frozenset"):
        items = (decode(v, blob) for v in body)
        return set(items) if tag == "$set" else frozenset(items)
    if tag == "$dict":
        return {_hashable(decode(k, blob)): decode(v, blob) for k, v in body}
    if tag == "$path":
        return Path(body)
    if tag == "$tensor":
        import torch

        arr = _array(body, blob)
        dtype = getattr(torch, str(body.get("torch_dtype")), None)
        if not isinstance(dtype, torch.dtype):
            raise StoreError(f"unknown tensor dtype {body.get('torch_dtype')!r}")
        t = torch.from_numpy(arr)
        return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t.to(dtype)
    if tag == "$device":
        import torch

        return torch.device(body)
    if tag == "$torch_dtype":
        import torch

        dtype = getattr(torch, str(body), None)
        if not isinstance(dtype, torch.dtype):
            raise StoreError(f"unknown torch dtype {body!r}")
        return dtype
    if tag == "$dataframe":
        import pandas as pd

        columns = _decode_index(body["columns"], blob)
        data = {i: _decode_column(c, blob) for i, c in enumerate(body["data"])}
        frame = pd.DataFrame(data, index=_decode_index(body["index"], blob))
        frame.columns = columns
        return frame
    if tag == "$series":
        import pandas as pd

        return pd.Series(_decode_column(body["data"], blob), index=_decode_index(body["index"], blob),
                         name=decode(body["name"], blob))
    if tag == "$index":
        return _decode_index(body, blob)
    if tag == "$enum":
        cls = _library_class(body)
        if not issubclass(cls, enum.Enum):
            raise StoreError(f"{body!r} is not an enum")
        return cls[tree["name"]]
    if tag == "$state":
        cls = _library_class(body)
        if not hasattr(cls, "__from_store_state__"):
            raise StoreError(f"{body!r} cannot be rebuilt from a stored state")
        return cls.__from_store_state__(decode(tree["state"], blob))
    if tag == "$dataclass":
        cls = _library_class(body)
        if not dataclasses.is_dataclass(cls):
            raise StoreError(f"{body!r} is not a dataclass")
        stored = tree["fields"]
        names = {f.name for f in dataclasses.fields(cls)}
        if set(stored) != names:
            raise StoreError(f"{body!r} has fields {sorted(names)}, the file {sorted(stored)}")
        obj = cls.__new__(cls)
        for name, value in stored.items():
            object.__setattr__(obj, name, decode(value, blob))
        return obj
    raise StoreError(f"unknown tag {tag!r}")


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key


def _decode_column(col: Any, blob: memoryview) -> Any:
    if "$objects" in col:
        import pandas as pd

        return pd.array([decode(v, blob) for v in col["$objects"]], dtype=_pandas_dtype(col.get("dtype", "object")))
    return _array(col["$ndarray"], blob)


def _pandas_dtype(name: Any) -> Any:
    """A pandas dtype from its name (pandas parses the name; nothing is imported or executed)."""
    import pandas as pd

    try:
        return pd.api.types.pandas_dtype(str(name))
    except TypeError as err:
        raise StoreError(f"unknown pandas dtype {name!r} ({err})") from None


def _decode_index(spec: Any, blob: memoryview) -> Any:
    import pandas as pd

    names = [decode(n, blob) for n in spec.get("names", [None])]
    if "range" in spec:
        start, stop, step = spec["range"]
        return pd.RangeIndex(start, stop, step, name=names[0])
    if "tuples" in spec:
        return pd.MultiIndex.from_tuples([decode(t, blob) for t in spec["tuples"]], names=names)
    if "objects" in spec:
        return pd.Index([decode(v, blob) for v in spec["objects"]], dtype=_pandas_dtype(spec.get("dtype", "object")),
                        name=names[0])
    return pd.Index(_array(spec["array"], blob), name=names[0])


# --------------------------------------------------------------------------------------------------------------------
# files


def dumps(value: Any, **meta: Any) -> bytes:
    """The bytes of a store file holding ``value``; ``meta`` (JSON scalars) goes into the header."""
    blob = _Blob()
    tree = json.dumps(encode(value, blob), separators=(",", ":"), allow_nan=False).encode()
    payload = b"".join([_U64.pack(len(tree)), tree, *blob.parts])
    header = json.dumps({"format": FORMAT, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                         **meta}, sort_keys=True, allow_nan=False).encode()
    return b"".join([MAGIC, _U64.pack(len(header)), header, payload])


def read_header(data: bytes) -> tuple[dict[str, Any], memoryview]:
    """``(header, payload)`` of a store file, after checking its magic, its size and its checksum."""
    view = memoryview(data)
    if bytes(view[:len(MAGIC)]) != MAGIC:
        raise StoreError("not a sgdbayes store file (bad magic; an old or foreign file)")
    pos = len(MAGIC)
    if len(view) < pos + _U64.size:
        raise StoreError("truncated header")
    (hlen,) = _U64.unpack_from(view, pos)
    pos += _U64.size
    if hlen > _MAX_HEADER or len(view) < pos + hlen:
        raise StoreError("truncated or oversized header")
    try:
        header = json.loads(bytes(view[pos:pos + hlen]))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(f"unreadable header ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise StoreError(f"unsupported format {header.get('format') if isinstance(header, dict) else header!r}")
    payload = view[pos + hlen:]
    if len(payload) != header.get("size"):
        raise StoreError(f"size mismatch: header says {header.get('size')} bytes, file holds {len(payload)} "
                         "(truncated or appended to)")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise StoreError("checksum mismatch: the stored bytes changed after they were written")
    return header, payload


def loads(data: bytes, **expect: Any) -> Any:
    """The value stored in ``data``. Raises :class:`StoreError` unless the file is intact (checksum verified before
    anything is decoded) and its header holds ``expect`` (e.g. the cache key it must have been written for)."""
    header, payload = read_header(data)
    for name, want in expect.items():
        if header.get(name) != want:
            raise StoreError(f"the file was written for {name}={header.get(name)!r}, not {want!r}")
    (tlen,) = _U64.unpack_from(payload, 0) if len(payload) >= _U64.size else (None,)
    if tlen is None or len(payload) < _U64.size + tlen:
        raise StoreError("truncated payload")
    try:
        tree = json.loads(bytes(payload[_U64.size:_U64.size + tlen]))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(f"unreadable value tree ({err})") from None
    try:
        return decode(tree, payload[_U64.size + tlen:])
    except StoreError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise StoreError(f"malformed value tree ({type(err).__name__}: {err})") from None

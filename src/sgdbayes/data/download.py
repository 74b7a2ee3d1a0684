"""Fetch a data file once, check it, keep it: the one download path every real data set goes through.

``fetch(url, filename=..., sha256=...)`` returns the local path of ``filename`` in the data directory:

1. **cache first** — if the file is already there (and matches its checksum, when one is given) nothing is downloaded;
2. otherwise it is **downloaded atomically** (to a temporary file in the same directory, checked, then renamed), so an
   interrupted download never leaves a half file under the final name;
3. a **checksum mismatch** deletes the download and raises :class:`ChecksumError`;
4. **offline** (any ``URLError``/``OSError`` while downloading) raises :class:`DatasetUnavailableError`, whose message
   says what could not be fetched, from where, and exactly where to put the file by hand (path and checksum).

The data directory is ``SGDBAYES_DATA_DIR`` when set, else ``~/.cache/sgdbayes/data``.

    >>> from sgdbayes.data.download import fetch
    >>> path = fetch("https://archive.ics.uci.edu/static/public/52/ionosphere.zip",
    ...              filename="ionosphere.zip", sha256=None)                        # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "ChecksumError",
    "DatasetUnavailableError",
    "data_dir",
    "fetch",
    "file_digest",
]

ENV_VAR = "SGDBAYES_DATA_DIR"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_USER_AGENT = "sgdbayes-data-fetch/1 (+https://pypi.org/project/sgdbayes)"


class DatasetUnavailableError(RuntimeError):
    """A data file is not on disk and could not be downloaded (offline, URL gone, permission denied)."""


class ChecksumError(DatasetUnavailableError):
    """A downloaded (or hand-placed) file does not have the expected checksum; the bad file was deleted."""


def data_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The directory data files are kept in: ``cache_dir`` when given, else ``$SGDBAYES_DATA_DIR``, else
    ``~/.cache/sgdbayes/data``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "sgdbayes" / "data"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm`` any name ``hashlib.new`` accepts, e.g. ``"sha256"``, ``"md5"``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _expected(sha256: str | None, md5: str | None) -> tuple[str, str] | None:
    """The (algorithm, lower-case hex) pair to check, preferring SHA-256; validates the hex strings."""
    for name, value, length in (("sha256", sha256, 64), ("md5", md5, 32)):
        if value is None:
            continue
        if not isinstance(value, str) or len(value) != length or any(c not in "0123456789abcdefABCDEF" for c in value):
            raise ValueError(f"{name} must be a {length}-character hex string, got {value!r}")
    if sha256 is not None:
        return "sha256", sha256.lower()
    if md5 is not None:
        return "md5", md5.lower()
    return None


def _describe(check: tuple[str, str] | None) -> str:
    return f"{check[0]} {check[1]}" if check else "no checksum is recorded for it"


def _verify(path: Path, check: tuple[str, str] | None) -> str | None:
    """``None`` when ``path`` matches ``check`` (or there is nothing to check), else the digest it actually has."""
    if check is None:
        return None
    actual = file_digest(path, check[0])
    return None if actual == check[1] else actual


def _by_hand(url: str, target: Path, filename: str, check: tuple[str, str] | None) -> str:
    return (
        f"To use this data set offline, download {url} on a machine with internet access and place it at "
        f"{target} (expected {_describe(check)}); or point {ENV_VAR} (or cache_dir=) at a directory holding "
        f"{filename}."
    )


def _download(url: str, dest, timeout: float) -> None:
    """Stream ``url`` into the open binary file ``dest``."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URLs come from our own tables
        shutil.copyfileobj(response, dest, _CHUNK)


def fetch(
    url: str,
    *,
    filename: str,
    sha256: str | None = None,
    md5: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | list[str] = (),
    timeout: float = _TIMEOUT_S,
) -> Path:
    """Return the local path of ``filename``, downloading it from ``url`` (then each of ``mirrors``) if absent.

    Args:
        url: where the file lives (``https://``, ``http://`` or ``file://``).
        filename: the name it is stored under in the data directory (a plain name or a relative path such as
            ``"mnist/train-images-idx3-ubyte.gz"``; no ``..``).
        sha256, md5: the expected hex digest; SHA-256 is checked when both are given. ``None`` for both means the
            file is accepted as downloaded (use only where no canonical checksum exists).
        cache_dir: data directory; default :func:`data_dir` (``$SGDBAYES_DATA_DIR`` or ``~/.cache/sgdbayes/data``).
        mirrors: further URLs tried in order when ``url`` fails.
        timeout: seconds to wait for each connection.

    Raises:
        ValueError: a malformed ``filename`` or checksum.
        ChecksumError: the file on disk or the download has the wrong checksum (the bad file is deleted first).
        DatasetUnavailableError: every URL failed (offline, 404, ...); the message says where to put the file by hand.
    """
    if not isinstance(filename, str) or not filename or Path(filename).is_absolute() or ".." in Path(filename).parts:
        raise ValueError(f"filename must be a non-empty relative path without '..', got {filename!r}")
    check = _expected(sha256, md5)
    target = data_dir(cache_dir) / filename

    if target.is_file():
        actual = _verify(target, check)
        if actual is None:
            return target
        target.unlink()
        raise ChecksumError(
            f"{target} has {check[0]} {actual}, expected {check[1]}; the file was deleted. "
            "It is corrupt, truncated or a different version: call again to download it afresh. "
            + _by_hand(url, target, filename, check)
        )

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetUnavailableError(
            f"cannot create the data directory {target.parent} ({err.strerror or err}); "
            f"set {ENV_VAR} to a writable directory."
        ) from err

    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    failures: list[str] = []
    try:
        for source in (url, *mirrors):
            try:
                with open(tmp, "wb") as fh:
                    _download(source, fh, timeout)
                    fh.flush()
                    os.fsync(fh.fileno())
            except (urllib.error.URLError, OSError, ValueError) as err:
                # URLError (offline, DNS, 404: HTTPError is a subclass), socket timeouts and resets are OSErrors;
                # ValueError covers a malformed URL.
                reason = getattr(err, "reason", None) or err
                failures.append(f"{source}: {reason}")
                continue
            actual = _verify(tmp, check)
            if actual is not None:
                tmp.unlink()
                raise ChecksumError(
                    f"the file downloaded from {source} has {check[0]} {actual}, expected {check[1]}; it was deleted "
                    "and not stored. The server may be serving a different version or a broken file. "
                    + _by_hand(url, target, filename, check)
                )
            os.replace(tmp, target)
            return target
    finally:
        if tmp.exists():
            tmp.unlink()

    raise DatasetUnavailableError(
        f"could not download {filename} ({'; '.join(failures)}). " + _by_hand(url, target, filename, check)
    )

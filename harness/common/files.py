"""Files that are never half-written, and downloads that are checked before use.

The one place optbench writes a file atomically (records, the user cache,
downloads) and fetches a dataset file: through a temporary file in the target's
directory, checked, then renamed, so a reader or a crash sees the old file or
the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Callable

from harness.errors import DownloadFailed


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], None], *, durable: bool = True) -> None:
    """Write ``path`` by calling ``write`` on a temporary file beside it, then
    ``os.replace``. ``durable`` also fsyncs before the rename (records: a crash
    must not leave an empty file under the final name; a cache can skip it).
    Raises OSError as the file system does; no temporary file is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike, text: str, *, durable: bool = True) -> None:
    write_atomic(path, lambda f: f.write(text.encode()), durable=durable)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, path: str | os.PathLike, *, check: Callable[[Path], None] | None = None,
             offline_hint: str = "") -> Path:
    """Fetch ``url`` to ``path``: into a ``.part`` file beside it, ``check``ed
    (it raises to refuse the file: a wrong sha256, a bad header), then renamed.
    A network failure is a :class:`DownloadFailed` whose message ends with
    ``offline_hint`` (how to get the file onto a machine without internet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as e:
            raise DownloadFailed(f"could not download {url} ({e}).{' ' + offline_hint if offline_hint else ''}") from e
        if check is not None:
            check(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


__all__ = ["write_atomic", "write_text_atomic", "sha256_file", "download"]

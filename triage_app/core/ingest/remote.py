"""Footage in an object store (``s3://``, ``gs://``, ``az://``, ...), read through fsspec.

A source added by its URL keeps the URL in the project; wherever its pixels are needed (ingest,
scoring on this machine or on a cluster's worker, review) the object is copied once into this
machine's cache folder and read from there: OpenCV and FFmpeg read local files, and a video
is read several times over (probe, sampling, exact re-reads). A still of a folder source is
fetched alone when one frame is wanted (a worker scoring a few hundred frames of a folder
of thousands fetches those frames only); ingest fetches the whole folder, which it reads
whole anyway. A copy is kept while the object's size and version tag (ETag, or time of
change) are the same, so a replaced object is fetched again.

fsspec finds the store's own package by the URL's scheme (``s3fs`` for S3, ``gcsfs`` for
Google Cloud Storage, ``adlfs`` for Azure); where it is missing the message names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from pathlib import Path, PurePosixPath
from typing import Any

import platformdirs

from triage_app.core.model.errors import SourceError

#: Schemes read as object stores (every other ``scheme://`` is a live stream's address).
OBJECT_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "file")
_BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs",
             "adl": "adlfs", "oss": "ossfs"}


def scheme(uri: str) -> str:
    head, sep, _ = str(uri).partition("://")
    return head.lower() if sep else ""


def is_object_url(uri: str | Path) -> bool:
    return scheme(str(uri)) in OBJECT_SCHEMES


def cache_root() -> Path:
    """This machine's copies of remote footage (each machine of a cluster keeps its own)."""
    return Path(os.environ.get("TRIAGE_CACHE_DIR") or platformdirs.user_cache_dir("triage_app")) / "remote"


def join(url: str, rel: str | PurePosixPath) -> str:
    return url.rstrip("/") + "/" + str(rel).lstrip("/")


def parent(url: str) -> str:
    head, sep, rest = url.partition("://")
    return head + sep + posixpath.dirname(rest.rstrip("/"))


def _fs(url: str) -> tuple[Any, str]:
    try:
        import fsspec  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise SourceError(url, "reading footage from an object store needs fsspec: pip install fsspec") from exc
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        pkg = _BACKENDS.get(scheme(url))
        need = f": pip install {pkg}" if pkg else ""
        raise SourceError(url, f"no reader for {scheme(url)}:// URLs is installed{need} ({exc})") from exc


def _stamp(info: dict[str, Any]) -> str:
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime") or info.get("LastModified") or \
        info.get("updated") or info.get("last_modified") or ""
    return json.dumps([info.get("size"), str(tag)])


def _copy(fs: Any, path: str, url: str, dest: Path, info: dict[str, Any]) -> Path:
    """One object into ``dest`` unless the copy there is of this version already."""
    stamp = dest.with_name(f".{dest.name}.version")
    want = _stamp(info)
    if dest.is_file() and stamp.is_file() and stamp.read_text() == want:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        fs.get_file(path, str(part))
        os.replace(part, dest)
        stamp.write_text(want)
    except FileNotFoundError as exc:
        raise SourceError(url, "not found in the object store (moved or deleted?)") from exc
    except OSError as exc:
        raise SourceError(url, f"cannot be read from the object store ({exc.__class__.__name__}: {exc})") from exc
    finally:
        part.unlink(missing_ok=True)
    return dest


def _info(fs: Any, path: str, url: str) -> dict[str, Any]:
    try:
        info: dict[str, Any] = fs.info(path)
        return info
    except FileNotFoundError as exc:
        raise SourceError(url, "not found in the object store (moved or deleted?)") from exc
    except (OSError, ValueError) as exc:
        raise SourceError(url, f"cannot be reached ({exc.__class__.__name__}: {exc})") from exc


def _folder(url: str) -> Path:
    """Where the copies of a folder's files go: named by the folder's URL, and by its name."""
    key = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return cache_root() / key / (PurePosixPath(url.rstrip("/").partition("://")[2]).name or "root")


def local_copy(url: str, suffixes: set[str] | None = None) -> Path:
    """This machine's copy of the object at ``url``: a file, or for a folder (a prefix) a
    folder holding its files whose suffix is in ``suffixes`` (all files without), with the
    same names. Raises ``SourceError`` naming the URL."""
    fs, path = _fs(url)
    info = _info(fs, path, url)
    if info.get("type") != "directory":  # beside the other files of its folder, as a folder's copy holds them
        return _copy(fs, path, url, _folder(parent(url)) / PurePosixPath(path).name, info)
    folder = _folder(url)
    try:
        listed = fs.ls(path, detail=True)  # the folder's own files: a folder source is not read recursively
    except OSError as exc:
        raise SourceError(url, f"cannot be listed ({exc.__class__.__name__}: {exc})") from exc
    for meta in listed:
        name = PurePosixPath(str(meta["name"])).name
        if meta.get("type") != "directory" and (suffixes is None or PurePosixPath(name).suffix.lower() in suffixes):
            _copy(fs, str(meta["name"]), join(url, name), folder / name, meta)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def localise(uri: str | Path) -> str:
    """The local path to read for ``uri``: its copy where it is an object-store URL."""
    text = str(uri)
    return str(local_copy(text)) if is_object_url(text) else text

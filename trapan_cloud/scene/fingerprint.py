"""Input fingerprints: what a run records about each input file so that a resume can refuse one that changed.

A fingerprint holds the file's size, its modification time (local files) or ETag / Last-Modified (remote objects),
and SHA-256 digests of its header and of a few sampled blocks, read with fsspec (a few small range requests, no
decoding). Hrefs are absolute for local files and `redact`-ed for URLs, so a resume works from any working directory,
and remote ones from any machine.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError
from ..redaction import redact

HEADER_BYTES = 65536
"""Bytes hashed at the start of a file: the TIFF header and IFDs of a COG (and all of a STAC item)."""
SAMPLE_BYTES = 4096
"""Bytes hashed at each sampled offset."""
SAMPLES = 8
"""Sampled offsets, evenly spread over the file after the header, the last one ending at the end of the file."""


@dataclass(frozen=True)
class Fingerprint:
    """What identifies the content of one input file (hashes are hex SHA-256 digests)."""

    name: str
    """Which input: ``pan``, ``ms``, ``ms[1]``, ``item``, ``asset 'pan_analytic'``."""
    href: str
    """Absolute path or credential-free URL."""
    size: int
    """Bytes."""
    modified: str | None
    """Local mtime in nanoseconds, or the remote object's ETag / Last-Modified (None when the server gives none)."""
    header_sha256: str
    """Digest of the first `HEADER_BYTES`."""
    blocks_sha256: str
    """Digest of `SAMPLES` blocks of `SAMPLE_BYTES` spread over the rest of the file."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy without ``name`` (the manifest keys fingerprints by name)."""
        d = asdict(self)
        del d["name"]
        return d

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> Fingerprint:
        """The inverse of `to_dict`."""
        return cls(name=name, href=d["href"], size=int(d["size"]), modified=d.get("modified"),
                   header_sha256=d["header_sha256"], blocks_sha256=d["blocks_sha256"])

    def changes(self, now: Fingerprint) -> list[str]:
        """What differs in ``now`` (empty when nothing does), e.g. ``["size 1024 -> 2048", "header"]``."""
        out = [f"{k} {getattr(self, k)} -> {getattr(now, k)}" for k in ("href", "size", "modified")
               if getattr(self, k) != getattr(now, k)]
        return out + [k.replace("_sha256", " bytes") for k in ("header_sha256", "blocks_sha256")
                      if getattr(self, k) != getattr(now, k)]


def is_url(href: str) -> bool:
    """Whether ``href`` is a URL (a scheme of two letters or more; ``C:`` is a drive)."""
    return len(urlsplit(href).scheme) > 1


def absolute(href: str) -> str:
    """Local paths made absolute and normalised; URLs and GDAL ``/vsi`` paths as they are.

    >>> absolute("s3://b/k.tif"), absolute("/a/./b/../c.tif")
    ('s3://b/k.tif', '/a/c.tif')
    """
    if is_url(href) or href.startswith("/vsi"):
        return href
    return os.path.normpath(os.path.abspath(href))


_VSI = {"/vsis3/": "s3://", "/vsigs/": "gs://", "/vsiaz/": "az://", "/vsicurl/": ""}
"""GDAL virtual file system prefixes and the fsspec spelling of the same location."""


def fsspec_url(href: str) -> str:
    """``href`` as fsspec reads it: GDAL's ``/vsis3/b/k`` is ``s3://b/k``, ``/vsicurl/URL`` is ``URL``.

    >>> fsspec_url("/vsis3/bucket/k.tif"), fsspec_url("/vsicurl/https://h.org/a.tif"), fsspec_url("/d/a.tif")
    ('s3://bucket/k.tif', 'https://h.org/a.tif', '/d/a.tif')
    """
    for prefix, scheme in _VSI.items():
        if href.startswith(prefix):
            return scheme + href[len(prefix):]
    return href


def sample_offsets(size: int) -> list[int]:
    """Start offsets of the sampled blocks: `SAMPLES` of them after the header, the last ending at ``size``.

    >>> sample_offsets(100)
    []
    >>> sample_offsets(65536 + 8192)[-1] == 65536 + 8192 - 4096
    True
    """
    span = size - HEADER_BYTES - SAMPLE_BYTES
    if span < 0:
        return []
    return sorted({HEADER_BYTES + span * (i + 1) // SAMPLES for i in range(SAMPLES)})


def fingerprint(href: str, name: str) -> Fingerprint:
    """The `Fingerprint` of the file at ``href`` (local path or fsspec URL: ``s3://``, ``https://``, ...).

    Raises `InputError` naming ``name`` when the file cannot be read.
    """
    import fsspec

    shown = redact(href)
    try:
        # a fresh filesystem: a cached one keeps the endpoint and credentials of its creation, and its listing cache
        # could hide a change of the file
        fs, path = fsspec.core.url_to_fs(fsspec_url(href), skip_instance_cache=True)
        info = fs.info(path)
        size = int(info.get("size") or 0)
        if is_url(fsspec_url(href)):
            tag = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("last_modified")
            modified = None if tag is None else str(tag).strip('"')
        else:
            modified = str(os.stat(path).st_mtime_ns)
        # exact range requests: a file object would read ahead (s3fs: 50 MiB per seek)
        starts = [0, *sample_offsets(size)]
        ends = [min(HEADER_BYTES, size), *(o + SAMPLE_BYTES for o in starts[1:])]
        parts = fs.cat_ranges([path] * len(starts), starts, ends, on_error="raise")
        header = hashlib.sha256(parts[0]).hexdigest()
        blocks = hashlib.sha256(b"".join(parts[1:]))
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"{name}: cannot read {shown!r} to fingerprint it ({redact(str(exc))}); check the path/URL "
                         "and, for remote files, the credentials in the environment") from None
    return Fingerprint(name, shown if is_url(href) else absolute(href), size, modified, header, blocks.hexdigest())

"""`redact`: the one rule for showing a location or a message that may hold one (hrefs, errors, logs, manifests).

A URL loses its user-info (``user:password@``), its query string and its fragment (signed URLs carry their keys and
signatures there: ``X-Amz-Signature``, ``sig``, ``token``); local paths are kept as they are.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_URL = re.compile(r"\b[a-zA-Z][\w+.-]*://[^\s'\"<>]+")


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact(text: str) -> str:
    """``text`` with every URL in it credential-free.

    >>> redact("s3://KEY:SECRET@bucket/out.zarr")
    's3://bucket/out.zarr'
    >>> redact("https://host.org/a/b.tif?X-Amz-Signature=abc&X-Amz-Credential=k#frag")
    'https://host.org/a/b.tif'
    >>> redact("cannot open 'https://u:p@h.org:8080/x.tif?sig=1': 403")
    "cannot open 'https://h.org:8080/x.tif': 403"
    >>> redact("/data/out.zarr")
    '/data/out.zarr'
    """
    return _URL.sub(lambda m: _redact_url(m.group(0)), str(text))

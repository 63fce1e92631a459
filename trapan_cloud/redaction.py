"""`redact`: the one rule for showing a location or a message that may hold one (hrefs, errors, logs, manifests).

A URL loses its user-info (``user:password@``), its query string and its fragment (signed URLs carry their keys and
signatures there: ``X-Amz-Signature``, ``sig``, ``token``); signing parameters outside a URL (a GDAL ``/vsi`` path,
a library's message) lose their values; the values of credential environment variables (`SECRET_ENV`) are masked
wherever they appear; local paths are kept as they are. `refuse_credentials` turns away a URL that carries
credentials as user-info: they belong in the environment.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

from .errors import InputError

_URL = re.compile(r"\b[a-zA-Z][\w+.-]*://[^\s'\"<>]+")
_SIGNING = re.compile(r"(?i)\b(x-amz-[a-z-]+|sig|signature|se|sp|sv|token|access_token|security-token|"
                      r"awsaccesskeyid|googleaccessid|password|secret|key-pair-id|policy)=[^&\s'\"<>]+")
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID",
              "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING",
              "GS_SECRET_ACCESS_KEY", "GS_ACCESS_KEY_ID", "GOOGLE_APPLICATION_CREDENTIALS_JSON",
              "OSS_SECRET_ACCESS_KEY",
              "SWIFT_AUTH_TOKEN", "GDAL_HTTP_USERPWD", "GDAL_HTTP_BEARER", "TRAPAN_SECRET")
"""Environment variables whose values are credentials: never shown, whatever message they end up in."""
_MASK = "***"


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _secrets() -> list[str]:
    """The credential values in the environment now, longest first (8 characters or more: no false hits)."""
    values = {os.environ.get(name, "") for name in SECRET_ENV}
    return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every URL in it credential-free, signing parameters blanked and credential values masked.

    >>> redact("s3://KEY:SECRET@bucket/out.zarr")
    's3://bucket/out.zarr'
    >>> redact("https://host.org/a/b.tif?X-Amz-Signature=abc&X-Amz-Credential=k#frag")
    'https://host.org/a/b.tif'
    >>> redact("cannot open 'https://u:p@h.org:8080/x.tif?sig=1': 403")
    "cannot open 'https://h.org:8080/x.tif': 403"
    >>> redact("/vsis3/b/x.tif?X-Amz-Signature=abc&sig=def failed")
    '/vsis3/b/x.tif?X-Amz-Signature=***&sig=*** failed'
    >>> redact("/data/out.zarr")
    '/data/out.zarr'
    """
    out = _URL.sub(lambda m: _redact_url(m.group(0)), str(text))
    out = _SIGNING.sub(lambda m: f"{m.group(1)}={_MASK}", out)
    for value in _secrets():
        out = out.replace(value, _MASK)
    return out


def has_userinfo(href: str) -> bool:
    """Whether a URL carries user-info (``user[:password]@``).

    A signed query string is not refused (signed asset hrefs are how some catalogs grant access); it is redacted.

    >>> has_userinfo("s3://KEY:SECRET@bucket/x.zarr"), has_userinfo("https://h.org/a.tif?sig=abc")
    (True, False)
    >>> has_userinfo("s3://bucket/x.zarr"), has_userinfo("/data/a@b.tif")
    (False, False)
    """
    parts = urlsplit(str(href))
    return len(parts.scheme) > 1 and "@" in parts.netloc


def refuse_credentials(href: str, name: str) -> None:
    """Raise `InputError` naming ``name`` (without echoing the secret) when the URL ``href`` carries user-info."""
    if has_userinfo(href):
        raise InputError(f"{name}: {redact(href)!r} carries credentials in the URL (user-info); give the URL "
                         "without them and put the credentials in the environment "
                         "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GDAL_HTTP_* or the storage's own variables)")

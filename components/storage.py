"""Model and data locations given in params: local paths or object-store URIs, made local before loading.

`local_path(uri)` returns a local directory or file for `uri`: a local path is checked and returned
as is; an `s3://bucket/prefix` URI is fetched once into a cache folder (S3-compatible stores through
the endpoint in $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL, the same variables boto3 reads).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
from pathlib import Path

from components.dataset import file_md5

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """A configured location does not exist or cannot be fetched; the message names it."""


# What a write can fail with because of where it goes, not what the code does: read-only mounts,
# permissions, full disks and quotas.
READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
PROBE_BYTES = 1 << 20  # a directory that cannot take 1 MiB cannot take a run's state


def _free_mib(path: Path) -> str:
    for p in (path, *path.parents):
        with contextlib.suppress(OSError):
            return f"{shutil.disk_usage(p).free / 2**20:.0f} MiB free"
    return "free space unknown"


def write_problem(path: str | Path, err: OSError, setting: str | None, elsewhere: str | None = None) -> str:
    """One line for a failed write under `setting` (the config field or variable that chose `path`; None when
    none did): what is wrong there and what to change. `elsewhere`: the way out other than fixing `path`
    (default: point `setting` at a writable directory)."""
    path = Path(path)
    elsewhere = elsewhere or (f"point {setting} at a writable directory" if setting else "write somewhere else")
    if err.errno == errno.EROFS:
        what, fix = "is on a read-only file system", elsewhere
    elif err.errno in READ_ONLY_ERRNOS:
        what, fix = f"is not writable by this user (uid {os.getuid()})", f"give it write permission, or {elsewhere}"
    elif err.errno in FULL_ERRNOS:
        what = f"is full ({_free_mib(path)}{', quota exceeded' if err.errno == errno.EDQUOT else ''})"
        fix = f"free space there, or {elsewhere}"
    else:
        what, fix = f"cannot be written ({err.strerror or err})", elsewhere
    return f"{setting + ': ' if setting else ''}{path} {what}; {fix}"


def ensure_writable_dir(path: str | Path, setting: str, parents: bool = False,
                        elsewhere: str | None = None) -> Path:
    """`path` as an existing directory that takes a write of PROBE_BYTES, created when missing (its parent must
    exist unless `parents`: a missing parent is usually an unmounted volume or a typo, not a first run).
    Raises StorageError naming `setting` otherwise. A real write, not os.access: read-only mounts, full
    disks and quotas only show when writing, and root passes every permission check."""
    path = Path(path).expanduser().absolute()
    elsewhere = elsewhere or f"point {setting} at a writable directory"
    if path.exists() and not path.is_dir():
        raise StorageError(f"{setting}: {path} is a file, not a directory; {elsewhere}")
    if not path.is_dir():
        if not parents and not path.parent.is_dir():
            raise StorageError(f"{setting}: {path} does not exist, nor does its parent {path.parent} (a volume not "
                               f"mounted, or a typo?); create it (mkdir -p {path}), or {elsewhere}")
        try:
            path.mkdir(parents=parents, exist_ok=True)
        except OSError as err:
            raise StorageError(write_problem(err.filename or path, err, setting, elsewhere)) from None
    probe = path / f".vidcustom-write-probe.{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())  # delayed allocation reports a full disk here, not at write()
    except OSError as err:
        raise StorageError(write_problem(path, err, setting, elsewhere)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return path


def local_path(uri: str | Path, cache_dir: str | Path | None = None, what: str = "model") -> Path:
    """`uri` as a local path: checked when local, downloaded into `cache_dir` when remote."""
    text = str(uri)
    if "://" in text and not text.startswith("file://"):
        scheme = text.split("://", 1)[0]
        if scheme != "s3":
            raise StorageError(f"{what} location {text!r}: scheme {scheme}:// is not supported; use a local path "
                               "or s3://bucket/prefix")
        return _fetch_s3(text, cache_dir, what)
    path = Path(text.removeprefix("file://")).expanduser()
    if not path.exists():
        raise StorageError(f"{what} location {path} does not exist; point the config at a local copy "
                           "(nothing is downloaded from a hub at run time)")
    return path


S3_CONNECT_TIMEOUT_S = 5
S3_ATTEMPTS = 3  # botocore "standard" retry mode: attempts per request, backoff <= 2**attempt s


def _default_cache() -> Path:
    return Path(os.environ.get("VIDCUSTOM_HOME", ".vidcustom")).expanduser().resolve() / "models"


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint to use: the argument, else $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL (None: AWS)."""
    return endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _s3_client():
    """A boto3 S3 client for $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL (None: AWS), with short timeouts."""
    import boto3
    from botocore.config import Config

    endpoint = s3_endpoint()
    config = Config(connect_timeout=S3_CONNECT_TIMEOUT_S, read_timeout=60,
                    retries={"max_attempts": S3_ATTEMPTS, "mode": "standard"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config), endpoint


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def _is_md5(etag: str) -> bool:
    """A single-part upload's ETag is the content's md5 (multipart ones end in -N)."""
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag)


def _fetch_s3(uri: str, cache_dir: str | Path | None, what: str) -> Path:
    """Mirror every object under s3://bucket/prefix into cache_dir/bucket/prefix; returns that path.

    A file already there with the object's size and ETag (as recorded by the last fetch, or its md5 equal
    to a single-part ETag) is kept, so a second call downloads nothing; each file is written to a `.part`
    file and renamed into place, so an interrupted fetch never leaves a truncated file under its real name.
    A prefix that is one object (s3://b/weights.pt) comes back as that file."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = uri.split("://", 1)[1].partition("/")
    prefix = prefix.strip("/")
    if not bucket:
        raise StorageError(f"{what} location {uri!r} names no bucket; use s3://bucket/prefix")
    root = Path(cache_dir).expanduser().resolve() if cache_dir else _default_cache()
    dest = root / bucket / prefix if prefix else root / bucket
    try:
        client, endpoint = _s3_client()
    except (BotoCoreError, ValueError) as err:  # e.g. an endpoint URL without http(s)://
        raise StorageError(f"{what} location {uri!r}: cannot set up an S3 client: {err}") from None
    where = endpoint or "AWS S3"

    def fail(err: Exception, doing: str) -> StorageError:
        code = err.response.get("Error", {}).get("Code") if isinstance(err, ClientError) else None
        if code in ("NoSuchBucket",):
            return StorageError(f"{what} location {uri!r}: bucket {bucket!r} does not exist at {where}")
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageError(f"{what} location {uri!r}: access denied at {where} ({code}) while {doing}; check "
                                "$AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY and the bucket policy")
        return StorageError(f"{what} location {uri!r}: {doing} at {where} failed ({type(err).__name__}: {err}); "
                            "check $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL (server up, host and port right?) "
                            "and the credentials in $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY")

    # List "prefix/..." so s3://b/models/tiny does not also pick up s3://b/models/tiny-v2; a prefix that
    # is itself one object (a single weights file) is fetched as a file.
    objects: list[tuple[str, Path, int, str]] = []  # (key, local path, size, etag)
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/" if prefix else "")
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                rel = key[len(prefix) + 1:] if prefix else key
                if not rel or key.endswith("/"):  # folder markers some tools create
                    continue
                local = dest / rel
                if not local.resolve().is_relative_to(dest.resolve()):
                    raise StorageError(f"{what} location {uri!r}: object key {key!r} escapes the prefix")
                objects.append((key, local, obj["Size"], _etag(obj.get("ETag"))))
        if not objects and prefix:
            try:
                head = client.head_object(Bucket=bucket, Key=prefix)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            else:
                objects.append((prefix, dest, head["ContentLength"], _etag(head.get("ETag"))))
    except (BotoCoreError, ClientError) as err:
        raise fail(err, "listing") from None
    if not objects:
        raise StorageError(f"{what} location {uri!r}: no objects under that prefix at {where}; upload the "
                           f"{what} there (e.g. aws s3 cp --recursive DIR {uri}) or fix the location")

    # What was fetched before: {key: [size, etag]} in a hidden file beside the folder (not inside it, so
    # the model folder holds exactly the objects).
    index_path = dest.parent / f".{dest.name}.s3index.json"
    try:
        index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    except (OSError, ValueError):
        index = {}
    fetched = 0
    for key, local, size, etag in objects:
        if local.is_file() and local.stat().st_size == size and (
                index.get(key) == [size, etag] or (_is_md5(etag) and file_md5(local) == etag)):
            index[key] = [size, etag]
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        part = local.with_name(f"{local.name}.{os.getpid()}.part")
        try:
            client.download_file(bucket, key, str(part))
            got = part.stat().st_size
        except (BotoCoreError, ClientError, OSError) as err:
            part.unlink(missing_ok=True)
            raise fail(err, f"downloading {key}") from None
        if got != size:
            part.unlink(missing_ok=True)
            raise StorageError(f"{what} location {uri!r}: {key} arrived with {got} bytes, not {size} (changed "
                               "during the download?); try again")
        os.replace(part, local)
        index[key] = [size, etag]
        fetched += 1
    # Files an earlier fetch brought that are gone from the store now (only those: nothing else in the
    # folder is touched), so the folder keeps mirroring the prefix, e.g. after a re-sharded checkpoint.
    current = {key for key, *_ in objects}
    stale = [key for key in index if key not in current]
    for key in stale:
        rel = key[len(prefix) + 1:] if prefix and key.startswith(prefix + "/") else None
        if rel and (dest / rel).resolve().is_relative_to(dest.resolve()):
            (dest / rel).unlink(missing_ok=True)
        del index[key]
    if fetched or stale or not index_path.is_file():
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f"{index_path.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        os.replace(tmp, index_path)
    log.info("%s %s: %d of %d files downloaded into %s", what, uri, fetched, len(objects), dest)
    return dest

"""Model and data locations given in params: local paths or object-store URIs, made local before loading.

`local_path(uri)` returns a local directory or file for `uri`: a local path is checked and returned
as is; an `s3://bucket/prefix` URI is fetched once into a cache folder (S3-compatible stores through
the endpoint in $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL, the same variables boto3 reads).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from components.dataset import file_md5

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """A configured location does not exist or cannot be fetched; the message names it."""


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

"""Dataset versions as DVC sees them: the `.dir` content hash, push to and pull from a DVC remote.

The version of a dataset directory is the md5 `.dir` hash that `dvc add` computes for it, built with
dvc-data's own `build` (so a DVC user gets the same id), and objects travel with dvc-data's `transfer`
and `checkout` in DVC 3's remote layout (`<remote>/files/md5/xx/yyyy`, the `.dir` listing beside the
files). A push sends only objects the remote lacks, so unchanged content uploads nothing.

Remotes are local folders (the default `<state>/dvc-remote`, a mounted volume in a cluster) or any URL
a DVC filesystem plugin installed alongside handles (s3://, gs://, ... via dvc-s3 and friends).

s3:// remotes work with AWS and any S3-compatible store (MinIO, Ceph, moto): the endpoint is the
`endpoint_url` argument (config `validate.remote_endpoint_url`), else $AWS_ENDPOINT_URL_S3, else
$AWS_ENDPOINT_URL; credentials and region come from the standard AWS variables ($AWS_ACCESS_KEY_ID,
$AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN, $AWS_DEFAULT_REGION / $AWS_REGION, $AWS_PROFILE) or
~/.aws. The bucket is checked before anything moves, with short timeouts and few retries, so a wrong
endpoint, a server that is down or a missing bucket fails in seconds with a RemoteError that says what to check.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from components.storage import (FULL_ERRNOS, READ_ONLY_ERRNOS, StorageError, ensure_writable_dir, s3_endpoint,
                                write_problem)

HASH_NAME = "md5"
_VERSION = re.compile(r"^[0-9a-f]{32}\.dir$")

# s3:// limits. Transfers: botocore "standard" retries (throttling, 5xx, dropped connections; backoff
# <= 2**attempt s) times s3fs's own retry loop. The bucket probe that runs first is stricter, so that an
# endpoint that refuses or never answers fails in seconds instead of s3fs 5 x botocore 5 backed-off tries.
S3_CONNECT_TIMEOUT_S = 5
S3_ATTEMPTS = 3  # botocore attempts per request during transfers
S3_FS_RETRIES = 2  # s3fs attempts around each botocore call (its default is 5)
S3_PROBE_TIMEOUT_S = 4  # connect and read, per attempt
S3_PROBE_ATTEMPTS = 2


class RemoteError(RuntimeError):
    """A DVC remote cannot be reached, written, or does not hold the requested version."""


REMOTE_FIX = ("point validate.remote (or $VIDCUSTOM_DVC_REMOTE) at a remote that takes writes, or set "
              "validate.push=false")


def _is_local(remote: str) -> bool:
    return "://" not in remote or remote.startswith("file://")


def _write_refused(remote: str, err: BaseException, endpoint: str | None = None) -> RemoteError | None:
    """One line for a push the remote refused (read-only, permission, full, access denied); None for other
    failures. s3fs turns S3's AccessDenied into PermissionError, so both kinds of remote land here."""
    if not isinstance(err, OSError):
        return None
    if _is_local(remote):
        if err.errno not in (*READ_ONLY_ERRNOS, *FULL_ERRNOS):
            return None
        root = Path(remote.removeprefix("file://")).expanduser().resolve()  # err names a temp file inside
        return RemoteError(write_problem(root, err, f"DVC remote {remote!r}", REMOTE_FIX))
    if isinstance(err, PermissionError):
        return RemoteError(f"DVC remote {remote!r} refuses writes at {endpoint or 'AWS S3'} (access denied: {err}); "
                           f"grant these credentials ($AWS_ACCESS_KEY_ID) s3:PutObject there, or {REMOTE_FIX}")
    return None


@contextlib.contextmanager
def _transfer_errors():
    """Collect the per-object errors that dvc-data's transfer logs (a traceback each, then only a count of
    failures is returned), so a refused push reports its cause once, in one line."""
    errors: list[BaseException] = []

    def keep(record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            errors.append(record.exc_info[1])
            return False
        return True

    logger = logging.getLogger("dvc_data.hashfile.transfer")
    logger.addFilter(keep)
    try:
        yield errors
    finally:
        logger.removeFilter(keep)


@dataclass
class PushResult:
    version: str  # "<md5>.dir", DVC's id of the directory's content
    remote: str
    uploaded: int  # objects sent now; 0 when the remote already held this content
    nfiles: int
    size: int  # bytes


def _progress(desc: str):
    from dvc_data.callbacks import TqdmCallback

    return TqdmCallback(desc=desc, unit="file", disable=None)  # disable=None: no bar when not a TTY


def _build(odb, dataset_dir: str | Path, dry_run: bool):
    from dvc_data.hashfile.build import build
    from dvc_objects.fs.local import LocalFileSystem

    path = Path(dataset_dir).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"dataset directory {path} does not exist")
    # No ignore filter: every file in the directory is part of the version, as with `dvc add` of a
    # directory without a .dvcignore.
    with _progress(f"hashing {path.name}") as cb:
        return build(odb, str(path), LocalFileSystem(), HASH_NAME, dry_run=dry_run, callback=cb)


def content_hash(dataset_dir: str | Path) -> tuple[str, int, int]:
    """(version, nfiles, size) of a directory without storing anything; version is "<md5>.dir"."""
    from dvc_data.hashfile.db import get_odb
    from dvc_objects.fs.memory import MemoryFileSystem

    # build() wants an object store to stage into; an in-memory one keeps this a pure computation.
    _, meta, tree = _build(get_odb(MemoryFileSystem(), "/vidcustom-hash-only", hash_name=HASH_NAME),
                           dataset_dir, dry_run=True)
    return tree.hash_info.value, meta.nfiles, meta.size


def _s3_check_hint(endpoint: str | None) -> str:
    where = (f"the endpoint {endpoint} (validate.remote_endpoint_url / $AWS_ENDPOINT_URL_S3: is the server up, "
             "host and port right, http vs https?)" if endpoint else
             "that AWS S3 is reachable, or set validate.remote_endpoint_url / $AWS_ENDPOINT_URL_S3 for MinIO")
    return f"check {where}, and the credentials in $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY (or $AWS_PROFILE)"


def _s3_probe(fs, remote: str, bucket: str, endpoint: str | None) -> None:
    """HEAD the bucket with a fail-fast client, so a dead endpoint or a missing bucket is named in seconds."""
    from s3fs import S3FileSystem

    args = {**fs.fs_args}
    args["config_kwargs"] = {**args.get("config_kwargs", {}), "connect_timeout": S3_PROBE_TIMEOUT_S,
                             "read_timeout": S3_PROBE_TIMEOUT_S,
                             "retries": {"max_attempts": S3_PROBE_ATTEMPTS, "mode": "standard"}}
    probe = S3FileSystem(**args)
    probe.retries = 1
    try:
        probe.call_s3("head_bucket", Bucket=bucket)
    except FileNotFoundError:
        raise RemoteError(f"DVC remote {remote!r}: bucket {bucket!r} does not exist at "
                          f"{endpoint or 'AWS S3'} (or that endpoint is not an S3 server); create it "
                          f"(aws s3 mb s3://{bucket}, mc mb ALIAS/{bucket}) or fix validate.remote / "
                          "validate.remote_endpoint_url") from None
    except PermissionError as err:
        raise RemoteError(f"DVC remote {remote!r}: access to bucket {bucket!r} at {endpoint or 'AWS S3'} denied "
                          f"({err}); check $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY and the bucket policy") from None
    except Exception as err:
        if type(err).__name__ == "NoCredentialsError":
            raise RemoteError(f"DVC remote {remote!r}: no AWS credentials found; set $AWS_ACCESS_KEY_ID and "
                              "$AWS_SECRET_ACCESS_KEY (or $AWS_PROFILE / ~/.aws/credentials)") from None
        raise RemoteError(f"DVC remote {remote!r} cannot be reached ({type(err).__name__}: {err}); "
                          + _s3_check_hint(endpoint)) from None


def _cloud_odb_fs(remote: str, endpoint_url: str | None):
    """(fs, objects path) for a URL remote through its DVC filesystem plugin; raises RemoteError."""
    from dvc.fs import get_cloud_fs

    scheme = remote.split("://", 1)[0].lower()
    extra = {}
    endpoint = None
    if scheme == "s3":
        endpoint = s3_endpoint(endpoint_url)
        extra = {"connect_timeout": S3_CONNECT_TIMEOUT_S} | ({"endpointurl": endpoint} if endpoint else {})
    try:
        cls, conf, fs_path = get_cloud_fs(None, url=remote, **extra)
        fs = cls(**conf)
        path = fs.join(fs_path, "files", HASH_NAME)
    except Exception as err:  # plugin missing, bad URL or option
        raise RemoteError(f"DVC remote {remote!r} is not usable: {type(err).__name__}: {err}") from None
    if fs.protocol == "s3":
        bucket = fs_path.strip("/").split("/", 1)[0]
        if not bucket:
            raise RemoteError(f"DVC remote {remote!r} names no bucket; use s3://bucket/prefix")
        try:
            fs.fs_args.setdefault("config_kwargs", {})["retries"] = {"max_attempts": S3_ATTEMPTS, "mode": "standard"}
        except Exception as err:  # credentials options dvc-s3 rejects, e.g. conflicting SSE settings
            raise RemoteError(f"DVC remote {remote!r} is not usable: {type(err).__name__}: {err}") from None
        _s3_probe(fs, remote, bucket, endpoint)
        fs.fs.retries = S3_FS_RETRIES
        return fs, path
    try:
        fs.exists(path)  # touch it now so an unreachable remote fails here, with its name
    except Exception as err:  # credentials, network: all one message
        raise RemoteError(f"DVC remote {remote!r} is not usable: {type(err).__name__}: {err}") from None
    return fs, path


def _remote_odb(remote: str, create: bool, endpoint_url: str | None = None):
    """The remote's md5 object store (`<remote>/files/md5`), checked for reachability.

    endpoint_url: S3-compatible endpoint for s3:// remotes (None: $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL)."""
    from dvc_data.hashfile.db import get_odb

    if "://" not in remote or remote.startswith("file://"):
        from dvc_objects.fs.local import LocalFileSystem

        root = Path(remote.removeprefix("file://")).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise RemoteError(f"DVC remote {remote!r} is a file, not a directory; point validate.remote at a folder")
        if create:  # a write is probed, so a read-only or full remote fails before anything is hashed
            try:
                ensure_writable_dir(root / "files" / HASH_NAME, f"DVC remote {remote!r}", parents=True,
                                    elsewhere=REMOTE_FIX)
            except StorageError as err:
                raise RemoteError(str(err)) from None
        elif not root.is_dir():
            raise RemoteError(f"DVC remote {remote!r} does not exist (nothing was pushed there yet?)")
        fs, path = LocalFileSystem(), str(root / "files" / HASH_NAME)
    else:
        fs, path = _cloud_odb_fs(remote, endpoint_url)
    # "copy" links only: a checkout must never hardlink/symlink workspace files into the remote.
    return get_odb(fs, path, hash_name=HASH_NAME, type=["copy"])


def push(dataset_dir: str | Path, remote: str, endpoint_url: str | None = None) -> PushResult:
    """Store the directory's content in the DVC remote; returns its version and what was uploaded.

    endpoint_url: S3-compatible endpoint for s3:// remotes (None: $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL)."""
    from dvc_data.hashfile.transfer import transfer

    odb = _remote_odb(remote, create=True, endpoint_url=endpoint_url)
    staging, meta, tree = _build(odb, dataset_dir, dry_run=False)
    endpoint = None if _is_local(remote) else s3_endpoint(endpoint_url)
    try:
        with _progress(f"pushing to {remote}") as cb, _transfer_errors() as errors:
            # shallow=False: transfer walks the tree and sends the files, then the .dir listing last.
            result = transfer(staging, odb, {tree.hash_info}, shallow=False, hardlink=False, callback=cb)
    except Exception as err:
        raise (_write_refused(remote, err, endpoint) or RemoteError(
            f"push of {dataset_dir} to DVC remote {remote!r} failed: {type(err).__name__}: {err}")) from None
    if result.failed:
        first = errors[0] if errors else None
        refused = first is not None and _write_refused(remote, first, endpoint)
        if refused:
            raise refused
        cause = f" (first: {type(first).__name__}: {first})" if first is not None else ""
        raise RemoteError(f"push to DVC remote {remote!r}: {len(result.failed)} objects failed to upload{cause}")
    return PushResult(tree.hash_info.value, remote, len(result.transferred), meta.nfiles, meta.size)


def check_remote(remote: str, endpoint_url: str | None = None) -> None:
    """Before any work: a local remote must take a write (probed); an s3:// bucket must answer. A write to
    a bucket is not probed: it would leave an object behind, and append-only buckets refuse the delete."""
    _remote_odb(remote, create=True, endpoint_url=endpoint_url)


def normalise_version(version: str) -> str:
    version = version.strip()
    if re.fullmatch(r"[0-9a-f]{32}", version):
        version += ".dir"
    if not _VERSION.match(version):
        raise ValueError(f"{version!r} is not a dataset version: expected the 32-hex-digit md5 '.dir' hash "
                         "that `validate` printed (e.g. 0123456789abcdef0123456789abcdef.dir)")
    return version


def pull(version: str, remote: str, dest: str | Path, force: bool = False, endpoint_url: str | None = None) -> Path:
    """Restore dataset `version` from the DVC remote into `dest` (created; must be empty unless force,
    which replaces its content).

    The restored directory is hashed again and must equal `version`. endpoint_url: as for push."""
    from dvc_data.hashfile.checkout import CheckoutError, checkout
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree
    from dvc_objects.fs.local import LocalFileSystem

    version = normalise_version(version)
    dest = Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()) and not force:
        raise ValueError(f"{dest} is not empty; pull into a new directory or pass force=True to overwrite it")
    odb = _remote_odb(remote, create=False, endpoint_url=endpoint_url)
    try:
        tree = Tree.load(odb, HashInfo(HASH_NAME, version))
    except FileNotFoundError:
        raise RemoteError(f"dataset version {version} is not in DVC remote {remote!r}") from None
    except Exception as err:  # network trouble after the probe, an unreadable listing
        raise RemoteError(f"cannot read version {version} from DVC remote {remote!r}: "
                          f"{type(err).__name__}: {err}") from None
    # Check out into a fresh sibling folder, verify, then move it into place: a failed or corrupt pull
    # never leaves a half-filled dest, and a forced pull never deletes files it did not bring.
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
    try:
        try:
            with _progress(f"pulling {version}") as cb:
                checkout(str(staging), LocalFileSystem(), tree, odb, force=True, progress_callback=cb)
        except CheckoutError as err:
            raise RemoteError(f"DVC remote {remote!r} lacks files of version {version}: {err}") from None
        except Exception as err:  # the connection dropped mid-way, a full disk, ...
            raise RemoteError(f"pull of {version} from DVC remote {remote!r} into {dest} failed: "
                              f"{type(err).__name__}: {err}") from None
        got, _, _ = content_hash(staging)
        if got != version:  # a corrupted remote object
            raise RemoteError(f"pulled data hashes to {got}, not {version}; the remote {remote!r} may be corrupt")
        if dest.exists():
            shutil.rmtree(dest)  # empty, or force=True
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def write_dvc_file(path: str | Path, version: str, nfiles: int, size: int, remote: str | None,
                   out: str = "dataset", endpoint_url: str | None = None) -> Path:
    """A `dvc add`-style `.dvc` file for this version, so a DVC repo can `dvc pull` it into `out/`.

    For an s3:// remote the header also names the endpoint (endpoint_url, else $AWS_ENDPOINT_URL_S3 /
    $AWS_ENDPOINT_URL) as the `dvc remote modify ... endpointurl` a MinIO user needs."""
    import yaml

    path = Path(path)
    header = "# Dataset version written by vidcustom validate. To fetch it into a DVC repository:\n"
    if remote:
        header += f"#   dvc remote add -d vidcustom {remote}\n"
        endpoint = s3_endpoint(endpoint_url) if remote.startswith("s3://") else None
        if endpoint:
            header += f"#   dvc remote modify vidcustom endpointurl {endpoint}\n"
    header += f"#   dvc pull {path.name}\n"
    body = {"outs": [{"md5": version, "size": size, "nfiles": nfiles, "hash": HASH_NAME, "path": out}],
            "meta": {"remote": remote, "written_by": "vidcustom validate"}}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False))
    return path

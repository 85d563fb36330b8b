"""Dataset versions as DVC sees them: the `.dir` content hash, push to and pull from a DVC remote.

The version of a dataset directory is the md5 `.dir` hash that `dvc add` computes for it, built with
dvc-data's own `build` (so a DVC user gets the same id), and objects travel with dvc-data's `transfer`
and `checkout` in DVC 3's remote layout (`<remote>/files/md5/xx/yyyy`, the `.dir` listing beside the
files). A push sends only objects the remote lacks, so unchanged content uploads nothing.

Remotes are local folders (the default `<state>/dvc-remote`, a mounted volume in a cluster) or any URL
a DVC filesystem plugin installed alongside handles (s3://, gs://, ... via dvc-s3 and friends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HASH_NAME = "md5"
_VERSION = re.compile(r"^[0-9a-f]{32}\.dir$")


class RemoteError(RuntimeError):
    """A DVC remote cannot be reached, written, or does not hold the requested version."""


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


def _remote_odb(remote: str, create: bool):
    """The remote's md5 object store (`<remote>/files/md5`), checked for reachability."""
    from dvc_data.hashfile.db import get_odb

    if "://" not in remote or remote.startswith("file://"):
        from dvc_objects.fs.local import LocalFileSystem

        root = Path(remote.removeprefix("file://")).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise RemoteError(f"DVC remote {remote!r} is a file, not a directory; point validate.remote at a folder")
        if create:
            try:
                (root / "files" / HASH_NAME).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise RemoteError(f"cannot create DVC remote {remote!r}: {err}") from None
        elif not root.is_dir():
            raise RemoteError(f"DVC remote {remote!r} does not exist (nothing was pushed there yet?)")
        fs, path = LocalFileSystem(), str(root / "files" / HASH_NAME)
    else:
        try:
            from dvc.fs import get_cloud_fs

            cls, conf, fs_path = get_cloud_fs(None, url=remote)
            fs = cls(**conf)
            path = fs.join(fs_path, "files", HASH_NAME)
            fs.exists(path)  # touch it now so an unreachable remote fails here, with its name
        except Exception as err:  # plugin missing, bad URL, credentials, network: all one message
            raise RemoteError(f"DVC remote {remote!r} is not usable: {type(err).__name__}: {err}") from None
    # "copy" links only: a checkout must never hardlink/symlink workspace files into the remote.
    return get_odb(fs, path, hash_name=HASH_NAME, type=["copy"])


def push(dataset_dir: str | Path, remote: str) -> PushResult:
    """Store the directory's content in the DVC remote; returns its version and what was uploaded."""
    from dvc_data.hashfile.transfer import transfer

    odb = _remote_odb(remote, create=True)
    staging, meta, tree = _build(odb, dataset_dir, dry_run=False)
    try:
        with _progress(f"pushing to {remote}") as cb:
            # shallow=False: transfer walks the tree and sends the files, then the .dir listing last.
            result = transfer(staging, odb, {tree.hash_info}, shallow=False, hardlink=False, callback=cb)
    except Exception as err:
        raise RemoteError(f"push of {dataset_dir} to DVC remote {remote!r} failed: "
                          f"{type(err).__name__}: {err}") from None
    if result.failed:
        raise RemoteError(f"push to DVC remote {remote!r}: {len(result.failed)} objects failed to upload")
    return PushResult(tree.hash_info.value, remote, len(result.transferred), meta.nfiles, meta.size)


def normalise_version(version: str) -> str:
    version = version.strip()
    if re.fullmatch(r"[0-9a-f]{32}", version):
        version += ".dir"
    if not _VERSION.match(version):
        raise ValueError(f"{version!r} is not a dataset version: expected the 32-hex-digit md5 '.dir' hash "
                         "that `validate` printed (e.g. 0123456789abcdef0123456789abcdef.dir)")
    return version


def pull(version: str, remote: str, dest: str | Path, force: bool = False) -> Path:
    """Restore dataset `version` from the DVC remote into `dest` (created; must be empty unless force)."""
    from dvc_data.hashfile.checkout import CheckoutError, checkout
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree
    from dvc_objects.fs.local import LocalFileSystem

    version = normalise_version(version)
    dest = Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()) and not force:
        raise ValueError(f"{dest} is not empty; pull into a new directory or pass force=True to overwrite it")
    odb = _remote_odb(remote, create=False)
    try:
        tree = Tree.load(odb, HashInfo(HASH_NAME, version))
    except FileNotFoundError:
        raise RemoteError(f"dataset version {version} is not in DVC remote {remote!r}") from None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with _progress(f"pulling {version}") as cb:
            checkout(str(dest), LocalFileSystem(), tree, odb, force=True, progress_callback=cb)
    except CheckoutError as err:
        raise RemoteError(f"DVC remote {remote!r} lacks files of version {version}: {err}") from None
    got, _, _ = content_hash(dest)
    if got != version:  # a corrupted remote object, or stray files in a forced dest
        raise RemoteError(f"pulled {dest} hashes to {got}, not {version}; the remote {remote!r} may be corrupt")
    return dest


def write_dvc_file(path: str | Path, version: str, nfiles: int, size: int, remote: str | None,
                   out: str = "dataset") -> Path:
    """A `dvc add`-style `.dvc` file for this version, so a DVC repo can `dvc pull` it into `out/`."""
    import yaml

    path = Path(path)
    header = "# Dataset version written by vidcustom validate. To fetch it into a DVC repository:\n"
    if remote:
        header += f"#   dvc remote add -d vidcustom {remote}\n"
    header += f"#   dvc pull {path.name}\n"
    body = {"outs": [{"md5": version, "size": size, "nfiles": nfiles, "hash": HASH_NAME, "path": out}],
            "meta": {"remote": remote, "written_by": "vidcustom validate"}}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False))
    return path

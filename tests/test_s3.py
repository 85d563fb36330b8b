"""s3:// for dataset versions (DVC remote) and model locations, through a real S3 server on loopback.

The server is moto's standalone one (tests/s3_server.py): real HTTP, real botocore/s3fs/dvc-s3 clients,
the endpoint given the way a MinIO deployment gives it ($AWS_ENDPOINT_URL_S3 or
validate.remote_endpoint_url).
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_dataset

pytest_plugins = ["s3_server"]  # the moto_endpoint and s3 fixtures (tests/s3_server.py)

REMOTE = "s3://bucket/dvc"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("s3") / "dataset")


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def assert_same_tree(a: Path, b: Path) -> None:
    assert files(a) == files(b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, files(a), shallow=False)
    assert not mismatch and not errors


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_push_twice_then_pull_restores_identical_files(s3, dataset, tmp_path):
    from components.dataset_versioning import content_hash, pull, push, write_dvc_file

    first = push(dataset, REMOTE)
    assert first.version == content_hash(dataset)[0] and first.remote == REMOTE
    # DVC 3 layout under the prefix: one object per distinct content, plus the .dir listing.
    keys = s3.keys("dvc/")
    distinct = {p.read_bytes() for p in dataset.rglob("*") if p.is_file()}
    assert first.uploaded == len(keys) == len(distinct) + 1
    assert all(k.startswith("dvc/files/md5/") for k in keys)
    assert f"dvc/files/md5/{first.version[:2]}/{first.version[2:]}" in keys

    again = push(dataset, REMOTE)
    assert (again.version, again.uploaded) == (first.version, 0)
    assert s3.keys("dvc/") == keys

    dest = pull(first.version.removesuffix(".dir"), REMOTE, tmp_path / "restored")  # bare md5 accepted too
    assert_same_tree(dataset, dest)
    assert content_hash(dest)[0] == first.version

    # The .dvc file tells a DVC user both commands a MinIO remote needs (endpoint from $AWS_ENDPOINT_URL_S3).
    text = write_dvc_file(tmp_path / "dataset.dvc", first.version, first.nfiles, first.size, REMOTE).read_text()
    assert f"dvc remote add -d vidcustom {REMOTE}" in text and f"endpointurl {s3.endpoint}" in text


def test_cli_data_pull_with_endpoint_from_config(s3, dataset, tmp_path, monkeypatch, capsys):
    from components.dataset_versioning import push
    from pipelines.cli import main

    version = push(dataset, REMOTE).version
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")  # the endpoint now comes from --set only
    monkeypatch.setenv("VIDCUSTOM_HOME", str(tmp_path / "state"))
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "pull", version, str(tmp_path / "out"), "--set", f"validate.remote={REMOTE}",
              "--set", f"validate.remote_endpoint_url={s3.endpoint}"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    assert str(tmp_path / "out") in capsys.readouterr().out
    assert_same_tree(dataset, tmp_path / "out")


def test_validate_module_pushes_to_s3(s3, dataset, tmp_path):
    """`python -m components.validate` end to end: validated, pushed to the bucket, the version printed."""
    from components.dataset import read_manifest, write_manifest
    from components.dataset_versioning import content_hash

    # make_dataset's rows are all "animal" and share subjects across splits; the suite wants every
    # category and no subject in both train and val.
    dataset = Path(shutil.copytree(dataset, tmp_path / "dataset"))
    df = read_manifest(dataset)
    df["category"] = ["animal", "active_object", "static_object"] * (len(df) // 3) + ["animal"] * (len(df) % 3)
    df.loc[df["split"] == "val", "subject_id"] = "val-" + df.loc[df["split"] == "val", "sample_id"]
    write_manifest(dataset, df)
    env = {**os.environ, "VIDCUSTOM_HOME": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    del env["AWS_ENDPOINT_URL_S3"]  # given through the config instead
    proc = subprocess.run([sys.executable, "-m", "components.validate", str(dataset), str(tmp_path / "report"),
                           "--preset", "ci", "--set", "validate.remote=s3://bucket/validated",
                           "--set", f"validate.remote_endpoint_url={s3.endpoint}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = proc.stdout.strip().splitlines()[-1]
    assert version == content_hash(dataset)[0]
    assert f"validated/files/md5/{version[:2]}/{version[2:]}" in s3.keys("validated/")
    assert json.loads((tmp_path / "report" / "validation.json").read_text())["dvc_hash"] == version


def test_missing_version_bucket_and_credentials_are_named(s3, dataset, tmp_path, monkeypatch):
    from components.dataset_versioning import RemoteError, pull, push

    push(dataset, REMOTE)
    with pytest.raises(RemoteError, match="0{32}.dir is not in DVC remote 's3://bucket/dvc'"):
        pull("0" * 32, REMOTE, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(RemoteError, match="bucket 'nobucket' does not exist at http://127.0.0.1"):
        pull("0" * 32, "s3://nobucket/dvc", tmp_path / "out")
    with pytest.raises(RemoteError, match="bucket 'nobucket' does not exist"):
        push(dataset, "s3://nobucket/dvc")
    assert s3.client.list_buckets()["Buckets"][0]["Name"] == "bucket"  # nothing was created on the way

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RemoteError, match="no AWS credentials found; set \\$AWS_ACCESS_KEY_ID"):
        push(dataset, REMOTE)


def _client_configs(monkeypatch) -> list[dict]:
    """The botocore config of every s3fs client built from here on (timeouts and retries as configured)."""
    import copy

    import s3fs

    built, init = [], s3fs.S3FileSystem.__init__

    def spy(self, *args, **kwargs):
        built.append(copy.deepcopy(kwargs.get("config_kwargs", {})))  # botocore rewrites it in place
        init(self, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "__init__", spy)
    return built


@pytest.mark.timeout(300)  # a hang guard only: botocore's defaults would retry for many minutes
def test_unreachable_endpoint_fails_fast_naming_what_to_check(s3, dataset, tmp_path, monkeypatch):
    from components.dataset_versioning import S3_PROBE_ATTEMPTS, S3_PROBE_TIMEOUT_S, RemoteError, pull, push

    dead = f"http://127.0.0.1:{closed_port()}"
    built = _client_configs(monkeypatch)
    with pytest.raises(RemoteError) as info:
        push(dataset, REMOTE, endpoint_url=dead)
    # it failed at the fail-fast probe: short timeouts, few attempts
    assert built and built[-1]["retries"]["max_attempts"] == S3_PROBE_ATTEMPTS
    assert built[-1]["connect_timeout"] == built[-1]["read_timeout"] == S3_PROBE_TIMEOUT_S
    message = str(info.value)
    assert REMOTE in message and dead in message and "cannot be reached" in message
    assert "AWS_ACCESS_KEY_ID" in message and "remote_endpoint_url" in message

    built.clear()
    with pytest.raises(RemoteError, match="cannot be reached"):
        pull("0" * 32, REMOTE, tmp_path / "out", endpoint_url=dead)
    assert built and built[-1]["retries"]["max_attempts"] == S3_PROBE_ATTEMPTS


def test_model_location_is_fetched_once(s3, tmp_path, monkeypatch):
    from components import storage

    tiny = {"config.json": b'{"hidden": 8}', "unet/weights.bin": os.urandom(3000), "README": b"tiny"}
    for name, body in tiny.items():
        s3.client.put_object(Bucket=s3.bucket, Key=f"models/tiny/{name}", Body=body)
    s3.client.put_object(Bucket=s3.bucket, Key="models/tiny-v2/config.json", Body=b"{}")  # a sibling prefix
    cache = tmp_path / "cache"

    got = storage.local_path("s3://bucket/models/tiny", cache)
    assert got == cache / "bucket" / "models" / "tiny"
    assert {n: (got / n).read_bytes() for n in files(got)} == tiny  # exactly the prefix, no .part left
    inodes = {n: (got / n).stat().st_ino for n in tiny}

    downloads = []
    make_client = storage._s3_client

    def counting_client():
        client, endpoint = make_client()
        real = client.download_file
        client.download_file = lambda *a, **k: (downloads.append(a[1]), real(*a, **k))[1]
        return client, endpoint

    monkeypatch.setattr(storage, "_s3_client", counting_client)
    assert storage.local_path("s3://bucket/models/tiny/", cache) == got  # trailing slash: same folder
    assert downloads == [] and {n: (got / n).stat().st_ino for n in tiny} == inodes

    # One object changed, one deleted: only the changed one travels, the deleted one leaves the mirror.
    s3.client.put_object(Bucket=s3.bucket, Key="models/tiny/config.json", Body=b'{"hidden": 16}')
    s3.client.delete_object(Bucket=s3.bucket, Key="models/tiny/README")
    storage.local_path("s3://bucket/models/tiny", cache)
    assert downloads == ["models/tiny/config.json"] and (got / "config.json").read_bytes() == b'{"hidden": 16}'
    assert files(got) == ["config.json", "unet/weights.bin"]

    # A single object is fetched as a file; the default cache is $VIDCUSTOM_HOME/models.
    monkeypatch.setenv("VIDCUSTOM_HOME", str(tmp_path / "home"))
    weights = storage.local_path("s3://bucket/models/tiny/unet/weights.bin")
    assert weights == tmp_path / "home" / "models" / "bucket" / "models" / "tiny" / "unet" / "weights.bin"
    assert weights.read_bytes() == tiny["unet/weights.bin"]


@pytest.mark.timeout(300)  # a hang guard only: botocore's defaults would retry for many minutes
def test_model_location_errors(s3, tmp_path, monkeypatch):
    from components.storage import S3_ATTEMPTS, S3_CONNECT_TIMEOUT_S, StorageError, _s3_client, local_path

    with pytest.raises(StorageError, match="no objects under that prefix"):
        local_path("s3://bucket/models/absent", tmp_path)
    with pytest.raises(StorageError, match="bucket 'nobucket' does not exist"):
        local_path("s3://nobucket/models/tiny", tmp_path)
    dead = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dead)
    with pytest.raises(StorageError, match=f"listing at {dead} failed"):
        local_path("s3://bucket/models/tiny", tmp_path)
    config = _s3_client()[0].meta.config  # the client local_path lists with: short timeout, few attempts
    # botocore stores max_attempts as total_max_attempts = max_attempts + 1
    assert config.connect_timeout == S3_CONNECT_TIMEOUT_S and config.retries["total_max_attempts"] == S3_ATTEMPTS + 1
    assert not any(tmp_path.rglob("*.part"))

"""A real S3 endpoint on loopback for tests: moto's standalone server (HTTP, in a thread of this process).

    pytest_plugins = ["s3_server"]  # in the test module: registers the fixtures below

    def test_x(s3):
        push(dataset, f"s3://{s3.bucket}/dvc")   # AWS_ENDPOINT_URL_S3 etc. already point at the server

`moto_endpoint` (session): the server, started once on a free port of 127.0.0.1, stopped at the end.
`s3` (per test): wipes the server's state, sets the AWS variables with monkeypatch (fake credentials,
region, AWS_ENDPOINT_URL_S3; ~/.aws and the instance-metadata lookup are kept out), creates the bucket
`S3.bucket`, and hands back the endpoint and a boto3 client for arranging and inspecting objects.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

BUCKET = "bucket"


@dataclass
class S3:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    client: Any  # boto3 S3 client on the endpoint

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture(scope="session")
def moto_endpoint():
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch, tmp_path) -> S3:
    import boto3

    # Fresh server state for every test.
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"), timeout=10)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    client = boto3.session.Session().client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return S3(moto_endpoint, BUCKET, client)

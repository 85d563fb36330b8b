"""The KServe InferenceService (k8s/kserve/) checked strictly against KServe's schema, and kept in step with
the serving Deployment of the base.

No cluster and no CRD download: the schema is the one the KServe SDK is generated from. Each generated model
class (`kserve.V1beta1InferenceService`, ..., and the Kubernetes types it nests, `kubernetes.client.V1Container`
and so on) names its fields in `attribute_map` (python name -> JSON key) and their types in `openapi_types`
('str', 'list[V1EnvVar]', 'dict(str, str)', 'V1ResourceRequirements', ...); its setters refuse None for a
required field. `schema_errors` walks a manifest along those classes: an unknown key, a wrong type or a missing
required field is an error naming its path, e.g. `spec.predictor.containers[0].imagez: unknown field`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from pathlib import Path

import kserve
import kubernetes.client
import pytest

from test_k8s import command_line, flag_value, load_docs  # one reading of the manifests

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
KSERVE_DIR = K8S / "kserve"
ISVC_FILE = KSERVE_DIR / "inferenceservice.yaml"
SERVING_FILE = K8S / "base" / "serving.yaml"

SERVING_MODEL_URI = "models:/vidcustom-onnx@champion"
PREDICTOR_CONTAINER = "kserve-container"  # the name KServe gives (and looks for in) the model-server container
LIVE, READY, METRICS = "/v2/health/live", "/v2/health/ready", "/metrics"


# --------------------------------------------------------------------------- the schema validator

# The Kubernetes Python client flattens resource.Quantity to 'str', but a quantity is an int-or-string in
# YAML (`nvidia.com/gpu: 1`, `cpu: 2`); KServe names the type for what it is.
_QUANTITY_FIELDS = {("V1ResourceRequirements", "limits"): "dict(str, Quantity)",
                    ("V1ResourceRequirements", "requests"): "dict(str, Quantity)",
                    ("V1EmptyDirVolumeSource", "size_limit"): "Quantity"}
_QUANTITY_TYPES = {"Quantity", "ResourceQuantity", "V1beta1MetricQuantity"}
# KServe's SDK names Kubernetes types by Go package (K8sIoApiAppsV1DeploymentStrategy); the Kubernetes client
# has them as V1DeploymentStrategy.
_GO_NAMED = re.compile(r"K8sIoApi[A-Z][a-z]+(V\d+(?:alpha\d+|beta\d+)?[A-Z]\w*)")


@functools.cache
def model_class(type_name: str):
    """The generated class for an OpenAPI type name, or None where neither SDK has it."""
    match = _GO_NAMED.fullmatch(type_name)
    for name in (type_name, match.group(1) if match else None):
        for module in (kserve, kubernetes.client):
            cls = getattr(module, name, None) if name else None
            if isinstance(cls, type) and hasattr(cls, "openapi_types"):
                return cls
    return None


@functools.cache
def _configuration(cls):
    package = cls.__module__.split(".")[0]
    return kserve.Configuration() if package == "kserve" else kubernetes.client.Configuration()


def _blank(cls):
    """An instance without running __init__ (which would refuse a missing required field at once)."""
    obj = cls.__new__(cls)
    obj.local_vars_configuration = _configuration(cls)
    return obj


@functools.cache
def required_fields(cls) -> frozenset[str]:
    """Python names of the fields whose generated setter refuses None."""
    required = set()
    for attr in cls.openapi_types:
        try:
            getattr(cls, attr).fset(_blank(cls), None)
        except ValueError:
            required.add(attr)
    return frozenset(required)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_error(value, expected: str) -> str:
    return f"expected {expected}, got {type(value).__name__} {value!r}"


def schema_errors(value, type_name: str, path: str = "") -> list[str]:
    """Every violation of the OpenAPI type `type_name` in `value`, as 'path: message'."""
    where = path or "<root>"
    if type_name == "object":  # free-form (e.g. int-or-string ports)
        return []
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{where}: {_type_error(value, 'a list')}"]
        return [e for i, item in enumerate(value) for e in schema_errors(item, match.group(1), f"{path}[{i}]")]
    if match := re.fullmatch(r"dict\((\w+), (.+)\)", type_name):
        if not isinstance(value, dict):
            return [f"{where}: {_type_error(value, 'a mapping')}"]
        errors = [f"{where}: key {k!r} is not a string" for k in value if not isinstance(k, str)]
        return errors + [e for k, v in value.items() for e in schema_errors(v, match.group(2), f"{path}.{k}")]
    if type_name == "str":
        return [] if isinstance(value, str) else [f"{where}: {_type_error(value, 'a string')}"]
    if type_name == "int":
        return [] if _is_int(value) else [f"{where}: {_type_error(value, 'an integer')}"]
    if type_name == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: {_type_error(value, 'a number')}"]
    if type_name == "bool":
        return [] if isinstance(value, bool) else [f"{where}: {_type_error(value, 'true or false')}"]
    if type_name in {"datetime", "date"}:
        return [] if isinstance(value, str) else [f"{where}: {_type_error(value, 'an RFC 3339 string')}"]
    if type_name in _QUANTITY_TYPES:
        ok = isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))
        return [] if ok else [f"{where}: {_type_error(value, 'a quantity (string or number)')}"]
    cls = model_class(type_name)
    if cls is None:
        return [f"{where}: no schema for type {type_name} in the kserve/kubernetes SDKs"]
    if not isinstance(value, dict):
        return [f"{where}: {_type_error(value, f'a {type_name} mapping')}"]
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    errors = []
    for key, item in value.items():
        sub = f"{path}.{key}" if path else str(key)
        attr = by_key.get(key)
        if attr is None:
            hint = difflib.get_close_matches(str(key), list(by_key), n=1)
            errors.append(f"{sub}: unknown field of {type_name}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            continue
        if item is None:
            continue  # YAML `key:` with no value: the same as absent (required fields are checked below)
        field_type = _QUANTITY_FIELDS.get((cls.__name__, attr), cls.openapi_types[attr])
        field_errors = schema_errors(item, field_type, sub)
        if not field_errors and not isinstance(item, (dict, list)):
            try:  # the setter's own checks (enums, patterns) where the SDK has any
                getattr(cls, attr).fset(_blank(cls), item)
            except ValueError as exc:
                field_errors = [f"{sub}: {exc}"]
        errors += field_errors
    for attr in sorted(required_fields(cls)):
        if value.get(cls.attribute_map[attr]) is None:
            errors.append(f"{path + '.' if path else ''}{cls.attribute_map[attr]}: required field of {type_name} missing")
    return errors


_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_FRAMEWORKS = ("model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml", "lightgbm",
               "paddle", "huggingface")


def inferenceservice_errors(doc) -> list[str]:
    """Schema errors plus what KServe requires beyond the types (its webhook's rules for a custom predictor)."""
    errors = schema_errors(doc, "V1beta1InferenceService")
    if not isinstance(doc, dict):
        return errors
    if doc.get("apiVersion") != "serving.kserve.io/v1beta1":
        errors.append(f"apiVersion: expected serving.kserve.io/v1beta1, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != "InferenceService":
        errors.append(f"kind: expected InferenceService, got {doc.get('kind')!r}")
    name = doc["metadata"].get("name") if isinstance(doc.get("metadata"), dict) else None
    if not isinstance(name, str) or not _DNS_1035.fullmatch(name) or len(name) > 63 - len("-predictor"):
        # KServe's name format; the predictor's Service, <name>-predictor, must stay a DNS label.
        errors.append(f"metadata.name: {name!r} is not a DNS-1035 label short enough for <name>-predictor")
    if "status" in doc:
        errors.append("status: written by the controller, not part of a manifest")
    if doc.get("spec") is None:
        errors.append("spec: required field missing")
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    predictor = spec.get("predictor")
    if not isinstance(predictor, dict):
        return errors  # the schema walk reported it
    frameworks = [f for f in _FRAMEWORKS if predictor.get(f) is not None]
    containers = predictor.get("containers")
    if frameworks and containers:
        errors.append(f"spec.predictor: a custom container and {frameworks} at once")
    if not frameworks and not containers:
        errors.append("spec.predictor: neither a model format nor containers")
    if isinstance(containers, list) and containers and isinstance(containers[0], dict):
        if containers[0].get("name") != PREDICTOR_CONTAINER:
            errors.append(f"spec.predictor.containers[0].name: KServe expects {PREDICTOR_CONTAINER!r}")
    return errors


# --------------------------------------------------------------------------- the manifests


@pytest.fixture(scope="module")
def isvc() -> dict:
    (doc,) = load_docs(ISVC_FILE)
    return doc


@pytest.fixture(scope="module")
def deployment() -> dict:
    (doc,) = [d for d in load_docs(SERVING_FILE) if d["kind"] == "Deployment"]
    return doc


def _predictor_container(isvc: dict) -> dict:
    (c,) = isvc["spec"]["predictor"]["containers"]
    return c


def _server_container(deployment: dict) -> dict:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


# --------------------------------------------------------------------------- the schema


def test_inferenceservice_matches_the_kserve_schema(isvc):
    assert inferenceservice_errors(isvc) == []


def test_serving_deployment_and_service_match_the_kubernetes_schema():
    """The same walk over the base's serving manifests (built-in types): the validator passes known-good input."""
    for doc in load_docs(SERVING_FILE):
        assert schema_errors(doc, f"V1{doc['kind']}") == [], doc["kind"]


def test_the_schema_reaches_every_type_the_manifest_uses(isvc):
    """No type the walk meets is unresolvable (it would be an error, not a silent pass)."""
    assert model_class("V1beta1PredictorSpec") is kserve.V1beta1PredictorSpec
    assert model_class("V1Container") is kubernetes.client.V1Container
    assert model_class("K8sIoApiAppsV1DeploymentStrategy") is kubernetes.client.V1DeploymentStrategy
    assert "name" in required_fields(kubernetes.client.V1Container)
    assert not required_fields(kserve.V1beta1PredictorSpec)


def _set(doc: dict, path: str, value) -> dict:
    """A copy of doc with the value at a dotted path (`[i]` for list items) set; `...=DELETE` removes it."""
    out = copy.deepcopy(doc)
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    node = out
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    last = parts[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


class _Delete:
    def __repr__(self) -> str:
        return "<deleted>"


DELETE = _Delete()
C0 = "spec.predictor.containers[0]"

NEGATIVE_CASES = [
    # (what is changed, value, the path the error must name, words the error must hold)
    ("spec.predictor.containerz", [{"name": "x", "image": "y"}], "spec.predictor.containerz", "unknown field"),
    ("spec.predictor.minReplicas", "two", "spec.predictor.minReplicas", "expected an integer"),
    ("spec.predictor.minReplicas", True, "spec.predictor.minReplicas", "expected an integer"),
    ("spec.predictor.min_replicas", 1, "spec.predictor.min_replicas", "unknown field"),  # python name, not JSON
    (f"{C0}.imagePullPolicyy", "Always", f"{C0}.imagePullPolicyy", "unknown field"),
    (f"{C0}.livenessProbe.httpGet.paht", "/x", f"{C0}.livenessProbe.httpGet.paht", "unknown field"),
    (f"{C0}.command", "vidcustom serve", f"{C0}.command", "expected a list"),
    (f"{C0}.ports[0].containerPort", "8080", f"{C0}.ports[0].containerPort", "expected an integer"),
    (f"{C0}.resources.limits.cpu", ["8"], f"{C0}.resources.limits.cpu", "quantity"),
    (f"{C0}.securityContext.allowPrivilegeEscalation", "no", f"{C0}.securityContext.allowPrivilegeEscalation",
     "true or false"),
    (f"{C0}.name", DELETE, f"{C0}.name", "required"),
    ("spec.predictor.containers", {"name": "x"}, "spec.predictor.containers", "expected a list"),
    ("metadata.labels", {"tier": 1}, "metadata.labels.tier", "expected a string"),
    ("metadata.name", "Vid_Custom", "metadata.name", "DNS-1035"),
    ("spec.predictor", DELETE, "spec.predictor", "required"),
    ("spec", DELETE, "spec", "required"),
    ("apiVersion", "serving.kserve.io/v1alpha1", "apiVersion", "v1beta1"),
    ("status", {"url": "http://x"}, "status", "controller"),
    (f"{C0}.name", "server", f"{C0}.name", PREDICTOR_CONTAINER),
    ("spec.predictor.sklearn", {"storageUri": "s3://x"}, "spec.predictor", "at once"),
    ("spec.predictor.timeout", 6.5, "spec.predictor.timeout", "expected an integer"),
]


@pytest.mark.parametrize("field, value, path, words", NEGATIVE_CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in NEGATIVE_CASES])
def test_the_validator_rejects_a_broken_manifest(isvc, field, value, path, words):
    errors = inferenceservice_errors(_set(isvc, field, value))
    assert any(e.startswith(f"{path}:") and words in e for e in errors), errors


def test_the_validator_accepts_quantities_as_numbers_and_suggests_names(isvc):
    doc = _set(isvc, f"{C0}.resources.limits", {"cpu": 8, "memory": "16Gi", "nvidia.com/gpu": 1})
    assert inferenceservice_errors(doc) == []
    (error,) = inferenceservice_errors(_set(isvc, "spec.predictor.maxReplica", 1))
    assert "did you mean 'maxReplicas'" in error


# --------------------------------------------------------------------------- one server, two manifests


def test_same_server_as_the_base_deployment(isvc, deployment):
    """One command, image, configuration and sandbox: the InferenceService is the Deployment's server under KServe."""
    c, d = _predictor_container(isvc), _server_container(deployment)
    pod, predictor = deployment["spec"]["template"]["spec"], isvc["spec"]["predictor"]
    assert command_line(c) == command_line(d)
    assert c["image"] == d["image"]
    assert flag_value(command_line(c), "--model") == SERVING_MODEL_URI
    for key in ("envFrom", "env", "resources", "securityContext", "volumeMounts"):
        assert c.get(key) == d.get(key), key
    for key in ("securityContext", "automountServiceAccountToken", "terminationGracePeriodSeconds", "volumes"):
        assert predictor.get(key) == pod.get(key), key
    assert predictor["annotations"] == deployment["spec"]["template"]["metadata"]["annotations"]


def test_serving_command_is_the_vidcustom_server(deployment):
    argv = command_line(_server_container(deployment))
    assert argv[:2] == ["vidcustom", "serve"]
    assert flag_value(argv, "--model") == SERVING_MODEL_URI
    # The open-inference-protocol name of the model, which the /v2/models/<name>/... paths use.
    assert flag_value(argv, "--name") == "vidcustom"


def test_served_model_is_the_one_the_export_step_registers():
    from components.config import ExportConfig

    name = re.fullmatch(r"models:/([^/@]+)@champion", SERVING_MODEL_URI).group(1)
    assert name == ExportConfig().model_name


@pytest.mark.parametrize("which", ["inferenceservice", "deployment"])
def test_ports_probes_and_metrics_point_at_the_server(which, isvc, deployment):
    if which == "inferenceservice":
        c, annotations = _predictor_container(isvc), isvc["spec"]["predictor"]["annotations"]
    else:
        c, annotations = _server_container(deployment), deployment["spec"]["template"]["metadata"]["annotations"]
    port = int(flag_value(command_line(c), "--http-port"))
    ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
    assert c["ports"][0]["containerPort"] == port, "KServe's Service targets the first container port"
    expected = {"livenessProbe": LIVE, "readinessProbe": READY, "startupProbe": READY}
    for probe, path in expected.items():
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports.get(get["port"], get["port"]) == port, f"{probe} probes port {get['port']}"
    # The startup probe must outlast the model download and the ONNX session build (minutes).
    startup = c["startupProbe"]
    assert startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3) >= 300
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port and annotations["prometheus.io/path"] == METRICS


@pytest.mark.parametrize("which", ["inferenceservice", "deployment"])
def test_shutdown_outlasts_the_drain(which, isvc, deployment):
    pod = isvc["spec"]["predictor"] if which == "inferenceservice" else deployment["spec"]["template"]["spec"]
    c = _predictor_container(isvc) if which == "inferenceservice" else _server_container(deployment)
    grace = int(flag_value(command_line(c), "--grace-seconds"))
    assert pod["terminationGracePeriodSeconds"] > grace


def test_inferenceservice_serving_settings(isvc, deployment):
    predictor = isvc["spec"]["predictor"]
    argv = command_line(_predictor_container(isvc))
    # A Deployment (Standard mode), not a Knative revision that scales away pods whose jobs outlive the request.
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    # Jobs are kept in the server's memory: a single replica, as in the base.
    assert predictor["minReplicas"] == predictor["maxReplicas"] == deployment["spec"]["replicas"] == 1
    # The route waits longer than the server's own limit, so the client gets the server's answer.
    assert predictor["timeout"] > int(flag_value(argv, "--request-timeout"))
    # The server queues and limits concurrency itself; a proxy limit would stall polls behind a sampling.
    assert predictor.get("containerConcurrency", 0) == 0


def test_kserve_kustomization_stays_apart_from_base_and_overlays():
    """The InferenceService CRD may be absent: it is applied on its own, in the base's namespace."""
    k = load_docs(KSERVE_DIR / "kustomization.yaml")[0]
    assert k["resources"] == [ISVC_FILE.name]
    assert k["namespace"] == load_docs(K8S / "base" / "kustomization.yaml")[0]["namespace"]
    for path in [K8S / "base" / "kustomization.yaml", *(K8S / "overlays").glob("*/kustomization.yaml")]:
        for entry in load_docs(path)[0].get("resources", []):
            assert "kserve" not in Path(entry).parts, f"{path} includes {entry}"

"""Static checks of the Kubernetes manifests under k8s/: no cluster, no kubectl.

What `kubectl apply -k` would only reveal in a cluster is caught here: files that do
not parse, kustomizations pointing at missing files, patches that hit nothing,
selectors that match no pods, containers without resources, and references to
ConfigMaps/Secrets/PVCs/ServiceAccounts (and their keys) that nobody defines.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
JOBS = sorted((K8S / "jobs").glob("*.yaml"))
YAML_FILES = sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"})
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))

SERVING_MODEL_URI = "models:/vidcustom-onnx@champion"
GPU = "nvidia.com/gpu"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


# --------------------------------------------------------------------------- helpers


def load_docs(path: Path) -> list[dict]:
    """All non-empty YAML documents of a file."""
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def kustomization(directory: Path) -> dict:
    return load_docs(directory / "kustomization.yaml")[0]


def resource_docs(directory: Path) -> list[dict]:
    """The resources a kustomization lists, following nested kustomizations (not generated ones)."""
    docs: list[dict] = []
    for entry in kustomization(directory).get("resources", []):
        path = directory / entry
        docs += resource_docs(path) if path.is_dir() else load_docs(path)
    return docs


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def generated(directory: Path) -> dict[tuple[str, str], set[str]]:
    """(kind, name) -> keys of the Secrets/ConfigMaps a kustomization (and its bases) generates."""
    out: dict[tuple[str, str], set[str]] = {}
    for entry in kustomization(directory).get("resources", []):
        if (directory / entry).is_dir():
            out.update(generated(directory / entry))
    for field, kind in (("secretGenerator", "Secret"), ("configMapGenerator", "ConfigMap")):
        for gen in kustomization(directory).get(field, []):
            keys: set[str] = set()
            for env in gen.get("envs", []):
                keys |= set(read_env_file(directory / env))
            for literal in gen.get("literals", []):
                keys.add(literal.split("=", 1)[0])
            for file in gen.get("files", []):
                keys.add(file.split("=", 1)[0] if "=" in file else Path(file).name)
            if gen.get("behavior") == "merge":
                keys |= out.get((kind, gen["name"]), set())
            out[(kind, gen["name"])] = keys
    return out


def pod_specs(doc: dict) -> list[dict]:
    """Pod specs inside a workload (Deployment & co., CronJob, PyTorchJob, InferenceService); [] for other kinds."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "InferenceService":  # each component is a pod spec (plus KServe's own fields)
        return [spec[part] for part in ("predictor", "transformer", "explainer") if part in spec]
    if kind in WORKLOAD_KINDS:
        return [spec.get("template", {}).get("spec", {})]
    if kind == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if kind == "PyTorchJob":
        return [r["template"]["spec"] for r in spec["pytorchReplicaSpecs"].values()]
    return []


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod.get("containers", [])


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def command_line(container: dict) -> list[str]:
    return [str(a) for a in container.get("command", []) + container.get("args", [])]


def flag_value(argv: list[str], flag: str) -> str:
    for i, arg in enumerate(argv):
        if arg == flag:
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {argv}")


_UNITS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float:
    """A Kubernetes resource quantity ('500m', '4Gi', 2) as a number."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert match and match.group(2) in {"", *_UNITS}, f"not a resource quantity: {value!r}"
    return float(match.group(1)) * _UNITS.get(match.group(2), 1)


def deep_merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def overlay_patch_docs(overlay: Path) -> list[dict]:
    """Strategic-merge patch documents of an overlay (patches with a `path`, and legacy patchesStrategicMerge)."""
    k = kustomization(overlay)
    paths = [p["path"] for p in k.get("patches", []) if "path" in p] + k.get("patchesStrategicMerge", [])
    return [doc for p in paths for doc in load_docs(overlay / p)]


def effective_resources_of(docs: list[dict]) -> dict[tuple[str, str, str], dict]:
    """(kind, workload, container) -> resources of every container in docs."""
    return {(d["kind"], d["metadata"]["name"], c["name"]): c.get("resources", {})
            for d in docs for pod in pod_specs(d) for c in containers(pod)}


def effective_resources(directory: Path) -> dict[tuple[str, str, str], dict]:
    """Container resources after a kustomization's strategic-merge patches (resource maps merge key by key)."""
    out = effective_resources_of(resource_docs(directory))
    for patch in overlay_patch_docs(directory):
        for key, resources in effective_resources_of([patch]).items():
            out[key] = deep_merge(out.get(key, {}), resources)
    return out


BASE_DOCS = resource_docs(BASE)
BASE_GENERATED = generated(BASE)
JOB_DOCS = [doc for path in JOBS for doc in load_docs(path)]
KSERVE_DOCS = resource_docs(K8S / "kserve")
CONFIG = find(BASE_DOCS, "ConfigMap", "vidcustom-env")["data"]


# --------------------------------------------------------------------------- files and kustomizations


def test_layout_present():
    assert (BASE / "kustomization.yaml").is_file()
    assert {p.name for p in OVERLAYS} >= {"local", "gpu"}
    assert (K8S / "jobs" / "train-pytorchjob.yaml").is_file()
    assert (K8S / "Dockerfile").is_file() and (K8S / "README.md").is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(K8S)))
def test_yaml_parses(path):
    docs = load_docs(path)
    assert docs, f"{path} holds no document"
    for doc in docs:
        assert isinstance(doc, (dict, list)), f"{path}: a document is a {type(doc).__name__}"
        if isinstance(doc, dict) and path.name != "kustomization.yaml" and "kind" in doc:
            assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), \
                f"{path}: a {doc['kind']} without apiVersion or metadata.name"


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=lambda p: str(p.parent.relative_to(K8S)))
def test_kustomization_files_exist(path):
    directory, k = path.parent, load_docs(path)[0]
    assert k.get("kind") == "Kustomization"
    for entry in k.get("resources", []) + k.get("components", []):
        target = directory / entry
        assert target.is_file() or (target / "kustomization.yaml").is_file(), f"{path}: missing resource {entry}"
    for patch in k.get("patches", []):
        assert "path" in patch or "patch" in patch, f"{path}: patch without path or inline patch"
        if "path" in patch:
            assert (directory / patch["path"]).is_file(), f"{path}: missing patch {patch['path']}"
    for entry in k.get("patchesStrategicMerge", []):
        assert (directory / entry).is_file(), f"{path}: missing patch {entry}"
    for gen in k.get("secretGenerator", []) + k.get("configMapGenerator", []):
        for env in gen.get("envs", []):
            assert (directory / env).is_file(), f"{path}: generator {gen['name']} misses {env}"
        for file in gen.get("files", []):
            assert (directory / file.split("=", 1)[-1]).is_file(), f"{path}: generator {gen['name']} misses {file}"


def test_every_base_yaml_is_listed():
    """A manifest dropped into base/ but not listed in resources would silently never deploy."""
    listed = {BASE / entry for entry in kustomization(BASE)["resources"]}
    for path in BASE.glob("*.yaml"):
        assert path.name == "kustomization.yaml" or path in listed, f"{path.name} is not in base resources"


def test_training_job_stays_out_of_kustomizations():
    """The PyTorchJob CRD may be absent: no kustomization may pull the job template in."""
    for path in KUSTOMIZATIONS:
        for entry in kustomization(path.parent).get("resources", []):
            assert "jobs" not in Path(entry).parts, f"{path} includes {entry}"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_patch_targets_exist_in_base(overlay):
    base_docs = resource_docs(overlay)
    defined = {(d["kind"], d["metadata"]["name"]) for d in base_docs}
    for patch in kustomization(overlay).get("patches", []):
        target = patch.get("target")
        if target:
            matches = [d for d in base_docs
                       if d["kind"] == target.get("kind", d["kind"])
                       and d["metadata"]["name"] == target.get("name", d["metadata"]["name"])]
            assert matches, f"{overlay.name}: patch target {target} matches nothing in the base"
    for doc in overlay_patch_docs(overlay):
        key = (doc["kind"], doc["metadata"]["name"])
        assert key in defined, f"{overlay.name}: patch for {key} has no target in the base"
        # A strategic-merge patch naming an unknown container would add a new, incomplete one.
        base_doc = find(base_docs, *key)
        base_containers = {c["name"] for pod in pod_specs(base_doc) for c in containers(pod)}
        for pod in pod_specs(doc):
            for c in containers(pod):
                assert c["name"] in base_containers, f"{overlay.name}: {key} has no container {c['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlay_images_exist_in_base(overlay):
    images = {c["image"].rsplit(":", 1)[0] for d in resource_docs(overlay)
              for pod in pod_specs(d) for c in containers(pod)}
    for image in kustomization(overlay).get("images", []):
        assert image["name"] in images, f"{overlay.name}: image override {image['name']} matches no container"


# --------------------------------------------------------------------------- workloads


def test_workload_selectors_match_pod_labels():
    workloads = [d for d in BASE_DOCS if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}]
    assert workloads
    for doc in workloads:
        selector = doc["spec"]["selector"]["matchLabels"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert selector and selector.items() <= labels.items(), \
            f"{doc['kind']}/{doc['metadata']['name']}: selector {selector} does not match pod labels {labels}"


def test_services_select_a_workload_and_its_ports():
    pods = [(d["spec"]["template"]["metadata"].get("labels", {}), d["spec"]["template"]["spec"])
            for d in BASE_DOCS if d["kind"] in WORKLOAD_KINDS]
    for svc in (d for d in BASE_DOCS if d["kind"] == "Service"):
        selector = svc["spec"].get("selector")
        assert selector, f"Service/{svc['metadata']['name']} has no selector"
        selected = [spec for labels, spec in pods if selector.items() <= labels.items()]
        assert selected, f"Service/{svc['metadata']['name']} selects no workload: {selector}"
        port_names = {p.get("name") for spec in selected for c in spec["containers"] for p in c.get("ports", [])}
        port_numbers = {p["containerPort"] for spec in selected for c in spec["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in (port_names if isinstance(target, str) else port_numbers), \
                f"Service/{svc['metadata']['name']}: targetPort {target} is not a container port"


@pytest.mark.parametrize("source", ["base", "jobs", "kserve"])
def test_every_container_has_requests_and_limits(source):
    docs = {"base": BASE_DOCS, "jobs": JOB_DOCS, "kserve": KSERVE_DOCS}[source]
    checked = 0
    for doc in docs:
        for pod in pod_specs(doc):
            for c in containers(pod):
                res, where = c.get("resources", {}), f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
                for kind in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        assert resource in res.get(kind, {}), f"{where}: no {resource} {kind}"
                checked += 1
    assert checked


@pytest.mark.parametrize("overlay", [BASE, *OVERLAYS], ids=lambda p: p.name)
def test_requests_fit_within_limits(overlay):
    """After the overlay's patches, no request exceeds its limit, and GPU requests equal limits."""
    for where, res in effective_resources(overlay).items():
        requests, limits = res.get("requests", {}), res.get("limits", {})
        for name in requests.keys() & limits.keys():
            assert quantity(requests[name]) <= quantity(limits[name]), f"{overlay.name} {where}: {name} request > limit"
        if GPU in requests or GPU in limits:
            assert quantity(requests.get(GPU, 0)) == quantity(limits.get(GPU, -1)), \
                f"{overlay.name} {where}: {GPU} requests must equal limits"


def test_job_container_requests_fit_within_limits():
    for where, res in effective_resources_of(JOB_DOCS).items():
        for name in res["requests"].keys() & res["limits"].keys():
            assert quantity(res["requests"][name]) <= quantity(res["limits"][name]), f"{where}: {name}"


def test_gpu_only_where_intended():
    local = effective_resources(K8S / "overlays" / "local")
    assert not [w for w, r in local.items() if GPU in r.get("limits", {})], "the local overlay must not ask for GPUs"
    gpu = effective_resources(K8S / "overlays" / "gpu")
    assert quantity(gpu[("Deployment", "vidcustom-serving", "server")]["limits"][GPU]) >= 1


# --------------------------------------------------------------------------- references


def _references(pod: dict):
    """(kind, name, key or None) for every ConfigMap/Secret/PVC/ServiceAccount a pod spec refers to."""
    if pod.get("serviceAccountName"):
        yield "ServiceAccount", pod["serviceAccountName"], None
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"], None
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None
    for c in containers(pod):
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                yield "ConfigMap", source["configMapRef"]["name"], None
            if "secretRef" in source:
                yield "Secret", source["secretRef"]["name"], None
        for env in c.get("env", []):
            ref = env.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                yield "ConfigMap", ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"]
            if "secretKeyRef" in ref:
                yield "Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]


def _defined() -> dict[tuple[str, str], set[str] | None]:
    """(kind, name) -> known keys (None where keys are not tracked) of what the base defines."""
    out: dict[tuple[str, str], set[str] | None] = dict(BASE_GENERATED)
    for d in BASE_DOCS:
        keys = None
        if d["kind"] in {"ConfigMap", "Secret"}:
            keys = set(d.get("data", {})) | set(d.get("stringData", {}))
        out[(d["kind"], d["metadata"]["name"])] = keys
    return out


@pytest.mark.parametrize("source", ["base", "jobs", "kserve", "overlays"])
def test_references_are_defined_in_base(source):
    docs = {"base": BASE_DOCS, "jobs": JOB_DOCS, "kserve": KSERVE_DOCS,
            "overlays": [d for o in OVERLAYS for d in overlay_patch_docs(o)]}[source]
    defined = _defined()
    for doc in docs:
        for pod in pod_specs(doc):
            for kind, name, key in _references(pod):
                where = f"{doc['kind']}/{doc['metadata']['name']}"
                assert (kind, name) in defined, f"{where} refers to {kind}/{name}, which the base does not define"
                keys = defined[(kind, name)]
                assert key is None or keys is None or key in keys, f"{where} refers to missing key {kind}/{name}:{key}"


def test_volume_mounts_name_a_volume():
    for doc in BASE_DOCS + JOB_DOCS + KSERVE_DOCS:
        for pod in pod_specs(doc):
            volumes = {v["name"] for v in pod.get("volumes", [])}
            volumes |= {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
            for c in containers(pod):
                for mount in c.get("volumeMounts", []):
                    assert mount["name"] in volumes, f"{doc['metadata']['name']}/{c['name']}: no volume {mount['name']}"


def test_rbac_binds_the_pipeline_runner():
    binding = find(BASE_DOCS, "RoleBinding", "vidcustom-pipeline-runner")
    find(BASE_DOCS, binding["roleRef"]["kind"], binding["roleRef"]["name"])
    for subject in binding["subjects"]:
        find(BASE_DOCS, subject["kind"], subject["name"])
    rules = find(BASE_DOCS, "Role", binding["roleRef"]["name"])["rules"]

    def allowed(group, resource, verb):
        return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)

    for verb in ("create", "get", "watch"):
        assert allowed("batch", "jobs", verb) and allowed("", "pods", verb), verb
    for resource in ("secrets", "configmaps"):
        assert allowed("", resource, "get") and not allowed("", resource, "create")


def test_shared_data_volume_is_rwx_in_base():
    pvc = find(BASE_DOCS, "PersistentVolumeClaim", "vidcustom-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_example_secrets_are_usable_placeholders():
    s3 = read_env_file(BASE / "secrets.example.env")
    assert len(s3["AWS_SECRET_ACCESS_KEY"]) >= 8, "MinIO refuses root passwords shorter than 8 characters"
    pg = read_env_file(BASE / "postgres.example.env")
    # Spliced into the postgresql:// URI of the MLflow server unescaped.
    assert re.fullmatch(r"[A-Za-z0-9._~-]+", pg["POSTGRES_PASSWORD"]) and re.fullmatch(r"[A-Za-z0-9._~-]+", pg["POSTGRES_USER"])


# --------------------------------------------------------------------------- MLflow, object store, serving


def _service_port(url: str) -> tuple[str, int]:
    """'http://mlflow.vidcustom.svc:5000' -> ('mlflow', 5000), checking the namespace part."""
    parsed = urlparse(url if "://" in url else f"//{url}")
    host = parsed.hostname.split(".")
    if len(host) > 1:
        assert host[1] == kustomization(BASE)["namespace"], f"{url} points outside the namespace"
    return host[0], parsed.port


def _assert_service(url: str):
    name, port = _service_port(url)
    svc = find(BASE_DOCS, "Service", name)
    assert port in {p["port"] for p in svc["spec"]["ports"]}, f"{url}: Service {name} has no port {port}"


def _mlflow_container() -> dict:
    return find(BASE_DOCS, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]


def test_mlflow_server_uses_postgres_and_s3():
    argv = command_line(_mlflow_container())
    assert argv[:2] == ["mlflow", "server"]
    backend = flag_value(argv, "--backend-store-uri")
    assert backend.startswith("postgresql://")
    _assert_service(backend.split("@", 1)[1].split("/", 1)[0])
    assert flag_value(argv, "--artifacts-destination").startswith("s3://")
    assert "--serve-artifacts" in argv
    assert flag_value(argv, "--host") == "0.0.0.0" and flag_value(argv, "--port") == "5000"
    # $(VAR) in args is expanded only from variables declared in the container's env.
    declared = {e["name"] for e in _mlflow_container().get("env", [])}
    for var in re.findall(r"\$\((\w+)\)", " ".join(argv)):
        assert var in declared, f"$({var}) in the MLflow command is not declared in env"


def test_mlflow_probes_and_host_allowlist():
    c = _mlflow_container()
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]["name"] == "vidcustom-env"
    # MLflow >= 3.5 rejects unknown Host headers; the in-cluster name clients use must be allowed.
    tracking_host = urlparse(CONFIG["MLFLOW_TRACKING_URI"]).netloc
    patterns = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    assert any(re.fullmatch(re.escape(p.strip()).replace(r"\*", ".*"), tracking_host) for p in patterns)


def test_config_points_at_in_cluster_services():
    assert CONFIG["MLFLOW_TRACKING_URI"] == "http://mlflow.vidcustom.svc:5000"
    _assert_service(CONFIG["MLFLOW_TRACKING_URI"])
    _assert_service(CONFIG["MLFLOW_S3_ENDPOINT_URL"])
    assert CONFIG["VIDCUSTOM_DVC_REMOTE"] == "s3://dvc/vidcustom"
    assert CONFIG["AWS_DEFAULT_REGION"]


def test_buckets_the_platform_uses_are_created():
    job = find(BASE_DOCS, "Job", "minio-create-buckets")
    script = " ".join(command_line(job["spec"]["template"]["spec"]["containers"][0]))
    words = set(re.findall(r"[A-Za-z0-9][A-Za-z0-9.-]*", script))
    artifacts = urlparse(flag_value(command_line(_mlflow_container()), "--artifacts-destination")).netloc
    for bucket in {"mlflow-artifacts", "dvc", "kfp", artifacts, urlparse(CONFIG["VIDCUSTOM_DVC_REMOTE"]).netloc}:
        assert bucket in words, f"bucket {bucket} is not created by the bucket Job"


def _serving() -> dict:
    return find(BASE_DOCS, "Deployment", "vidcustom-serving")


def test_serving_serves_the_onnx_champion():
    pod = _serving()["spec"]["template"]["spec"]
    c = pod["containers"][0]
    argv = command_line(c)
    assert argv[:2] == ["vidcustom", "serve"]
    assert flag_value(argv, "--model") == SERVING_MODEL_URI
    port = int(flag_value(argv, "--http-port"))
    # KServe's health endpoints: live while the process answers, ready once the model is loaded.
    paths = {"startupProbe": "/v2/health/ready", "readinessProbe": "/v2/health/ready", "livenessProbe": "/v2/health/live"}
    for probe, path in paths.items():
        assert c[probe]["httpGet"]["path"] == path, probe
    ports = {p.get("name"): p["containerPort"] for p in c["ports"]}
    assert port in ports.values()
    for probe in paths:
        target = c[probe]["httpGet"]["port"]
        assert ports.get(target, target) == port, f"{probe} probes port {target}"
    # The kubelet waits longer than the server drains before it kills the container.
    assert pod["terminationGracePeriodSeconds"] > int(flag_value(argv, "--grace-seconds"))
    sources = {next(iter(s.values()))["name"] for s in c["envFrom"]}
    assert {"vidcustom-env", "vidcustom-s3"} <= sources


def test_images_match_the_kfp_component_image():
    """Serving runs the image the KFP components are built for (components/cli.py)."""
    cli = ROOT / "components" / "cli.py"
    if not cli.is_file():
        pytest.skip("components/cli.py not present")
    match = re.search(r'BASE_IMAGE\s*=\s*"([^"]+)"', cli.read_text())
    assert match, "components/cli.py defines no BASE_IMAGE"
    assert _serving()["spec"]["template"]["spec"]["containers"][0]["image"] == match.group(1)


# --------------------------------------------------------------------------- training job template


def _pytorchjob() -> dict:
    jobs = [d for d in JOB_DOCS if d["kind"] == "PyTorchJob"]
    assert len(jobs) == 1
    return jobs[0]


def test_pytorchjob_shape():
    job = _pytorchjob()
    assert job["apiVersion"] == "kubeflow.org/v1"
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] >= 1
    # Master and Worker run the same pod; only the operator-injected ranks differ.
    assert replicas["Master"]["template"] == replicas["Worker"]["template"]


def test_pytorchjob_pod():
    job = _pytorchjob()
    pod = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["name"] == "pytorch", "the Training Operator looks for a container named `pytorch`"
    argv = command_line(c)
    assert argv[:3] == ["python", "-m", "components.train"]
    # One rank per GPU: the operator's nprocPerNode, the ranks the train step launches, the GPUs the pod gets.
    num_procs = [a.split("=", 1)[1] for a in argv if a.startswith("train.num_procs=")]
    assert num_procs, "the job must set train.num_procs to the GPUs per pod"
    assert int(job["spec"]["nprocPerNode"]) == int(num_procs[-1]) == int(c["resources"]["limits"][GPU])
    # Resumable training state must survive a pod restart: keep it on the shared volume.
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert env.get("VIDCUSTOM_HOME", "").startswith("/data/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == "vidcustom-data"
    assert {next(iter(s.values()))["name"] for s in c["envFrom"]} >= {"vidcustom-env", "vidcustom-s3"}
    assert c["image"].startswith("ghcr.io/vidcustom/vidcustom:")


# --------------------------------------------------------------------------- image


def test_dockerfile_builds_the_project_image():
    text = (K8S / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, re.M)
    assert stages[-1] == ("${PYTHON_IMAGE}", "vidcustom"), "the project image must be the default (last) stage"
    assert "mlflow-server" in {name for _, name in stages}
    assert re.search(r"pip install \"\.\$\{EXTRAS", text) and "TORCH_INDEX_URL" in text
    # The MLflow server image is the one the Deployment runs, at the MLflow version the project pins.
    pinned = re.search(r'"mlflow==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned and f"ARG MLFLOW_VERSION={pinned.group(1)}" in text
    assert _mlflow_container()["image"].endswith(f":{pinned.group(1)}")

"""The served model: a registered MLflow model by alias (`models:/vidcustom-onnx@champion`), by version
(`models:/vidcustom-onnx/3`) or a local MLflow model folder; and the watcher that loads a new version when the
alias moves, without a restart (requests keep running on the version they started with)."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

from components.server import metrics

log = logging.getLogger(__name__)

_REGISTERED = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    uri: str
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str) -> "ModelRef":
        m = _REGISTERED.match(uri)
        if m:
            return cls(uri, m["name"], m["alias"], m["version"])
        if uri.startswith("models:/"):
            raise ValueError(f"--model {uri!r}: write models:/NAME@ALIAS (e.g. models:/vidcustom-onnx@champion) or "
                             "models:/NAME/VERSION")
        return cls(uri)

    def current_version(self, client) -> str | None:
        """The version the alias points at now (the fixed version, or None for a local folder)."""
        if self.alias:
            return str(client.get_model_version_by_alias(self.name, self.alias).version)
        return self.version


@dataclass(frozen=True)
class LoadedModel:
    """One loaded version: its sampler (`generate`/`__call__` and `config`, see components/export/sampler.py)."""

    ref: ModelRef
    version: str | None
    sampler: object

    @property
    def label(self) -> str:
        return f"{self.ref.name}/{self.version}" if self.ref.name else self.ref.uri

    @property
    def config(self) -> dict:
        return self.sampler.config


def load(ref: ModelRef, version: str | None = None) -> LoadedModel:
    """Download and load `ref` (at `version` when given) and take out its ONNX sampler."""
    import mlflow
    import mlflow.pyfunc

    from mlflow.exceptions import MlflowException

    uri = ref.uri
    try:
        if ref.name and version is None:
            version = ref.current_version(mlflow.MlflowClient())
        uri = f"models:/{ref.name}/{version}" if ref.name else ref.uri
        python_model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except (MlflowException, OSError) as err:
        message = getattr(err, "message", None) or str(err)
        raise ValueError(f"cannot load {uri} from {mlflow.get_tracking_uri()}: {message} (check --model and "
                         "--tracking-uri)") from None
    sampler = getattr(python_model, "sampler", None)
    if sampler is None or not isinstance(getattr(sampler, "config", None), dict):
        raise ValueError(f"{uri} is not an ONNX sampler model: `vidcustom serve` serves what the export step registers "
                         "(e.g. models:/vidcustom-onnx@champion)")
    return LoadedModel(ref, version, sampler)


class AliasWatcher:
    """Every `poll_s` seconds, asks the registry where the alias points; loads a new version in this thread and
    hands it to `swap`. A registry that cannot be reached, or a version that fails to load, leaves the served
    version in place (logged, counted in vidcustom_model_reloads_total{outcome="failed"})."""

    def __init__(self, ref: ModelRef, current: str | None, swap, poll_s: float):
        self.ref, self.current, self.swap, self.poll_s = ref, current, swap, poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidcustom-alias-watcher", daemon=True)

    def start(self) -> "AliasWatcher":
        if self.ref.alias and self.poll_s > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """One poll: True when a new version was loaded and swapped in."""
        import mlflow

        try:
            version = self.ref.current_version(mlflow.MlflowClient())
        except Exception as err:  # registry down or alias deleted: keep serving what we have
            log.warning("alias %s@%s could not be resolved (%s); still serving version %s", self.ref.name,
                        self.ref.alias, err, self.current)
            return False
        if version == self.current:
            return False
        try:
            model = load(self.ref, version)
        except Exception:
            log.exception("loading %s version %s failed; still serving version %s", self.ref.name, version,
                          self.current)
            metrics.RELOADS.labels("failed").inc()
            return False
        log.info("%s@%s moved from version %s to %s: now serving %s", self.ref.name, self.ref.alias, self.current,
                 version, version)
        self.swap(model)
        self.current = version
        metrics.RELOADS.labels("loaded").inc()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.check()

"""The run config: one section per pipeline step plus the model config.

Sources, later wins: the preset's defaults < params.yaml < `section.key=value` overrides
(CLI flags and KFP pipeline parameters both arrive as such overrides). Invalid values fail
here, at start-up, with the offending field named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from model.config import BUNDLED, BUNDLED_PREFIX, PRESETS, ModelConfig, ScoringConfig, deep_merge

STATE_DIR_ENV = "VIDCUSTOM_HOME"

# torch.onnx.export(dynamo=False), as components/export/onnx_export.py calls it: the transformer's
# scaled_dot_product_attention needs opset 14, and the TorchScript exporter stops at 20
# (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET; tests/test_config.py pins it).
ONNX_OPSETS = (14, 20)


def benchmark_is_path(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or os.sep in value  # as load_benchmark tells them apart


def registry_name(value: str, field: str) -> str:
    """A registered-model or experiment name MLflow accepts: non-empty, no '/' or ':' (they would break
    models:/<name>@alias URIs). MLflow itself refuses these only when the register or export step runs."""
    if not value.strip():
        raise ValueError(f"{field} is empty; give it a name, e.g. {field}=vidcustom")
    if any(c in value for c in "/:"):
        raise ValueError(f"{field}={value!r} contains '/' or ':', which MLflow names cannot; choose another name")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


MOTIONS = ("walk", "run", "jump", "spin", "slide", "float", "zoom")
CHANGES = ("colour", "texture", "style", "background")


class ScaleBackendConfig(_Strict):
    """The `diffusers` backend (cluster scale): each stage a diffusers/transformers pipeline loaded from a
    local directory or an object-store URI (s3://bucket/prefix, fetched once into `cache_dir`)."""

    subjects: str | None = Field(None, description="CSV (image,noun,category) or folder of subject images "
                                 "(<category>/<noun>/*.png); default: procedural sprite subjects")
    t2i_path: str | None = Field(None, description="subject-driven text-to-image pipeline (diffusers folder)")
    outpaint_path: str | None = Field(None, description="inpainting pipeline used to outpaint to the video aspect; "
                                      "unset: pad with the border colour and resize")
    i2v_path: str | None = Field(None, description="image-to-video pipeline, e.g. CogVideoX image-to-video")
    detector_path: str | None = Field(None, description="Grounding DINO (transformers) for subject boxes")
    sam_path: str | None = Field(None, description="SAM (transformers) for subject masks")
    cache_dir: str | None = Field(None, description="where object-store models are fetched; default <state>/models")
    num_inference_steps: int = Field(30, ge=1)
    guidance_scale: float = Field(6.0, ge=0.0)
    t2i_strength: float = Field(0.6, gt=0.0, le=1.0, description="how far the text-to-image step may move away "
                                "from the subject image (img2img strength)")
    detection_threshold: float = Field(0.3, ge=0.0, le=1.0)
    device: str = Field("cpu", description="torch device for the backend's pipelines")
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"


class IngestConfig(_Strict):
    """The `ingest` backend: real videos with captions, from a folder or a CSV."""

    source: str | None = Field(None, description="folder of videos (caption in a same-named .txt) or CSV with "
                               "columns video, caption[, subject_id, category, noun]; paths relative to the CSV")
    clips_per_video: int = Field(1, ge=1)
    segmenter: Literal["grabcut", "grounded_sam"] = Field(
        "grabcut", description="grabcut: OpenCV, no model (tiny); grounded_sam: synthesize.scale detector + SAM")
    default_category: Literal["animal", "active_object", "static_object"] = "active_object"
    min_subject_area: float = Field(0.01, ge=0.0, lt=1.0, description="segmented subject's share of the frame "
                                    "below which the sample is dropped (nothing found)")


class SynthesizeConfig(_Strict):
    backend: Literal["sprites", "diffusers", "ingest"] = "sprites"
    seed: int = 0
    num_subjects: int = Field(24, ge=2, description="distinct subjects (identities)")
    samples_per_subject: int = Field(8, ge=1)
    synthetic_fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of attribute-changing samples")
    subject_size: tuple[float, float] = Field(
        (10 / 32, 14 / 32), description="range of the subject's box side as a fraction of the frame (min, max)")
    caption_colour: bool = Field(True, description="captions name the subject's colour; false leaves colour, like "
                                                   "shape and texture, to the identity image")
    caption_position: bool = Field(False, description="captions say where the subject starts (thirds of the "
                                   "frame), so the text fixes where it is and only the image says what it is")
    motions: tuple[str, ...] = Field(MOTIONS, description=f"sprites motions to draw from, each only for the "
                                     f"categories it suits; any of {MOTIONS}")
    changes: dict[str, float] = Field(
        default_factory=lambda: {"colour": 0.4, "texture": 0.2, "style": 0.25, "background": 0.15},
        description=f"relative weights of the attribute change of a synthetic sample; keys from {CHANGES}")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    workers: int = Field(2, ge=1)
    shard_size: int = Field(32, ge=1, description="samples per resumable shard (one done-file each)")
    # Filter thresholds; scores are always recorded, samples below a threshold are dropped.
    min_clip_text_score: float = -1.0
    min_dino_identity_score: float = -1.0
    min_frame_consistency: float = -1.0
    min_flow_score: float = Field(0.0, description="mean top-2 % flow magnitude (px/frame) below which a clip is "
                                  "dropped; 0 keeps everything")
    drop_static: bool = Field(True, description="drop clips VBench's static filter judges static")
    flow: Literal["opencv", "raft"] = Field("opencv", description="optical flow for the static filter")
    raft_weights: str | None = Field(None, description="torchvision RAFT state dict (raft_large, or raft_small "
                                     "with flow_model=small); required for flow=raft")
    raft_model: Literal["large", "small"] = "large"
    scale: ScaleBackendConfig = ScaleBackendConfig()
    ingest: IngestConfig = IngestConfig()

    @model_validator(mode="after")
    def _checks(self) -> "SynthesizeConfig":
        lo, hi = self.subject_size
        if not 0.05 <= lo <= hi <= 0.9:
            raise ValueError(f"synthesize.subject_size must satisfy 0.05 <= min <= max <= 0.9, got {self.subject_size}")
        bad = [m for m in self.motions if m not in MOTIONS]
        if bad or not self.motions:
            raise ValueError(f"synthesize.motions: unknown {bad}; choose a non-empty subset of {MOTIONS}")
        bad = [c for c in self.changes if c not in CHANGES]
        if bad or not self.changes or any(w < 0 for w in self.changes.values()) or sum(self.changes.values()) <= 0:
            raise ValueError(f"synthesize.changes: keys from {CHANGES} with non-negative weights, not all zero "
                             f"(got {self.changes})")
        if self.flow == "raft" and not self.raft_weights:
            raise ValueError("synthesize.flow=raft needs synthesize.raft_weights (a torchvision RAFT state dict; "
                             "nothing is downloaded at run time)")
        if self.backend == "ingest" and not self.ingest.source:
            raise ValueError("synthesize.backend=ingest needs synthesize.ingest.source (a folder or CSV of videos)")
        if self.backend == "diffusers" and not self.scale.i2v_path:
            raise ValueError("synthesize.backend=diffusers needs synthesize.scale.i2v_path (an image-to-video pipeline)")
        return self


class ValidateConfig(_Strict):
    remote: str | None = Field(None, description="DVC remote URL; default $VIDCUSTOM_DVC_REMOTE, else <state>/dvc-remote")
    max_caption_chars: int = Field(300, ge=1)
    min_rows: int = Field(8, ge=1)
    push: bool = True
    workers: int = Field(0, ge=0, description="threads for the per-sample media checks; 0 = every available core")
    max_listed_ids: int = Field(20, ge=1, description="failing sample_ids listed per check in report.md")
    remote_endpoint_url: str | None = Field(None, description="S3-compatible endpoint for s3:// remotes (MinIO); "
                                            "default $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL")
    min_category_share: float = Field(0.1, ge=0.0, le=1.0 / 3, description="each category's least share of rows")
    min_val_rows: int = Field(1, ge=0, description="rows the val split must have at least")
    max_val_fraction: float = Field(0.5, gt=0.0, le=1.0, description="share of rows the val split may have at most")
    check_thresholds: bool = Field(True, description="expect every score at or above its synthesize.min_* threshold")
    checksums: bool = Field(True, description="media check: file md5 equals the manifest's recorded checksum")


class TrainConfig(_Strict):
    strategy: Literal["mix", "ts", "tsf"] = "tsf"
    mix_p: float = Field(0.5, ge=0.0, le=1.0, description="P(draw a synthetic sample) in the mixed stage")
    freeze_fraction: float = Field(0.5, ge=0.0, le=1.0, description="TSF: share of blocks frozen in stage 2")
    stage1_steps: int = Field(900, ge=0)
    stage2_steps: int = Field(600, ge=0)
    batch_size: int = Field(8, ge=1, description="per rank")
    learning_rate: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(100, ge=0, description="linear learning-rate warm-up at the start of each stage")
    weight_decay: float = Field(0.0, ge=0)
    num_procs: int = Field(2, ge=1, description="DeepSpeed ranks (CPU processes over gloo here)")
    zero_stage: Literal[0, 1, 2] = 2
    reduce_bucket_size: int = Field(500_000_000, ge=1, description="ZeRO gradient bucket, in elements")
    seed: int = 0
    log_every: int = Field(20, ge=1)
    checkpoint_every: int = Field(100, ge=1, description="resumable state is saved this often")
    timeout_s: int = Field(3600, ge=10, description="kills a hung rank group")
    allow_oversubscribe: bool = Field(False, description="allow more CPU ranks than cores (each rank then gets a "
                                      "share of a core; slow, but it runs); refused at start-up otherwise")

    bf16: bool = Field(False, description="bf16 mixed precision (GPU); CPU runs fp32")
    build_shm_comm: bool = Field(False, description="build DeepSpeed's shared-memory all-reduce op (JIT, ~80 s on "
                                                    "a fresh CPU machine; it speeds inference/TP collectives only)")

    @model_validator(mode="after")
    def _some_steps(self) -> "TrainConfig":
        if self.stage1_steps + self.stage2_steps == 0:
            raise ValueError("train.stage1_steps + train.stage2_steps must be > 0")
        return self


class EvaluateConfig(_Strict):
    num_samples: int = Field(24, ge=1, description="held-out subject x prompt pairs")
    seed: int = 1234
    batch_size: int = Field(8, ge=1)
    num_inference_steps: int | None = None
    baselines: bool = Field(True, description="also score the untrained model and the image-dropped ablation "
                                              "(sprites track; cheap on tiny)")
    num_sample_videos: int = Field(8, ge=0, description="videos logged to MLflow (MP4 and GIF)")
    benchmark: str = Field("sprites", description="benchmark definition: sprites | sugar_dreambench | "
                           "videomaker_human | videomaker_object, or a path to a definition YAML")
    benchmark_images: str | None = Field(None, description="folder of the benchmark's subject images (local or "
                                         "s3://); required by every benchmark but sprites")
    paper_metrics: bool = Field(True, description="also compute the METHOD_NOTES §3 metrics (DINO-I, CLIP-I, "
                                "CLIP-T, text-video, dynamic degree, subject/background/temporal consistency)")
    flow: Literal["opencv", "raft"] = Field("opencv", description="optical flow for dynamic degree (VBench: RAFT; "
                                            "OpenCV Farneback offline); tagged on the run")
    raft_weights: str | None = Field(None, description="torchvision RAFT state dict, for flow=raft")
    guidance_sweep: list[float] = Field(default_factory=list, description="image guidance scales to sweep (text "
                                        "scale fixed); logs a metric-vs-scale plot; empty = no sweep")

    @model_validator(mode="after")
    def _raft(self) -> "EvaluateConfig":
        if self.flow == "raft" and not self.raft_weights:
            raise ValueError("evaluate.flow=raft needs evaluate.raft_weights (a torchvision RAFT state dict; "
                             "nothing is downloaded at run time)")
        return self

    @model_validator(mode="after")
    def _benchmark(self) -> "EvaluateConfig":
        # Evaluate would refuse these only after training. A path is checked where the run starts
        # (check_machine): it may exist only on the machine that evaluates.
        from components.benchmark_defs import available_benchmarks, definitions_dir

        if benchmark_is_path(self.benchmark):
            return self
        if self.benchmark not in available_benchmarks():
            raise ValueError(f"evaluate.benchmark={self.benchmark!r} is unknown; set it to one of "
                             f"{', '.join(available_benchmarks())} or to the path of a definition YAML")
        # Only its kind: load_benchmark would import the sprites generator (and torch) with every config.
        definition = yaml.safe_load((definitions_dir() / f"{self.benchmark}.yaml").read_text())
        if definition.get("kind") != "sprites" and not self.benchmark_images:
            raise ValueError(f"evaluate.benchmark={self.benchmark} needs evaluate.benchmark_images: set it to the "
                             "folder (local or s3://) of the benchmark's subject images")
        return self


class RegisterConfig(_Strict):
    model_name: str = "vidcustom"
    # Gate: per-metric floors; champion only when every floor holds.
    gate: dict[str, float] = Field(default_factory=dict, description="metric -> floor")
    must_beat: dict[str, str] = Field(
        default_factory=lambda: {"sprites_motion": "baseline_untrained/sprites_motion"},
        description="metric -> another metric of the same evaluation it must exceed")
    no_regression: list[str] = Field(default_factory=lambda: ["sprites_motion"],
                                     description="metrics that must not fall below the current champion's")
    tolerance: float = Field(0.01, ge=0, description="allowed drop below the champion for no_regression metrics")
    image_effect: str | None = Field(
        "auto", description="metric whose paired image effect (with the image - image dropped) must be positive "
        "for champion: auto = the evaluation's identity metric (sprites_identity, or dino_i on a subject-image "
        "benchmark); null turns the rule off")
    min_image_effect: float = Field(0.0, description="the effect's 95 % interval must lie above this")

    @field_validator("model_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return registry_name(value, "register.model_name")


class ExportConfig(_Strict):
    model_name: str = "vidcustom-onnx"
    opset: int = Field(17, description=f"ONNX opset, {ONNX_OPSETS[0]}..{ONNX_OPSETS[1]}")
    atol: float = Field(1e-3, gt=0, description="max |torch - onnx| over the sampled video, pixel range [-1, 1]")
    providers: list[str] = Field(default_factory=lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                          "CPUExecutionProvider"])
    # The served sampler's accelerations (components/export/sampler.py), each tried by the export's gate
    # (components/export/accelerate.py) on top of those accepted before it and served only if accepted.
    accelerations: list[Literal["branch_plan", "io_binding", "int8", "fewer_steps", "step_cache"]] = Field(
        # int8 is not a default: it moves tiny's videos by 0.2-0.45 and 20M's by 0.025 (docs/serving.md), so the
        # gate refuses it at the default tolerance and every export would pay its quantisation and sampling.
        default_factory=lambda: ["branch_plan"],
        description="tried in this order: branch_plan (skip guidance branches of coefficient 0), io_binding (no "
                    "measurable gain on CPU: benchmarks/sampler_speed.py), int8 (dynamic int8 denoiser weights), "
                    "fewer_steps, step_cache (both trade accuracy by design); each costs one sampling of the gate's "
                    "cases")
    accel_atol: float = Field(0.02, gt=0, description="gate: max |accelerated - reference| over the gate's videos, "
                              "pixels in [-1, 1] (0.02: about 2.5 of 255 levels)")
    accel_identity_drop: float = Field(0.01, ge=0, description="gate: how far the sprites identity score of the "
                                       "gate's videos may fall below the reference's")
    fewer_steps_fraction: float = Field(0.5, gt=0, lt=1, description="fewer_steps: the share of the requested "
                                        "steps that run")
    cache_interval: int = Field(2, ge=2, description="step_cache: the denoiser runs every this many steps")
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime threads per session; 0 = physical cores")
    allow_spinning: bool = Field(False, description="onnxruntime threads busy-wait between ops (faster hand-offs, "
                                 "but idle threads then take CPU from torch and other requests)")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"

    @field_validator("model_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return registry_name(value, "export.model_name")

    @field_validator("accelerations")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"export.accelerations={value} names one twice; list each at most once")
        return value

    @field_validator("opset")
    @classmethod
    def _opset(cls, value: int) -> int:
        lo, hi = ONNX_OPSETS
        if not lo <= value <= hi:
            raise ValueError(f"export.opset={value} is outside what the ONNX export supports: set export.opset "
                             f"between {lo} (attention needs it) and {hi} (torch's exporter stops there)")
        return value


class MlflowConfig(_Strict):
    tracking_uri: str | None = Field(None, description="default: $MLFLOW_TRACKING_URI, else sqlite in the state dir")
    experiment: str = "vidcustom"
    retries: int = Field(3, ge=1, description="tries to reach a tracking server before failing")
    retry_wait_s: float = Field(2.0, ge=0, description="wait after the first failed try; doubles after each")
    offline: Literal["buffer", "fail"] = Field(
        "buffer", description="a tracking server still unreachable after the retries: buffer = log to a local "
        "store under <state>/mlflow-buffer and upload with `vidcustom mlflow sync` when it is back; fail = stop")
    failover_s: float = Field(30.0, gt=0, description="seconds one MLflow call may spend on a tracking server that "
                              "stops answering mid-step (MLflow's HTTP retries and timeout are capped to two tries "
                              "of failover_s/2); then the step continues in the local buffer (offline=buffer) or "
                              "fails (offline=fail)")

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str) -> str:
        if not value.strip():  # MLflow refuses it only when the first step logs
            raise ValueError("mlflow.experiment is empty; give it a name, e.g. mlflow.experiment=vidcustom")
        return value


# What each step reads of the run config, beyond SHARED_SECTIONS: whole sections or single keys
# ("section.key"). A step receives only these (`RunConfig.for_step`: its KFP cache key), dvc.yaml lists them
# as its stage's params, and tests/test_config_contract.py checks both against the code. What was trained
# (model settings) comes from the checkpoint's own record after training, not from here.
SHARED_SECTIONS = ("preset", "state_dir", "mlflow")
HELDOUT_KEYS = ("evaluate.seed", "synthesize.caption_colour", "synthesize.subject_size", "synthesize.motions",
                "synthesize.caption_position")  # components/sprites/sampling.heldout_specs_for
STEP_READS: dict[str, tuple[str, ...]] = {
    "synthesize": ("synthesize", "model", "scoring", "validate.max_caption_chars"),
    "validate": ("validate", "synthesize", "model"),
    "train": ("train", "model"),
    "evaluate": ("evaluate", "scoring", *HELDOUT_KEYS),
    "register": ("register",),
    "export": ("export", "evaluate.num_inference_steps", *HELDOUT_KEYS),
}


class RunConfig(_Strict):
    preset: str = "tiny"
    state_dir: str = Field(".vidcustom", description="local state: MLflow store, DVC remote, KFP root")
    model: ModelConfig = ModelConfig()
    synthesize: SynthesizeConfig = SynthesizeConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    register_: RegisterConfig = Field(RegisterConfig(), alias="register")
    export: ExportConfig = ExportConfig()
    mlflow: MlflowConfig = MlflowConfig()
    scoring: ScoringConfig = Field(ScoringConfig(), description="judges for data filters and metrics")
    step: str | None = Field(None, description="set by for_step: this config is that step's, holding only what "
                             "it reads (STEP_READS); the other sections are defaults and must not be read")

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @model_validator(mode="after")
    def _distinct_models(self) -> "RunConfig":
        # export registers the ONNX model under its own name; sharing one would put ONNX versions among the
        # torch ones that register's gate compares with its champion.
        if self.export.model_name == self.register_.model_name:
            raise ValueError(f"export.model_name and register.model_name are both {self.export.model_name!r}; give "
                             "the ONNX model its own name, e.g. export.model_name=vidcustom-onnx")
        return self

    @property
    def state(self) -> Path:
        return Path(os.environ.get(STATE_DIR_ENV, self.state_dir)).resolve()

    # The setting that chose each location, for error messages that say what to change.
    def state_setting(self) -> str:
        return STATE_DIR_ENV if os.environ.get(STATE_DIR_ENV) else f"state_dir (or ${STATE_DIR_ENV})"

    def tracking_setting(self) -> str:
        if self.mlflow.tracking_uri:
            return "mlflow.tracking_uri"
        return "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else self.state_setting()

    def tracking_uri(self) -> str:
        return (self.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                or f"sqlite:///{self.state / 'mlflow.db'}")

    def dvc_remote(self) -> str:
        # In a cluster the vidcustom-env ConfigMap sets VIDCUSTOM_DVC_REMOTE (s3://dvc/vidcustom).
        return self.validate_.remote or os.environ.get("VIDCUSTOM_DVC_REMOTE") or str(self.state / "dvc-remote")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def declared(self) -> dict:
        """The config as JSON-able dict: all of it, or for a step's config only the parts it reads."""
        full = self.model_dump(mode="json", by_alias=True)
        if self.step is None:
            return full
        out = {k: full[k] for k in SHARED_SECTIONS} | {"step": self.step}
        for item in STEP_READS[self.step]:
            section, _, key = item.partition(".")
            if key:
                out.setdefault(section, {})[key] = full[section][key]
            else:
                out[section] = full[section]
        return out

    def for_step(self, step: str) -> str:
        """This config as `step` receives it (JSON): the shared sections and what STEP_READS says it reads."""
        if step not in STEP_READS:
            raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEP_READS)}")
        if self.step not in (None, step):
            raise ValueError(f"this is the {self.step} step's config; the {step} step needs its own (for_step)")
        return json.dumps(self.model_copy(update={"step": step}).declared(), sort_keys=True)


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask (a container's cpuset, taskset), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _gpu_count() -> int:
    """GPUs the training ranks would use (components/train/worker.py: one per rank when CUDA is available)."""
    import torch  # already imported with the bundled base

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_machine(cfg: RunConfig) -> None:
    """Settings that depend on the machine the steps run on; called where a local run starts, before any work
    (not in load_config: `vidcustom submit` validates on a machine that runs none of the steps). Raises
    ValueError naming the field and the fix."""
    check_ranks(cfg)
    check_benchmark(cfg)


def check_ranks(cfg: RunConfig) -> None:
    """train.num_procs against this machine: a rank per GPU, or with no GPU at most a rank per core unless
    train.allow_oversubscribe."""
    ranks, gpus = cfg.train.num_procs, _gpu_count()
    if gpus and ranks > gpus:
        raise ValueError(f"train.num_procs={ranks} but this machine has {gpus} GPU(s), and each rank takes one; "
                         f"set train.num_procs to at most {gpus}")
    cores = available_cores()
    if not gpus and ranks > cores and not cfg.train.allow_oversubscribe:
        raise ValueError(f"train.num_procs={ranks} is more ranks than the {cores} CPU core(s) available here; set "
                         f"train.num_procs to at most {cores}, or train.allow_oversubscribe=true to run them anyway")


def check_benchmark(cfg: RunConfig) -> None:
    """A benchmark given as a path, and its images, exist here."""
    if benchmark_is_path(cfg.evaluate.benchmark):  # a shipped name was checked by load_config
        from components.benchmark_defs import BenchmarkError, load_benchmark

        try:
            kind = load_benchmark(cfg.evaluate.benchmark).kind
        except BenchmarkError as err:
            raise ValueError(f"evaluate.benchmark: {err}; fix the definition or the path") from None
        if kind != "sprites" and not cfg.evaluate.benchmark_images:
            raise ValueError(f"evaluate.benchmark={cfg.evaluate.benchmark} needs evaluate.benchmark_images: set it "
                             "to the folder (local or s3://) of the benchmark's subject images")
    images = cfg.evaluate.benchmark_images
    if images and "://" not in images and not Path(images).expanduser().is_dir():
        raise ValueError(f"evaluate.benchmark_images={images} is not a folder here; point it at the folder of the "
                         "benchmark's subject images")


def _bundled_base(name: str) -> dict:
    """Model settings that start from a base shipped in model/bundled/<name>/, pinned by the sha256 that its
    provenance.json records (written by `vidcustom pretrain`), with the settings the base was trained with
    (noise schedule, text length); {} while none is shipped (random start)."""
    record = BUNDLED / name / "provenance.json"
    if not record.is_file():
        return {}
    record = json.loads(record.read_text())
    return {**record.get("model_settings", {}), "transformer_path": f"{BUNDLED_PREFIX}{name}",
            "transformer_sha256": record["sha256"]}


# Run-level presets (model presets live in model/config.py); the smaller `ci` one drives the e2e test. Both
# start from the bundled text-to-video base, as SUGAR starts from a pretrained CogVideoX.
TINY_BASE = _bundled_base("tiny-t2v")
RUN_PRESETS: dict[str, dict] = {
    "tiny": {"model": TINY_BASE},
    "ci": {
        "synthesize": {"num_subjects": 8, "samples_per_subject": 4},
        "train": {"stage1_steps": 30, "stage2_steps": 20, "batch_size": 4, "checkpoint_every": 25},
        "evaluate": {"num_samples": 4, "num_inference_steps": 4},
        # 50 steps prove the plumbing, not uptake: the image-effect rule is shown by the demo (tiny) and by
        # benchmarks/gate_refusal.py.
        "register": {"gate": {}, "must_beat": {}, "image_effect": None},
        "model": {**TINY_BASE, "sampler": {"num_inference_steps": 4}},
    },
}


def parse_override(item: str) -> dict:
    """`train.batch_size=4` -> {"train": {"batch_size": 4}}; values are parsed as YAML."""
    if "=" not in item:
        raise ValueError(f"override {item!r} is not of the form section.key=value")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw else ""
    for part in reversed(key.strip().split(".")):
        if not part:
            raise ValueError(f"override {item!r} has an empty key part")
        value = {part: value}
    return value


def load_config(params: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                preset: str | None = None, params_text: str | None = None) -> RunConfig:
    """Merge preset < params.yaml (a file, or its text as KFP passes it) < overrides and validate; errors name
    the field."""
    data: dict = {}
    if params is not None:
        path = Path(params)
        if not path.is_file():
            raise FileNotFoundError(f"params file {path} does not exist; pass --params PATH or omit it")
        params_text, source = path.read_text(), str(path)
    else:
        source = "params_yaml"
    if params_text and params_text.strip():
        loaded = yaml.safe_load(params_text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{source} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded
    for item in overrides:
        data = deep_merge(data, parse_override(item))
    name = preset or data.get("preset", "tiny")
    run_base = RUN_PRESETS.get(name, {})
    model_preset = "tiny" if name in RUN_PRESETS else name
    if model_preset not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(set(PRESETS) | set(RUN_PRESETS))}")
    merged = deep_merge(run_base, data)
    merged["preset"] = name
    merged["model"] = deep_merge(PRESETS[model_preset], merged.get("model", {}))
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as err:
        raise ValueError("invalid configuration:\n" + "\n".join(map(_error_line, err.errors()))) from None


def _error_line(e: dict) -> str:
    loc = ".".join(str(p) for p in e["loc"])
    if e["type"] == "value_error":  # our validators' messages name the field, its value and the fix
        msg = e["msg"].removeprefix("Value error, ")
        return f"  {msg}" if loc in msg else f"  {loc}: {msg}"
    return f"  {loc}: {e['msg']} (got {e.get('input')!r})"


def config_from_json(text: str) -> RunConfig:
    return RunConfig.model_validate(json.loads(text))

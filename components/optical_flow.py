"""Optical flow and VBench's two flow rules: dynamic degree (METHOD_NOTES §3.1) and the static filter (the data filter).

VBench uses RAFT (`raft-things.pth`, 20 iterations). Offline we default to OpenCV Farneback, which
needs no weights; RAFT plugs in through the same `FlowEstimator` protocol when its code and
weights are configured. Either way frames are replicate-padded to multiples of 8 first, as
VBench's `InputPadder` does, and the flow is returned over the padded map (the top-k score is
taken over that map too).

Both rules score a frame pair the same way, `top_magnitude(flow, fraction)`: the mean of the largest
max(1, int(fraction*H*W)) flow magnitudes -- 5 % for dynamic degree (`DYNAMIC_TOP_FRACTION`), 2 % for
the static filter (`STATIC_TOP_FRACTION`). They differ in their thresholds and count rules:

| rule | thres | count_num | verdict |
|---|---|---|---|
| dynamic degree (`is_dynamic`) | 6*min(H,W)/256 | round(4*N/16) | dynamic once count_num pairs exceed thres |
| static filter (`is_static`) | 3*min(H,W)/256 | round(2*N/16) | static unless > count_num pairs exceed thres or an end pair exceeds 2*thres*count_num |

Shared by the evaluate step (dynamic degree) and the synthesize step (static filter); it imports no step.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import numpy as np


class FlowEstimator(Protocol):
    """(H, W, 3) uint8 RGB frame pair -> (H, W, 2) float32 flow (u, v) in pixels, image1 -> image2."""

    def __call__(self, image1: np.ndarray, image2: np.ndarray) -> np.ndarray: ...


def pad_to_multiple_of_8(frame: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H', W', C) with H', W' multiples of 8, edge-replicated.

    Same split as RAFT's InputPadder in its default 'sintel' mode: half the padding before, the
    rest after, on both axes.
    """
    h, w = frame.shape[:2]
    pad_h, pad_w = (-h) % 8, (-w) % 8
    if not (pad_h or pad_w):
        return frame
    return np.pad(frame, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="edge")


class FarnebackFlow:
    """OpenCV dense Farneback flow on grey frames; the offline stand-in for RAFT.

    Defaults are OpenCV's documented example values, with more pyramid levels so that motions of
    tens of pixels (RAFT's regime at 480p) are still found.
    """

    def __init__(self, pyr_scale: float = 0.5, levels: int = 5, winsize: int = 15, iterations: int = 3,
                 poly_n: int = 5, poly_sigma: float = 1.2):
        self.params = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    def __call__(self, image1: np.ndarray, image2: np.ndarray) -> np.ndarray:
        import cv2

        g1 = cv2.cvtColor(np.ascontiguousarray(image1), cv2.COLOR_RGB2GRAY)
        g2 = cv2.cvtColor(np.ascontiguousarray(image2), cv2.COLOR_RGB2GRAY)
        return cv2.calcOpticalFlowFarneback(g1, g2, None, *self.params).astype(np.float32)


class RaftFlow:
    """RAFT as VBench runs it (20 refinement iterations, frames in 0..255 rescaled to [-1, 1]), through
    torchvision's implementation (`raft_large`, or `raft_small`), weights from a local state dict.

    VBench's own `raft-things.pth` uses the original repository's key names; torchvision's RAFT
    weights (`Raft_Large_Weights.C_T_V2`, trained on FlyingChairs + FlyingThings like raft-things)
    are the ready-made equivalent. Nothing is downloaded: `weights` is a local path or s3:// URI.
    RAFT's 1/8-resolution correlation pyramid needs frames of at least 64 px on their shorter side.
    """

    MIN_SIDE = 64

    def __init__(self, weights: str, model: str = "large", device: str = "cpu", iters: int = 20):
        import torch

        try:
            from torchvision.models.optical_flow import raft_large, raft_small
        except Exception as err:  # missing, or built for another torch (its C ops then fail to register)
            raise NotImplementedError(
                f"RAFT flow needs torchvision built for this torch {torch.__version__} ({type(err).__name__}: "
                f"{str(err)[:120]}); install the matching torchvision (the GPU image has it) or use "
                "flow='opencv'") from None

        from components.storage import local_path

        self.model = (raft_large if model == "large" else raft_small)(weights=None, progress=False)
        path = local_path(weights, what="RAFT weights")
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            self.model.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{path} is not a torchvision raft_{model} state dict ({str(err)[:200]}...); "
                             "VBench's raft-things.pth uses other key names: export torchvision's "
                             "Raft_Large_Weights instead") from None
        self.model.to(device).eval()
        self.device, self.iters = device, iters

    def __call__(self, image1: np.ndarray, image2: np.ndarray) -> np.ndarray:
        import torch

        if min(image1.shape[:2]) < self.MIN_SIDE:
            raise ValueError(f"RAFT needs frames of at least {self.MIN_SIDE} px on the shorter side, got "
                             f"{image1.shape[:2]}; use the OpenCV flow for smaller videos")

        def tensor(x):  # (H, W, 3) uint8 -> (1, 3, H, W) in [-1, 1], as RAFT's own input scaling does
            return (torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float()[None] / 127.5 - 1.0
                    ).to(self.device)

        with torch.no_grad():
            flows = self.model(tensor(image1), tensor(image2), num_flow_updates=self.iters)
        return flows[-1][0].permute(1, 2, 0).cpu().numpy()


def build_flow_estimator(name: str = "farneback", raft_weights: str | None = None, device: str = "cpu",
                         raft_model: str = "large") -> FlowEstimator:
    """'farneback' / 'opencv' (offline default) or 'raft' (VBench's choice; needs `raft_weights`)."""
    if name in ("farneback", "opencv"):
        return FarnebackFlow()
    if name == "raft":
        if not raft_weights:
            raise NotImplementedError(
                "RAFT flow needs weights and nothing is downloaded at run time: save torchvision's "
                "Raft_Large_Weights state dict (VBench uses raft-things.pth, the same training data) to a "
                "file and pass raft_weights=<path>; or use flow='opencv'")
        return RaftFlow(raft_weights, raft_model, device)
    raise ValueError(f"unknown flow estimator {name!r}; expected 'opencv' (farneback) or 'raft'")


def padded_flow(estimator: FlowEstimator, image1: np.ndarray, image2: np.ndarray) -> np.ndarray:
    """Pad both (H, W, 3) uint8 frames to multiples of 8, then flow -> (H', W', 2) over the padded map."""
    return estimator(pad_to_multiple_of_8(image1), pad_to_multiple_of_8(image2))


# ---------------------------------------------------------------------------------------------------
# The per-pair score both VBench rules use (VBench `get_score`)
# ---------------------------------------------------------------------------------------------------
DYNAMIC_TOP_FRACTION = 0.05  # dynamic degree: top 5 % of flow magnitudes
STATIC_TOP_FRACTION = 0.02  # static filter: top 2 %


def top_magnitude(flow: np.ndarray, fraction: float) -> float:
    """(H, W, 2) flow -> mean of the top k = max(1, int(fraction*H*W)) magnitudes (VBench `get_score`).

    VBench takes int(fraction*H*W), which is 0 -- an empty mean -- for maps under 1/fraction pixels
    (20 at 5 %, 50 at 2 %); the max(1, .) guard scores those by their largest magnitude instead. Maps
    padded to multiples of 8 (`padded_flow`) have at least 64 pixels, so at 5 % and 2 % k >= 1 and the
    guard never changes a score computed from a padded flow.
    """
    rad = np.hypot(flow[..., 0], flow[..., 1]).ravel()
    k = max(1, int(rad.size * fraction))
    return float(np.partition(rad, rad.size - k)[-k:].mean())


def pair_scores(frames, estimator: FlowEstimator, fraction: float) -> list[float]:
    """`top_magnitude` of the 8-padded flow of each consecutive pair of (T, H, W, 3) uint8 frames (T-1 scores)."""
    return [top_magnitude(padded_flow(estimator, a, b), fraction) for a, b in zip(frames[:-1], frames[1:])]


# ---------------------------------------------------------------------------------------------------
# VBench dynamic degree (VBench `dynamic_degree.py`; METHOD_NOTES §3.1)
# ---------------------------------------------------------------------------------------------------

def dynamic_params(h: int, w: int, n_frames: int) -> tuple[float, int]:
    """(thres, count_num) = (6.0*min(H,W)/256, round(4*N/16)) from the unpadded frame size (§3.1).

    Python's round (half to even) as in the reference: N=2 gives 0, N=10 gives 2.
    """
    return 6.0 * min(h, w) / 256.0, round(4 * (n_frames / 16.0))


def is_dynamic(pair_scores: Iterable[float], thres: float, count_num: int) -> bool:
    """VBench `check_move`: dynamic once count_num pair scores exceed thres.

    Same loop as the reference: the count test sits inside the loop, so a video with no pairs is never
    dynamic while count_num == 0 with at least one pair always is.
    """
    count = 0
    for score in pair_scores:
        if score > thres:
            count += 1
        if count >= count_num:
            return True
    return False


def dynamic_check(frames, estimator: FlowEstimator) -> tuple[bool, list[float], float, int]:
    """(T, H, W, 3) uint8 frames (already fps-sampled) -> (dynamic, pair scores, thres, count_num).

    Top-5 % score over the 8-padded flow of each consecutive pair; thresholds from the unpadded size.
    """
    h, w = frames[0].shape[:2]
    thres, count_num = dynamic_params(h, w, len(frames))
    scores = pair_scores(frames, estimator, DYNAMIC_TOP_FRACTION)
    return is_dynamic(scores, thres, count_num), scores, thres, count_num


# ---------------------------------------------------------------------------------------------------
# VBench static filter (VBench `static_filter.py`; METHOD_NOTES §1.5 step 4 uses it to drop static clips)
# ---------------------------------------------------------------------------------------------------

def static_params(h: int, w: int, n_frames: int) -> tuple[float, int]:
    """(thres, count_num) = (3.0*min(H,W)/256, round(2*N/16)) from the first frame and all N frames."""
    return 3.0 * min(h, w) / 256.0, round(2 * (n_frames / 16.0))


def is_static(pair_scores: list[float], end_scores: list[float], thres: float, count_num: int) -> bool:
    """VBench `check_static`: static unless more than count_num consecutive pairs move more than thres,
    or a first<->last pair moves more than thres*count_num*2."""
    count = 0
    for score in pair_scores:
        if score > thres:
            count += 1
        if count > count_num:
            return False
    return all(score <= thres * count_num * 2 for score in end_scores)


def static_filter(frames: np.ndarray, estimator: FlowEstimator) -> tuple[bool, float]:
    """(T, H, W, 3) uint8, all frames -> (static verdict, mean top-2 % magnitude over consecutive pairs).

    As VBench: flow over the 8-padded map for each consecutive pair, then first->last and last->first;
    thresholds from the unpadded size. A single frame is static with score 0.
    """
    if len(frames) < 2:
        return True, 0.0
    h, w = frames.shape[1:3]
    thres, count_num = static_params(h, w, len(frames))
    pairs = pair_scores(frames, estimator, STATIC_TOP_FRACTION)
    ends = [top_magnitude(padded_flow(estimator, frames[0], frames[-1]), STATIC_TOP_FRACTION),
            top_magnitude(padded_flow(estimator, frames[-1], frames[0]), STATIC_TOP_FRACTION)]
    return is_static(pairs, ends, thres, count_num), float(np.mean(pairs))

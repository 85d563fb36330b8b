"""Optical flow for VBench dynamic degree (METHOD_NOTES §3.1).

VBench uses RAFT (`raft-things.pth`, 20 iterations). Offline we default to OpenCV Farneback, which
needs no weights; RAFT plugs in through the same `FlowEstimator` protocol when its code and
weights are configured. Either way frames are replicate-padded to multiples of 8 first, as
VBench's `InputPadder` does, and the flow is returned over the padded map (the top-5 % score is
taken over that map too).
"""

from __future__ import annotations

from typing import Protocol

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
    """VBench's RAFT (`vbench.third_party.RAFT`, small=False, iters=20, test_mode=True).

    Frames go in as float 0..255, (1, 3, H, W); RAFT rescales them to [-1, 1] itself (§3.1).
    """

    def __init__(self, weights: str, device: str = "cpu"):
        import torch

        try:
            from vbench.third_party.RAFT.core.raft import RAFT
        except ImportError:
            raise NotImplementedError(
                "RAFT flow needs VBench's RAFT code: `pip install vbench` (it provides "
                "vbench.third_party.RAFT), or use flow='farneback'") from None
        from types import SimpleNamespace

        self.model = RAFT(SimpleNamespace(small=False, mixed_precision=False, alternate_corr=False))
        state = torch.load(weights, map_location="cpu", weights_only=True)  # raft-things.pth is a plain state dict
        self.model.load_state_dict({k.replace("module.", ""): v for k, v in state.items()})
        self.model.to(device).eval()
        self.device = device

    def __call__(self, image1: np.ndarray, image2: np.ndarray) -> np.ndarray:
        import torch

        def tensor(x):
            return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float()[None].to(self.device)

        with torch.no_grad():
            _, flow_up = self.model(tensor(image1), tensor(image2), iters=20, test_mode=True)
        return flow_up[0].permute(1, 2, 0).cpu().numpy()


def build_flow_estimator(name: str = "farneback", raft_weights: str | None = None,
                         device: str = "cpu") -> FlowEstimator:
    """'farneback' (offline default) or 'raft' (VBench's choice; needs `raft_weights`)."""
    if name == "farneback":
        return FarnebackFlow()
    if name == "raft":
        if not raft_weights:
            raise NotImplementedError(
                "RAFT flow needs weights: download raft-things.pth (VBench: "
                "pretrained/raft_model/models/raft-things.pth) and pass raft_weights=<path>, and "
                "`pip install vbench` for the RAFT code; or use flow='farneback'")
        return RaftFlow(raft_weights, device)
    raise ValueError(f"unknown flow estimator {name!r}; expected 'farneback' or 'raft'")


def padded_flow(estimator: FlowEstimator, image1: np.ndarray, image2: np.ndarray) -> np.ndarray:
    """Pad both (H, W, 3) uint8 frames to multiples of 8, then flow -> (H', W', 2) over the padded map."""
    return estimator(pad_to_multiple_of_8(image1), pad_to_multiple_of_8(image2))

"""onnxruntime sessions for the sampler: threads, graph optimisation, IO binding. Imports no torch."""

from __future__ import annotations

import os

import numpy as np

GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (its affinity mask: a container's cpuset).

    onnxruntime's own default counts logical CPUs; a second thread on a hyper-thread sibling slows GEMMs."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    try:
        import psutil

        logical, physical = psutil.cpu_count(logical=True), psutil.cpu_count(logical=False)
    except ImportError:
        logical = physical = None
    if logical and physical:
        usable = usable * physical // logical
    return max(1, usable)


def session_options(intra_op_threads: int = 0, allow_spinning: bool = False, graph_optimization: str = "all"):
    """intra_op_threads 0 = physical cores. Spinning off: an idle onnxruntime thread sleeps instead of
    busy-waiting for the next op, so it does not take CPU from torch or from other requests in the process
    (ORT's default spins, which shows as 100 % CPU per thread between runs)."""
    import onnxruntime as ort

    if graph_optimization not in GRAPH_OPTIMIZATIONS:
        raise ValueError(f"graph_optimization={graph_optimization!r}; choose one of {GRAPH_OPTIMIZATIONS}")
    level = ort.GraphOptimizationLevel
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = intra_op_threads or physical_cores()
    opts.inter_op_num_threads = 1  # sequential execution: one pool, the intra-op one
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {"disable": level.ORT_DISABLE_ALL, "basic": level.ORT_ENABLE_BASIC,
                                     "extended": level.ORT_ENABLE_EXTENDED, "all": level.ORT_ENABLE_ALL
                                     }[graph_optimization]
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if allow_spinning else "0")
    return opts


class DenoiserRun:
    """The denoiser over one sampling run: inputs that do not change between steps (conditions, keep flags)
    are given once, latents and timestep per step. With `io_binding` the fixed inputs stay bound and the output
    goes to one preallocated buffer (no per-step allocation); without, a plain `session.run`."""

    def __init__(self, session, fixed: dict[str, np.ndarray], io_binding: bool = False):
        self.session, self.fixed = session, {k: np.ascontiguousarray(v) for k, v in fixed.items()}
        self.binding = session.io_binding() if io_binding else None
        self.out: np.ndarray | None = None
        if self.binding is not None:
            for name, value in self.fixed.items():
                self.binding.bind_cpu_input(name, value)

    def __call__(self, **step: np.ndarray) -> np.ndarray:
        if self.binding is None:
            return self.session.run(None, {**self.fixed, **step})[0]
        step = {k: np.ascontiguousarray(v) for k, v in step.items()}
        for name, value in step.items():
            self.binding.bind_cpu_input(name, value)
        if self.out is None or self.out.shape != step["latents"].shape:
            self.out = np.empty(step["latents"].shape, np.float32)
            self.binding.bind_output("velocity", "cpu", 0, np.float32, list(self.out.shape), self.out.ctypes.data)
        self.session.run_with_iobinding(self.binding)
        return self.out.copy()  # the buffer is written again at the next step

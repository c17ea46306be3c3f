"""The forecaster's forward pass on CUDA, captured once per batch size and replayed.

The CfC steps through the context in a Python loop: each step is a dozen small kernels, so a
pass over 60 steps launches hundreds of them and the GPU waits on the launches, not the work.
A CUDA graph launches them all at once. Batches are padded to a power of two, so a handful of
graphs serve any fleet size; the padding rows are zeros and their outputs are dropped. Where a
capture fails (a driver or library that refuses it), the model runs eagerly from then on.
"""

from __future__ import annotations

import logging

import torch

from aura_exporter.forecast.model import Forecaster

SMALLEST_BATCH = 64
log = logging.getLogger(__name__)


class CapturedForward:
    def __init__(self, model: Forecaster):
        self.model = model
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], torch.Tensor]] = {}
        self.eager = False

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """The model's output for `batch` and its seasonal `anchors` (on the model's CUDA device), in float32."""
        if self.eager:
            return self._forward(batch, anchors)
        rows = len(batch)
        key = (padded_size(rows), *batch.shape[1:])
        if key not in self.graphs:
            try:
                self.graphs[key] = self._capture(key, (padded_size(rows), *anchors.shape[1:]), batch.dtype)
            except RuntimeError as error:
                log.warning("the forecaster's CUDA graph could not be captured (%s); running it eagerly", error)
                self.eager = True
                return self._forward(batch, anchors)
        graph, static_in, static_out = self.graphs[key]
        for static, given in zip(static_in, (batch, anchors), strict=True):
            static[:rows].copy_(given)
            static[rows:].zero_()
        graph.replay()
        return static_out[:rows].clone()

    def _capture(self, shape: tuple[int, ...], anchor_shape: tuple[int, ...], dtype: torch.dtype):
        device = self.model.horizon_steps.device
        static_in = tuple(torch.zeros(size, dtype=dtype, device=device) for size in (shape, anchor_shape))
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up outside the graph, as capture requires
                self._forward(*static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._forward(*static_in)
        return graph, static_in, static_out

    def _forward(self, inputs: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        # autocast's weight cache would hold casts made during capture; graphs want it off.
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            return self.model(inputs, anchors).float()


def padded_size(rows: int) -> int:
    return max(SMALLEST_BATCH, 1 << (rows - 1).bit_length())

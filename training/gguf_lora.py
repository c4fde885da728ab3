"""Write a PEFT LoRA adapter as a GGUF LoRA file that llama.cpp loads.

This module owns the file format only: names, shapes, dtype and metadata. It knows nothing of
torch or of training; it takes numpy arrays, so it can be tested without a GPU.

What llama.cpp expects (src/llama-adapter.cpp, `llama_adapter_lora_init_impl`, in the
llama.cpp that llama-cpp-sys-2 0.1.161 vendors, and convert_lora_to_gguf.py beside it):
- metadata: `general.type` = "adapter", `general.architecture` equal to the base model's
  ("qwen2" here; a mismatch is refused), `adapter.type` = "lora", and `adapter.lora.alpha` read
  with `gguf_get_val_f32` (so it must be stored as FLOAT32). The runtime scales each product by
  alpha / rank, rank being `lora_b->ne[0]` — the same alpha / r that PEFT uses (no rsLoRA).
- tensors: `<base tensor name>.lora_a` and `.lora_b` for each adapted base tensor, e.g.
  `blk.3.attn_q.weight.lora_a`. Every other suffix is refused (except `*_norm.weight`).
- shapes, checked at load: `base->ne[0] == a->ne[0]` (in), `base->ne[1] == b->ne[1]` (out),
  `a->ne[1] == b->ne[0]` (rank). ggml's ne is numpy's shape reversed, so in numpy order
  lora_a is [rank, in] and lora_b is [out, rank]: exactly PEFT's `lora_A.weight` and
  `lora_B.weight`, with no transpose (only token_embd would need one; we never adapt it).
- dtype: any type ggml can multiply; convert_lora_to_gguf.py writes F16 by default. We write F16
  (half the size of F32; LoRA values are small and well inside F16's range).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

# Hugging Face (Qwen2/Llama) linear module name -> GGUF tensor name inside `blk.{i}.`.
HF_TO_GGUF: dict[str, str] = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}

# A PEFT state-dict key such as
# "base_model.model.model.layers.12.self_attn.q_proj.lora_A.weight" (or without ".default").
_PEFT_KEY = re.compile(
    r"(?:^|\.)layers\.(\d+)\.(?:self_attn|mlp)\.(" + "|".join(HF_TO_GGUF) + r")\.lora_([AB])(?:\.default)?\.weight$"
)


class LoraFormatError(ValueError):
    """The adapter's tensors cannot be written as a llama.cpp LoRA (bad name, shape or pair)."""


def gguf_base_name(layer: int, module: str) -> str:
    """The GGUF name of the base weight that `layers.{layer}.*.{module}` adapts."""
    if module not in HF_TO_GGUF:
        raise LoraFormatError(f"no GGUF name for module {module!r}")
    return f"blk.{layer}.{HF_TO_GGUF[module]}.weight"


def pairs_from_peft_state_dict(state: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group a PEFT state dict (numpy arrays) into {gguf base name: (lora_A, lora_B)}.

    Raises LoraFormatError for a key that is not a lora_A/lora_B of a known linear layer (an
    adapter on the embeddings or lm_head, say) or for an A without its B.
    """
    halves: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        m = _PEFT_KEY.search(key)
        if m is None:
            raise LoraFormatError(f"unexpected tensor in the adapter: {key!r}")
        name = gguf_base_name(int(m.group(1)), m.group(2))
        halves.setdefault(name, {})[m.group(3)] = np.asarray(value)
    pairs = {}
    for name, half in halves.items():
        if set(half) != {"A", "B"}:
            raise LoraFormatError(f"{name}: lora_A and lora_B must both be present")
        pairs[name] = (half["A"], half["B"])
    return pairs


def write_lora_gguf(
    path: str | Path,
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    alpha: float,
    architecture: str = "qwen2",
    name: str | None = None,
    dtype: type = np.float16,
) -> Path:
    """Write `pairs` ({base name: (A [rank, in], B [out, rank])}) to a GGUF LoRA file at `path`.

    Checks that every pair has a common rank and 2-D shapes; stores A and B as `dtype` (F16 by
    default, F32 allowed) in a stable order (by layer, then name). Returns the path.
    """
    import gguf  # imported here so that importing this module needs only numpy

    if dtype not in (np.float16, np.float32):
        raise LoraFormatError("dtype must be numpy.float16 or numpy.float32")
    if not pairs:
        raise LoraFormatError("no LoRA tensors to write")
    ranks = set()
    for base, (a, b) in pairs.items():
        if a.ndim != 2 or b.ndim != 2:
            raise LoraFormatError(f"{base}: lora_a and lora_b must be 2-D, got {a.shape} and {b.shape}")
        if a.shape[0] != b.shape[1]:
            raise LoraFormatError(f"{base}: rank mismatch, lora_a {a.shape} vs lora_b {b.shape}")
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            raise LoraFormatError(f"{base}: non-finite values")
        ranks.add(a.shape[0])
    if len(ranks) != 1:
        raise LoraFormatError(f"all tensors must share one rank, got {sorted(ranks)}")

    def order(base: str) -> tuple[int, str]:
        m = re.match(r"blk\.(\d+)\.(.*)", base)
        return (int(m.group(1)), m.group(2)) if m else (-1, base)

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), arch=architecture)  # writes general.architecture
    writer.add_type(gguf.GGUFType.ADAPTER)  # general.type = "adapter"
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    if name:
        writer.add_name(name)
    for base in sorted(pairs, key=order):
        a, b = pairs[base]
        writer.add_tensor(base + ".lora_a", np.ascontiguousarray(a, dtype=dtype))
        writer.add_tensor(base + ".lora_b", np.ascontiguousarray(b, dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

"""Round-trip test of gguf_lora.py: write a tiny random adapter, read it back with gguf's reader.

Plain script, no pytest: `python3 training/test_gguf_lora.py` prints one line per check and
exits non-zero on the first failure. Needs numpy and gguf (0.19.0, see requirements.txt).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf  # noqa: E402
import gguf_lora  # noqa: E402

HIDDEN, INTER, KV, RANK, LAYERS, ALPHA = 16, 40, 8, 4, 2, 8.0
# (in, out) of each adapted linear layer, as in a Qwen2 block.
DIMS = {
    "q_proj": (HIDDEN, HIDDEN),
    "k_proj": (HIDDEN, KV),
    "v_proj": (HIDDEN, KV),
    "o_proj": (HIDDEN, HIDDEN),
    "gate_proj": (HIDDEN, INTER),
    "up_proj": (HIDDEN, INTER),
    "down_proj": (INTER, HIDDEN),
}

failures = 0


def check(what: str, ok: bool, detail: str = "") -> None:
    global failures
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"))
    if not ok:
        failures += 1


def peft_state(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A state dict named the way peft's get_peft_model_state_dict names it."""
    state = {}
    for layer in range(LAYERS):
        for module, (n_in, n_out) in DIMS.items():
            group = "mlp" if module in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            prefix = f"base_model.model.model.layers.{layer}.{group}.{module}"
            state[f"{prefix}.lora_A.weight"] = rng.standard_normal((RANK, n_in)).astype(np.float32)
            state[f"{prefix}.lora_B.weight"] = rng.standard_normal((n_out, RANK)).astype(np.float32) * 0.01
    return state


def field_value(reader: gguf.GGUFReader, key: str):
    field = reader.get_field(key)
    return None if field is None else field.contents()


def main() -> int:
    rng = np.random.default_rng(0)
    state = peft_state(rng)
    pairs = gguf_lora.pairs_from_peft_state_dict(state)
    check("14 pairs from 2 layers x 7 modules", len(pairs) == LAYERS * 7, str(len(pairs)))
    check("q_proj maps to blk.0.attn_q.weight", "blk.0.attn_q.weight" in pairs, str(sorted(pairs)[:3]))
    check("o_proj maps to attn_output", "blk.1.attn_output.weight" in pairs)

    for bad, why in (
        ({"base_model.model.lm_head.lora_A.weight": np.zeros((2, 2))}, "lm_head is refused"),
        ({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.zeros((2, 2))}, "A without B is refused"),
    ):
        try:
            gguf_lora.pairs_from_peft_state_dict(bad)
            check(why, False, "no error")
        except gguf_lora.LoraFormatError:
            check(why, True)
    try:
        gguf_lora.write_lora_gguf(
            Path(tempfile.gettempdir()) / "never.gguf", {"blk.0.attn_q.weight": (np.zeros((4, 16)), np.zeros((16, 3)))}, 8.0
        )
        check("rank mismatch is refused", False, "no error")
    except gguf_lora.LoraFormatError:
        check("rank mismatch is refused", True)

    with tempfile.TemporaryDirectory() as tmp:
        path = gguf_lora.write_lora_gguf(Path(tmp) / "adapter.gguf", pairs, ALPHA, name="test adapter")
        reader = gguf.GGUFReader(str(path))

        check("general.architecture = qwen2", field_value(reader, "general.architecture") == "qwen2")
        check("general.type = adapter", field_value(reader, "general.type") == "adapter")
        check("adapter.type = lora", field_value(reader, "adapter.type") == "lora")
        alpha_field = reader.get_field("adapter.lora.alpha")
        check(
            "adapter.lora.alpha is FLOAT32 = 8.0",
            alpha_field is not None
            and alpha_field.types == [gguf.GGUFValueType.FLOAT32]
            and alpha_field.contents() == ALPHA,
            str(alpha_field and (alpha_field.types, alpha_field.contents())),
        )

        tensors = {t.name: t for t in reader.tensors}
        expected = {f"{base}.lora_{ab}" for base in pairs for ab in "ab"}
        check("tensor names are <base>.lora_a / .lora_b", set(tensors) == expected, str(set(tensors) ^ expected))
        names = [t.name for t in reader.tensors]
        layers = [int(n.split(".")[1]) for n in names]
        check("tensors ordered by layer, lora_a before its lora_b",
              layers == sorted(layers) and all(n.endswith(".lora_a") for n in names[0::2]), str(names[:4]))

        bad = 0
        for layer in range(LAYERS):
            for module, (n_in, n_out) in DIMS.items():
                base = gguf_lora.gguf_base_name(layer, module)
                a, b = tensors[base + ".lora_a"], tensors[base + ".lora_b"]
                # ggml ne order (what llama.cpp checks): a = [in, rank], b = [rank, out].
                ok_ne = list(a.shape) == [n_in, RANK] and list(b.shape) == [RANK, n_out]
                ok_type = a.tensor_type == b.tensor_type == gguf.GGMLQuantizationType.F16
                want_a, want_b = pairs[base]
                ok_data = (
                    a.data.shape == want_a.shape
                    and b.data.shape == want_b.shape
                    and np.allclose(a.data.astype(np.float32), want_a, rtol=1e-3, atol=1e-4)
                    and np.allclose(b.data.astype(np.float32), want_b, rtol=1e-3, atol=1e-6)
                )
                if not (ok_ne and ok_type and ok_data):
                    bad += 1
                    check(f"{base}: ne, F16, values", False, f"ne a={list(a.shape)} b={list(b.shape)} type={a.tensor_type}")
        check("every pair: ne a=[in,rank], b=[rank,out], F16, values round-trip", bad == 0)

    print(f"{'FAILED' if failures else 'passed'}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""LoRA fine-tuning of the runtime's Qwen2.5-Coder GGUF for text-to-SQL (issue #8).

Reads the JSONL files that `quarry finetune export` writes (one object per line: id, source,
db_id, question, prompt, completion; `prompt` is the exact ChatML text the runtime tokenises,
ending with the assistant prefix "```sql\\n"; `completion` is the gold SQL, "\\n```" and
"<|im_end|>"), trains a LoRA adapter on the completion tokens only, evaluates base vs adapter on
the held-out file, and writes into --out:

  adapter.gguf    the adapter as a GGUF LoRA that llama.cpp loads (see gguf_lora.py)
  adapter.json    the manifest: base model and data SHA-256s, counts, hyper-parameters, time,
                  GPU, skipped steps, held-out scores (base vs adapter), versions, adapter SHA-256
  train.log       this run's log
  heldout_predictions.jsonl   greedy SQL of base and adapter for each evaluated held-out example

How (settings that worked on one H100, shared/ASSETS.md):
- the base model is the Q4_K_M GGUF itself: transformers dequantises it
  (`from_pretrained(dir, gguf_file=name)`), so the adapter is trained on exactly the weights the
  runtime multiplies; the tokenizer comes from the same file;
- prompt and completion are tokenised separately and their ids concatenated, so the boundary is
  the runtime's (it tokenises the prompt, then generates); an example longer than --max-tokens is
  skipped and counted;
- LoRA on every linear layer of each block (q, k, v, o, gate, up, down), fp32 weights with bf16
  autocast, eager attention (SDPA with right-padded batches turned the loss NaN after ~130 steps),
  gradient clipping at 1.0, and a step whose loss or gradient norm is not finite is skipped and
  counted rather than applied;
- the loss is computed on completion positions only: the LM head runs on those hidden states
  alone, not on every position (the 152k-token logits are most of the memory otherwise);
- held-out evaluation: mean completion loss (token-weighted) on the whole held-out file, and
  exact match of greedy SQL (case and whitespace folded, see normalise_sql) on the first --eval-limit examples,
  for the base model (adapter disabled) and the adapter.

Example (see training/requirements.txt for the versions):
  python3 training/train_lora.py --base-gguf ~/.cache/quarry/assets/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
      --train data/train.jsonl --heldout data/heldout.jsonl --out runs/lora-0.5b
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_lora  # noqa: E402

FIELDS = ("id", "source", "db_id", "question", "prompt", "completion")
ASSISTANT_PREFIX = "```sql\n"
STOP = "```"
END = "<|im_end|>"
IGNORE = -100

_log_file = None
_t0 = time.time()


def log(msg: str) -> None:
    line = f"[{time.time() - _t0:7.1f}s] {msg}"
    print(line, flush=True)
    if _log_file is not None:
        _log_file.write(line + "\n")
        _log_file.flush()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [k for k in FIELDS if k not in row]
            if missing:
                sys.exit(f"{path}:{n}: missing field(s) {missing}")
            if not row["prompt"].endswith(ASSISTANT_PREFIX):
                sys.exit(f"{path}:{n}: prompt does not end with the assistant prefix {ASSISTANT_PREFIX!r}")
            if not row["completion"].endswith(STOP + END):
                sys.exit(f"{path}:{n}: completion does not end with {STOP + END!r}")
            rows.append(row)
    if not rows:
        sys.exit(f"{path}: no examples")
    return rows


def gold_sql(completion: str) -> str:
    return completion[: -len(STOP + END)].rstrip("\n")


def normalise_sql(sql: str) -> str:
    """Case and whitespace folded, no space next to ',', '(' or ')', no trailing ';'.

    Spider's gold SQL writes "a , b": without this, exact match mostly measures whether the
    model copies that spacing (the base model writes "a, b")."""
    sql = " ".join(sql.split()).lower().strip().rstrip(";").strip()
    return re.sub(r"\s*([,()])\s*", r"\1", sql)


def tokenize(tok, rows: list[dict], max_tokens: int, end_id: int) -> tuple[list[tuple[list[int], list[int], dict]], int]:
    """(prompt ids, completion ids, row) for each row that fits in max_tokens; and how many did not."""
    prompts = tok([r["prompt"] for r in rows], add_special_tokens=False)["input_ids"]
    completions = tok([r["completion"] for r in rows], add_special_tokens=False)["input_ids"]
    kept, skipped = [], 0
    for p, c, r in zip(prompts, completions, rows):
        if c[-1] != end_id:
            sys.exit(f"{r['id']}: the completion's last token is {c[-1]}, not <|im_end|> ({end_id}): tokenizer mismatch")
        if len(p) + len(c) > max_tokens:
            skipped += 1
            continue
        kept.append((p, c, r))
    return kept, skipped


def length_grouped_batches(lengths: list[int], batch: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices whose lengths are close (less padding), in shuffled order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch * 32
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
    rng.shuffle(batches)
    return batches


def collate(items, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, attention mask, and labels that are IGNORE outside completions."""
    width = max(len(p) + len(c) for p, c, _ in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for i, (p, c, _) in enumerate(items):
        n = len(p) + len(c)
        ids[i, :n] = torch.tensor(p + c)
        mask[i, :n] = 1
        labels[i, len(p) : n] = torch.tensor(c)
    return ids.to(device), mask.to(device), labels.to(device)


def completion_loss(lm, ids, mask, labels) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over completion tokens, and their count. `lm` is the causal LM (with
    LoRA layers injected, or not); the LM head runs only on positions that predict a label."""
    hidden = lm.model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    target = labels[:, 1:]
    keep = target != IGNORE
    logits = lm.lm_head(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, target[keep], reduction="sum"), int(keep.sum())


@torch.no_grad()
def heldout_loss(lm, items, batch: int, pad_id: int, device, amp) -> float:
    total, count = 0.0, 0
    for start in range(0, len(items), batch):
        ids, mask, labels = collate(items[start : start + batch], pad_id, device)
        with amp():
            s, n = completion_loss(lm, ids, mask, labels)
        total += float(s)
        count += n
    return total / max(count, 1)


@torch.no_grad()
def greedy_sql(model, tok, items, batch: int, max_new: int, pad_id: int, stop_ids: list[int], device, amp) -> list[str]:
    """Greedy continuation of each prompt (left-padded batches), cut at the closing fence."""
    out = []
    for start in range(0, len(items), batch):
        prompts = [p for p, _, _ in items[start : start + batch]]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        with amp():
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=False,
                max_new_tokens=max_new,
                eos_token_id=stop_ids,
                pad_token_id=pad_id,
            )
        for row in gen[:, width:].tolist():
            text = tok.decode(row, skip_special_tokens=False)
            out.append(text.split(STOP)[0].split(END)[0].split("<|endoftext|>")[0].strip())
    return out


def version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--base-gguf", type=Path, required=True, help="the runtime's Q4_K_M GGUF")
    ap.add_argument("--train", type=Path, required=True, help="train.jsonl")
    ap.add_argument("--heldout", type=Path, required=True, help="heldout.jsonl")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=float, default=0.03, help="fraction of steps of linear warm-up, then linear decay")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=1024, help="skip longer examples (prompt + completion)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-limit", type=int, default=200, help="held-out examples for greedy exact match (0: none)")
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--gen-max-tokens", type=int, default=256)
    ap.add_argument("--adapter-name", default="adapter.gguf")
    return ap.parse_args()


def main() -> None:
    global _log_file
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    _log_file = open(args.out / "train.log", "w")
    log("args: " + json.dumps({k: str(v) for k, v in vars(args).items()}))

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else None
    if gpu is None:
        log("warning: no CUDA device; this will be very slow")

    def amp():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    import peft
    import transformers
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = args.base_gguf.resolve()
    if not base.is_file():
        sys.exit(f"{base}: no such file (the runtime's GGUF, e.g. ~/.cache/quarry/assets/…q4_k_m.gguf)")
    hashes = {"base": sha256(base), "train": sha256(args.train), "heldout": sha256(args.heldout)}
    train_rows, heldout_rows = read_jsonl(args.train), read_jsonl(args.heldout)
    log(f"data: {len(train_rows)} train, {len(heldout_rows)} held-out rows; base {base.name} sha256 {hashes['base'][:16]}…")

    t = time.time()
    tok = AutoTokenizer.from_pretrained(str(base.parent), gguf_file=base.name)
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModelForCausalLM.from_pretrained(
        str(base.parent), gguf_file=base.name, attn_implementation="eager", **{dtype_kw: torch.float32}
    ).to(device)
    load_s = time.time() - t
    arch = model.config.model_type
    log(f"loaded {arch} ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M params, fp32) in {load_s:.1f}s on {gpu or 'cpu'}")

    end_id = tok.convert_tokens_to_ids(END)
    if tok(END, add_special_tokens=False)["input_ids"] != [end_id]:
        sys.exit(f"the tokenizer does not read {END} as one special token")
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")
    stop_ids = sorted({end_id, tok.convert_tokens_to_ids("<|endoftext|>")})

    train, skipped_train = tokenize(tok, train_rows, args.max_tokens, end_id)
    heldout, skipped_heldout = tokenize(tok, heldout_rows, args.max_tokens, end_id)
    log(f"tokenised: train {len(train)} kept, {skipped_train} over {args.max_tokens} tokens; held-out {len(heldout)} kept, {skipped_heldout} skipped")
    if not train:
        sys.exit("no training example fits --max-tokens")

    config = LoraConfig(
        r=args.rank,
        lora_alpha=args.alpha,
        lora_dropout=args.dropout,
        target_modules=list(gguf_lora.HF_TO_GGUF),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    lm = model.get_base_model()  # the causal LM, LoRA layers injected in place
    params = [p for p in model.parameters() if p.requires_grad]
    log(f"LoRA r={args.rank} alpha={args.alpha}: {sum(p.numel() for p in params) / 1e6:.2f}M trainable params")

    rng = random.Random(args.seed)
    lengths = [len(p) + len(c) for p, c, _ in train]
    plan = [length_grouped_batches(lengths, args.batch, rng) for _ in range(args.epochs)]
    total = sum(len(b) for b in plan)
    warm = max(1, int(args.warmup * total))
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )

    model.train()
    step, skipped_steps, losses = 0, 0, []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.time()
    for epoch, batches in enumerate(plan):
        for idx in batches:
            ids, mask, labels = collate([train[i] for i in idx], pad_id, device)
            with amp():
                loss_sum, n = completion_loss(lm, ids, mask, labels)
            loss = loss_sum / max(n, 1)
            step += 1
            # A step whose loss or gradient norm is not finite is counted and skipped, never applied.
            problem = None if torch.isfinite(loss) else "loss not finite"
            if problem is None:
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
                problem = None if torch.isfinite(norm) else f"grad norm {float(norm)}"
            if problem is None:
                opt.step()
                losses.append(loss.item())
            else:
                skipped_steps += 1
                log(f"step {step}: {problem}, step skipped")
            sched.step()
            opt.zero_grad(set_to_none=True)
            if step % 10 == 0 or step == total:
                log(f"epoch {epoch + 1} step {step}/{total} loss {np.mean(losses[-10:]):.4f} grad-norm {float(norm):.3f} lr {sched.get_last_lr()[0]:.2e}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.time() - t
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    log(f"trained {step} steps ({skipped_steps} skipped) in {train_s:.1f}s" + (f", peak GPU memory {peak_gib:.1f} GiB" if peak_gib else ""))

    # Write the adapter before the evaluation, so a failing evaluation loses nothing.
    state = {k: v.detach().float().cpu().numpy() for k, v in get_peft_model_state_dict(model).items()}
    pairs = gguf_lora.pairs_from_peft_state_dict(state)
    adapter_path = gguf_lora.write_lora_gguf(
        args.out / args.adapter_name, pairs, args.alpha, architecture=arch, name=f"quarry LoRA r{args.rank} on {base.name}"
    )
    log(f"wrote {adapter_path} ({adapter_path.stat().st_size} bytes, {2 * len(pairs)} tensors, F16)")

    model.eval()
    t = time.time()
    evaluated = heldout[: args.eval_limit]
    scores, predictions = {}, {}
    for which in ("base", "adapter"):
        ctx = model.disable_adapter() if which == "base" else contextlib.nullcontext()
        with ctx:
            loss = heldout_loss(lm, heldout, args.eval_batch, pad_id, device, amp)
            preds = greedy_sql(model, tok, evaluated, args.eval_batch, args.gen_max_tokens, pad_id, stop_ids, device, amp) if evaluated else []
        hits = [normalise_sql(p) == normalise_sql(gold_sql(r["completion"])) for p, (_, _, r) in zip(preds, evaluated)]
        scores[which] = {"heldout_loss": round(loss, 5), "exact_match": round(sum(hits) / len(hits), 4) if hits else None, "exact_matches": sum(hits)}
        predictions[which] = preds
        log(f"{which}: held-out loss {loss:.4f}, exact match {sum(hits)}/{len(hits)}")
    eval_s = time.time() - t
    with open(args.out / "heldout_predictions.jsonl", "w") as f:
        for i, (_, _, r) in enumerate(evaluated):
            f.write(json.dumps({"id": r["id"], "question": r["question"], "gold": gold_sql(r["completion"]),
                                "base": predictions["base"][i], "adapter": predictions["adapter"][i]}) + "\n")

    manifest = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "adapter": {
            "file": adapter_path.name,
            "sha256": sha256(adapter_path),
            "bytes": adapter_path.stat().st_size,
            "format": "gguf lora (llama.cpp)",
            "tensor_dtype": "F16",
            "tensors": 2 * len(pairs),
            "architecture": arch,
        },
        "base_model": {"file": base.name, "sha256": hashes["base"]},
        "data": {
            "train": {"file": args.train.name, "sha256": hashes["train"], "examples": len(train_rows), "used": len(train), "skipped_too_long": skipped_train},
            "heldout": {"file": args.heldout.name, "sha256": hashes["heldout"], "examples": len(heldout_rows), "used": len(heldout), "skipped_too_long": skipped_heldout},
            "sources": sorted({r["source"] for r in train_rows}),
        },
        "hyperparameters": {
            "rank": args.rank, "alpha": args.alpha, "dropout": args.dropout, "target_modules": list(gguf_lora.HF_TO_GGUF),
            "epochs": args.epochs, "lr": args.lr, "schedule": f"linear warm-up {warm} steps, linear decay", "batch": args.batch,
            "max_tokens": args.max_tokens, "seed": args.seed, "optimizer": "AdamW (weight decay 0)", "grad_clip": 1.0,
            "precision": "fp32 weights, bf16 autocast", "attention": "eager",
        },
        "training": {
            "gpu": gpu, "load_seconds": round(load_s, 1), "train_seconds": round(train_s, 1), "steps": step,
            "skipped_nonfinite_steps": skipped_steps, "final_loss_mean_last_10": round(float(np.mean(losses[-10:])), 5) if losses else None,
            "peak_gpu_memory_gib": round(peak_gib, 2) if peak_gib else None,
        },
        "eval": {
            "heldout_loss_examples": len(heldout), "exact_match_examples": len(evaluated),
            "exact_match": "greedy SQL vs gold after normalise_sql: case and whitespace folded, no space next to , ( ), trailing ; ignored",
            "seconds": round(eval_s, 1), "base": scores["base"], "adapter": scores["adapter"],
        },
        "versions": {
            "python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "gguf": version("gguf"), "numpy": np.__version__,
        },
    }
    (args.out / "adapter.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"wrote {args.out / 'adapter.json'}")


if __name__ == "__main__":
    main()

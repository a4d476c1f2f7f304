#!/usr/bin/env bash
# bench/gpu_check.sh - prove Fold Studio's GPU path in one prepared run: under 8 minutes on an H100 / H200.
#
#   bash bench/gpu_check.sh [OUT_DIR]          run the check; figures go to OUT_DIR
#                                              (default: $OUT when set, else artifacts/gpu-check)
#   bash bench/gpu_check.sh --fetch-wheels     (where pip reaches a package index) download into .whl/ the
#                                              packages a bare GPU machine lacks, for a machine with no network
#   bash bench/gpu_check.sh --help
#
# Steps, each under its own time cap (the whole run stops itself at GPU_CHECK_BUDGET_S, default 450 s):
#   0. CUDA or not: without a CUDA device it says so and exits with status 2 within seconds;
#   1. setup: the packages of requirements.txt that the machine's Python lacks (torch / torchvision are
#      never replaced; streamlit / plotly are not needed) come from .whl/ when it holds wheels (offline:
#      pip install --no-index --target a temporary folder), else from pip into that Python's environment;
#   2. the CUDA tests: every test that a machine without CUDA skips (bench/pytest_cuda_only.py selects
#      them by their skipif reason), with a JUnit report;
#   3. bench/gpu_train.py: resnet50, convnext_tiny, efficientnet_b0 at 224 px, bf16, channels_last, real
#      photo-like JPEGs through the decoded-image cache vs synthetic input (from scratch: no weights needed);
#   4. a 3-fold study end to end: the demo digits, resnet18 at 64 px, label smoothing 0 vs 0.1,
#      `python -m engine train` -> `analyze` -> `submit`, with its wall time;
#   5. when a timm train.py is at $TIMM_TRAIN (default .timm-src/train.py, git-ignored): bench/vs_timm.py
#      on the GPU (resnet50, 224 px, bf16), within what is left of the budget.
# Exit status: 0 when every step passed, 1 when one failed (the later ones still run), 2 without CUDA.
# Environment: PYTHON (the interpreter; default .venv/bin/python, else python3), GPU_CHECK_BUDGET_S,
# GPU_CHECK_KEEP=1 (keep the work folder: images, caches, runs), GPU_CHECK_CPU_SMOKE=1 (no CUDA: run
# every step at toy sizes on the CPU, to check the plumbing before device time is spent).
#
# Files written to OUT_DIR (8 at most, none in sub-folders): summary.md (the figures, ready for
# docs/BENCHMARKS.md), gpu_check.log (everything printed), cuda_tests.log, cuda_tests.xml,
# gpu_train.out (JSON + markdown), study_runs.json, study_analyze.txt, vs_timm.out (step 5).
#
# With this workplace's device tool (an H200 with python3 3.12 + torch + timm, no albumentations /
# pydantic / grad-cam, no network):
#   1. here, once:  bash bench/gpu_check.sh --fetch-wheels        # ~15 MB into .whl/ (git-ignored)
#      optional, for step 5: timm's train.py + timm/version.py into .timm-src/ (git-ignored), e.g. from the
#      `fetch` tool's mirror: git --git-dir=/work/.mirror/huggingface+pytorch-image-models/repo archive HEAD \
#      train.py timm/version.py | tar -x -C .timm-src     (or git clone the public repository there)
#   2. device run:  command: bash bench/gpu_check.sh "$OUT"
#                   carry:   [".whl", ".timm-src"]      timeout_s: 540
#   summary.md comes back in the run's files.
# Elsewhere (a cloud GPU with internet): `bash bench/gpu_check.sh` after `make setup`, or on a bare
# machine with torch installed: the script pip-installs what is missing.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

# Distributions a machine with torch, torchvision, numpy, scipy, pandas, pyarrow, scikit-learn, pillow,
# opencv, timm and huggingface_hub may still lack (the H200 image's case), with what they need in turn.
WHEEL_DISTS="albumentations albucore stringzilla simsimd pydantic pydantic-core annotated-types typing-inspection
typing-extensions grad-cam ttach ImageHash PyWavelets timm"
NOT_NEEDED="torch torchvision streamlit plotly"  # the machine's CUDA torch stays; the studio is not run

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"
  elif [ -x "$REPO/.venv/bin/python" ]; then echo "$REPO/.venv/bin/python"
  else command -v python3 || command -v python; fi
}
PY=$(pick_python)

# ------------------------------------------------------------------ --fetch-wheels (run where pip works)
fetch_wheels() {
  local dest="$REPO/.whl" pyver="${WHEEL_PYTHON_VERSION:-3.12}" specs
  mkdir -p "$dest"
  # Pins: requirements.txt first, else the version installed here (the tested set).
  specs=$("$PY" - $WHEEL_DISTS <<'EOF'
import re, sys
from importlib.metadata import PackageNotFoundError, version
pins = {}
for line in open("requirements.txt", encoding="utf-8"):
    line = line.split("#")[0].strip()
    if "==" in line:
        name, pin = line.split("==")
        pins[re.sub(r"[-_.]+", "-", name).lower()] = pin
for name in sys.argv[1:]:
    key = re.sub(r"[-_.]+", "-", name).lower()
    try:
        print(f"{name}=={pins.get(key) or version(name)}")
    except PackageNotFoundError:
        sys.exit(f"{name} is neither pinned in requirements.txt nor installed here: install the requirements first")
EOF
) || exit 1
  echo "downloading into .whl/ for CPython $pyver manylinux x86-64: $(echo $specs)"
  local spec
  for spec in $specs; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "$spec" 2>/dev/null \
    || "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$dest" "$spec" \
    || { echo "could not get a wheel of $spec" >&2; exit 1; }  # a pure-Python sdist (grad-cam) is built here
  done
  du -sh "$dest"
  echo "now run on the GPU machine: bash bench/gpu_check.sh \"\$OUT\"   (device tool: carry [\".whl\"], timeout_s 540)"
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --fetch-wheels) fetch_wheels; exit 0 ;;
  -*) echo "bench/gpu_check.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
esac

OUT_DIR=${1:-${OUT:-$REPO/artifacts/gpu-check}}
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}

# ------------------------------------------------------------------ 0. CUDA or not (seconds)
cuda_info=$("$PY" - 2>&1 <<'EOF'
import sys
try:
    import torch
except Exception as e:  # noqa: BLE001
    print(f"torch cannot be imported by {sys.executable}: {e}")
    sys.exit(3)
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} at {sys.executable}: torch.cuda.is_available() is False")
    sys.exit(2)
print(f"{torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA {torch.version.cuda}")
EOF
)
case $? in
  0) ;;
  3) echo "bench/gpu_check.sh: no usable torch ($cuda_info). Install the requirements (make setup) or point" \
          "PYTHON at a Python that has a CUDA build of torch." >&2; exit 2 ;;
  *) if [ "${GPU_CHECK_CPU_SMOKE:-0}" = 1 ]; then
       cuda_info="CPU smoke run, figures meaningless ($cuda_info)"
     else
       echo "bench/gpu_check.sh: no CUDA device on this machine ($cuda_info). This check proves the GPU path:" \
            "run it on a machine with an NVIDIA GPU (docs/BENCHMARKS.md, 'GPU check', gives the command)." >&2
       exit 2
     fi ;;
esac
# GPU_CHECK_CPU_SMOKE=1 on a machine without CUDA runs every step at toy sizes on the CPU: it checks the
# script's plumbing before device time is spent, nothing more.
if [ "${GPU_CHECK_CPU_SMOKE:-0}" = 1 ] && [[ $cuda_info == CPU* ]]; then
  TRAIN_ARGS=(--cpu-smoke --models test_resnet --images 64 --image-size 32 --batch-size 8 --batches 2 --repeats 1
              --workers 1 --views identity)
  STUDY_MODEL=test_resnet STUDY_SIZE=32 STUDY_EPOCHS=1 STUDY_DEVICE=cpu STUDY_WORKERS=1 STUDY_CAP_S=600
  VS_TIMM_ARGS=(--device cpu --model test_resnet --image-size 32 --batch-size 8 --workers 1 --images 160 --epochs 2)
  BUDGET_S=${GPU_CHECK_BUDGET_S:-900}
else
  # 4,096 JPEGs (16 batches of 256 per epoch; the stream loops), 2 interleaved repeats: about 2-3 minutes.
  TRAIN_ARGS=(--images 4096 --repeats 2 --batches 25)
  STUDY_MODEL=resnet18 STUDY_SIZE=64 STUDY_EPOCHS=6 STUDY_DEVICE=cuda STUDY_WORKERS=8 STUDY_CAP_S=150
  # resnet50 at 224 px, bf16, both sides fed by 8 DataLoader workers, 3 epochs over 2,048 JPEGs: about a minute.
  VS_TIMM_ARGS=(--device cuda --model resnet50 --image-size 224 --batch-size 128 --workers 8 --images 2048 --epochs 3)
fi

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fold-gpu-check.XXXXXX")
# The images, caches and workspaces (hundreds of MB) go with the script; GPU_CHECK_KEEP=1 keeps them.
[ "${GPU_CHECK_KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
STEPS="$WORK/steps.tsv"
: > "$STEPS"
exec > >(tee -a "$OUT_DIR/gpu_check.log") 2>&1
TEE_PID=$!
START=$SECONDS
FAILED=0
echo "gpu_check: $cuda_info; python $PY; work folder $WORK; figures to $OUT_DIR; budget ${BUDGET_S}s"

# Seconds a step may take: its own cap, never past the whole run's budget.
cap() { local left=$((BUDGET_S - (SECONDS - START))); echo $(( $1 < left ? $1 : left )); }

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$STEPS"; echo "== $1: $2 in $3s"; }

# run_step NAME CAP_S LOG COMMAND...: run with a time cap (timeout ends the command's whole process group),
# its output into the file LOG ('-': onto this script's output), and record status and seconds in
# steps.tsv. A shell function runs as `bash -c NAME` after `export -f NAME`.
run_step() {
  local name=$1 limit log=$3 t0 rc status
  limit=$(cap "$2"); shift 3
  if [ "$limit" -lt 15 ]; then
    record "$name" "skipped (the ${BUDGET_S}s budget is spent)" 0
    FAILED=1; return 1
  fi
  echo "== $name (at most ${limit}s)"
  t0=$SECONDS
  if [ "$log" = - ]; then timeout --kill-after=10 "$limit" "$@"; else timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1; fi
  rc=$?
  case $rc in 0) status=passed ;; 124|137) status="timed out after ${limit}s" ;; *) status="failed (exit $rc)" ;; esac
  [ $rc -eq 0 ] || FAILED=1
  record "$name" "$status" "$((SECONDS - t0))"
  return $rc
}

# ------------------------------------------------------------------ 1. setup
missing_requirements() {  # requirement lines (name==pin) whose distribution this Python lacks
  "$PY" - $NOT_NEEDED <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
skip = {n.lower() for n in sys.argv[1:]}
for line in open("requirements.txt", encoding="utf-8"):
    line = line.split("#")[0].strip()
    name = line.split("==")[0].strip()
    if not name or name.lower() in skip:
        continue
    try:
        version(name)
    except PackageNotFoundError:
        print(line)
EOF
}

setup() {
  local missing
  if compgen -G "$REPO/.whl/*.whl" > /dev/null; then
    echo "installing the carried wheels: $(cd "$REPO/.whl" && echo *.whl)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$REPO"/.whl/*.whl \
      || return 1
    export PYTHONPATH="$WORK/site:$PYTHONPATH"
  fi
  missing=$(missing_requirements)
  if [ -n "$missing" ]; then
    # Into that Python's own environment, as `pip install -r requirements.txt` would: what it already has
    # (its CUDA torch above all) satisfies the rest, so only the missing ones come.
    echo "missing here: $(echo $missing); pip-installing them into $PY's environment"
    "$PY" -m pip install -q $missing || { echo "could not install: $(echo $missing). No network? Bring them as" \
      "wheels (bash bench/gpu_check.sh --fetch-wheels where pip works, then copy .whl/ here)"; return 1; }
  fi
  missing=$(missing_requirements)
  [ -z "$missing" ] || { echo "still missing: $(echo $missing)"; return 1; }
  "$PY" -c "import engine, timm, torch, albumentations, pydantic, numpy; from importlib.metadata import version as v
print('versions:', ', '.join(f'{n} {v(n)}' for n in ('torch', 'torchvision', 'timm', 'albumentations', 'numpy', 'grad-cam')))
print('albumentations from', albumentations.__file__)"
}
# Not under `timeout`: it sets PY and PYTHONPATH for the steps after it (local wheels install in seconds).
echo "== setup"
T0=$SECONDS
if ! setup; then
  record setup failed $((SECONDS - T0))
  echo "gpu_check: setup failed; nothing else can run" >&2
  exit 1
fi
record setup passed $((SECONDS - T0))
export PY

# ------------------------------------------------------------------ 2. the CUDA tests
mapfile -t CUDA_TEST_FILES < <(grep -rlE --include='test_*.py' 'cuda' tests | sort)
run_step cuda_tests 180 "$OUT_DIR/cuda_tests.log" env PYTHONPATH="$REPO/bench:$PYTHONPATH" "$PY" -m pytest -q -rA \
  -p pytest_cuda_only -p no:cacheprovider --junitxml "$OUT_DIR/cuda_tests.xml" "${CUDA_TEST_FILES[@]}"
[ -f "$OUT_DIR/cuda_tests.log" ] && tail -n 15 "$OUT_DIR/cuda_tests.log"

# ------------------------------------------------------------------ 3. training throughput
run_step gpu_train 240 "$OUT_DIR/gpu_train.out" "$PY" bench/gpu_train.py "${TRAIN_ARGS[@]}" --out "$WORK/gpu_train"
[ -f "$OUT_DIR/gpu_train.out" ] && sed -n '/^### GPU/,$p' "$OUT_DIR/gpu_train.out"

# ------------------------------------------------------------------ 4. a 3-fold study, end to end
study() {
  local ws="$WORK/study" runs
  "$PY" -m engine demo --workspace "$ws" > /dev/null || return 1
  cat > "$WORK/study.yaml" <<EOF
format_version: 1
name: gpu-check
dataset: $ws/datasets/digits-demo/dataset.yaml
model: {name: $STUDY_MODEL}
image_size: $STUDY_SIZE
split: {k: 3, seed: 42, holdout_fraction: 0.1}
train: {epochs: $STUDY_EPOCHS, batch_size: 128, optimizer: adamw, lr: 0.003, weight_decay: 0.05, scheduler: cosine,
        warmup_epochs: 1, num_workers: $STUDY_WORKERS, mixed_precision: true}
tta_views: [identity, hflip]
device: $STUDY_DEVICE
seed: 0
vary:
  train.label_smoothing: [0.0, 0.1]
EOF
  local t0=$EPOCHREALTIME seconds
  "$PY" -m engine train "$WORK/study.yaml" --workspace "$ws" > "$WORK/study_run_ids.txt" 2> "$WORK/study_train.err" \
    || { tail -n 30 "$WORK/study_train.err"; return 1; }
  seconds=$("$PY" -c "print(round($EPOCHREALTIME - $t0, 1))")
  echo "$seconds" > "$WORK/study_seconds.txt"
  mapfile -t runs < "$WORK/study_run_ids.txt"
  echo "study: ${#runs[@]} runs x 3 folds trained and predicted in ${seconds} s"
  "$PY" -m engine runs --workspace "$ws" --json > "$OUT_DIR/study_runs.json" || return 1
  "$PY" -m engine analyze "${runs[@]}" --workspace "$ws" --resamples 200 > "$OUT_DIR/study_analyze.txt" || return 1
  "$PY" -m engine submit "${runs[@]}" --workspace "$ws" --out "$WORK/submission.csv" > /dev/null || return 1
  echo "submission: $(($(wc -l < "$WORK/submission.csv") - 1)) rows"
}
export -f study
export WORK OUT_DIR STUDY_MODEL STUDY_SIZE STUDY_EPOCHS STUDY_DEVICE STUDY_WORKERS
run_step study_3fold "$STUDY_CAP_S" - bash -c study

# ------------------------------------------------------------------ 5. timm's train.py side by side (optional)
# Runs when a timm train.py is at $TIMM_TRAIN (default .timm-src/train.py), in what is left of the budget.
TIMM_TRAIN=${TIMM_TRAIN:-$REPO/.timm-src/train.py}
if [ -f "$TIMM_TRAIN" ]; then
  run_step vs_timm 180 "$OUT_DIR/vs_timm.out" "$PY" bench/vs_timm.py --timm-train "$TIMM_TRAIN" "${VS_TIMM_ARGS[@]}" \
    --repeats 1 --out "$WORK/vs_timm"
  [ -f "$OUT_DIR/vs_timm.out" ] && sed -n '/^`python bench\/vs_timm.py/,$p' "$OUT_DIR/vs_timm.out"
else
  echo "== vs_timm: not run (no timm train.py at $TIMM_TRAIN; see the header)"
fi

# ------------------------------------------------------------------ summary.md
"$PY" - "$OUT_DIR" "$WORK" "$cuda_info" "$PY" <<'EOF'
import json, re, subprocess, sys, xml.etree.ElementTree as ET
from pathlib import Path

out, work, cuda_info, py = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = [f"## GPU check (`bash bench/gpu_check.sh`)", "", f"Device: {cuda_info}."]
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20).stdout.strip()
    lines[-1] += f" nvidia-smi: {smi}."
except (OSError, subprocess.SubprocessError):
    pass
lines += ["", "| step | result | seconds |", "|---|---|---:|"]
for row in (work / "steps.tsv").read_text().splitlines():
    name, status, seconds = row.split("\t")
    lines.append(f"| {name} | {status} | {seconds} |")
xml = out / "cuda_tests.xml"
if xml.is_file():
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    cases = [(c.get("classname", "") + "::" + c.get("name", ""),
              "failed" if c.find("failure") is not None or c.find("error") is not None
              else "skipped" if c.find("skipped") is not None else "passed") for c in suite.iter("testcase")]
    lines += ["", f"CUDA tests ({len(cases)} selected: the tests a machine without CUDA skips):", ""]
    lines += [f"- `{name}`: {state}" for name, state in cases]
train = out / "gpu_train.out"
if train.is_file() and "### GPU" in train.read_text():
    lines += ["", train.read_text().split("### GPU", 1)[1].join(["### GPU", ""]).strip()]
seconds = work / "study_seconds.txt"
runs = out / "study_runs.json"
if seconds.is_file() and runs.is_file():
    rows = json.loads(runs.read_text())
    cfg = (work / "study.yaml").read_text()
    model, size, epochs = (re.search(pattern, cfg)[1] for pattern in (r"name: (\S+)}", r"image_size: (\d+)",
                                                                       r"epochs: (\d+)"))
    lines += ["", f"3-fold study end to end (the demo digits with a 10% holdout, {model} from scratch at {size} px, "
                  f"{epochs} epochs, label smoothing 0 vs 0.1; train + OOF / holdout / test predictions with 2 TTA "
                  f"views, then `analyze` and `submit`): "
                  f"**{seconds.read_text().strip()} s** wall for {len(rows)} runs x 3 folds.", "",
              "| run | state | mean val_accuracy | mean val_loss |", "|---|---|---:|---:|"]
    for r in rows:
        acc, loss = r.get("val_accuracy"), r.get("val_loss")
        lines.append(f"| {r['run_id']} | {r['state']} | {'-' if acc is None else f'{acc:.4f}'} | "
                     f"{'-' if loss is None else f'{loss:.4f}'} |")
timm = out / "vs_timm.out"
if timm.is_file() and "`python bench/vs_timm.py" in timm.read_text():
    lines += ["", "Side by side with timm's train.py on the GPU:", "",
              "`python bench/vs_timm.py" + timm.read_text().split("`python bench/vs_timm.py", 1)[1]
              .split("\nlogs and runs kept in", 1)[0].strip()]
(out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
print("\n".join(lines))
EOF

echo "gpu_check: $([ $FAILED -eq 0 ] && echo 'every step passed' || echo 'a step FAILED') in $((SECONDS - START))s; files in $OUT_DIR"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null  # gpu_check.log complete before the caller collects it
exit $FAILED

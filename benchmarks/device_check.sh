#!/usr/bin/env bash
# One-command accelerator check: benchmarks/device_check.sh OUT_DIR
#
# On a machine with CUDA (about 5-8 minutes):
#   1. makes sure .venv has hygen and a CUDA-enabled torch: an existing .venv is used as is;
#      without one, a venv that sees the system's packages (--system-site-packages, so a
#      preinstalled CUDA torch is used) gets hygen installed editable, offline if it must;
#   2. runs the tests that exercise CUDA (they skip on a CPU-only machine);
#   3. benchmarks/env_throughput.py (CPU and CUDA) and benchmarks/train_speed.py on CUDA:
#      paper-scale HyGen updates (marine-hard, 32 episodes per map, both phases) and the
#      projected time of the full protocol (15 000 + 35 000 updates);
#   4. writes OUT_DIR/device_check.json (summary) next to each step's own JSON and log.
# Without CUDA it runs the same steps at a tiny scale on the CPU (about a minute), so the script
# itself can be checked anywhere; the summary then says "device": "cpu" and "fallback": true.
# It needs nothing but the repository (and, without a usable .venv, the packages of
# pyproject.toml already installed in the system Python).
set -uo pipefail

OUT=${1:?usage: benchmarks/device_check.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
START=$(date +%s)

# --- 1. environment --------------------------------------------------------------------------
PY=.venv/bin/python
if ! "$PY" -c "import hygen, torch, pytest" 2>/dev/null; then
    echo "[setup] no usable .venv: creating one over the system's packages" >&2
    python3 -m venv --system-site-packages .venv || exit 2
    "$PY" -m pip install -q --no-build-isolation -e ".[dev]" 2>"$OUT/setup.log" \
        || "$PY" -m pip install -q --no-build-isolation --no-deps -e . 2>>"$OUT/setup.log" \
        || { echo "[setup] failed, see $OUT/setup.log" >&2; exit 2; }
    "$PY" -c "import hygen, torch, pytest" || { echo "[setup] hygen's dependencies are missing" >&2; exit 2; }
fi
DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
"$PY" - "$OUT/environment.json" <<'EOF'
import json, platform, sys, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(f"[setup] torch {info['torch']}, CUDA {info['cuda']}, GPUs: {info['gpus'] or 'none'}")
EOF

# a step: name, time limit in seconds, command; its output goes to OUT/name.log, its exit status to the summary
declare -A RC SECONDS_TAKEN
step() {
    local name=$1 limit=$2; shift 2
    local t0=$(date +%s)
    echo "[$name] $*" >&2
    HYGEN_NO_PROGRESS=1 timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    RC[$name]=$?
    SECONDS_TAKEN[$name]=$(( $(date +%s) - t0 ))
    tail -n 25 "$OUT/$name.log"
    echo "[$name] exit ${RC[$name]} after ${SECONDS_TAKEN[$name]} s" >&2
}

# --- 2. the tests that touch CUDA --------------------------------------------------------------
CUDA_TESTS=(tests/test_samplers.py tests/test_seed.py tests/test_episode_batch.py)
step tests 180 "$PY" -m pytest -q -rs -p no:cacheprovider "${CUDA_TESTS[@]}"

# --- 3. benchmarks -----------------------------------------------------------------------------
if [ "$DEVICE" = cuda ]; then
    step env_throughput 180 "$PY" benchmarks/env_throughput.py --envs 1 64 512 4096 --repeats 2 \
        --out "$OUT/env_throughput.json"
    step train_speed 300 "$PY" benchmarks/train_speed.py --device cuda --repeats 5 \
        --out "$OUT/train_speed.json"
else  # CPU fallback: the same scripts at a tiny scale, to check that they run and write JSON
    step env_throughput 60 "$PY" benchmarks/env_throughput.py --maps 3m --envs 1 64 --seconds 0.3 \
        --repeats 1 --out "$OUT/env_throughput.json"
    step train_speed 120 "$PY" benchmarks/train_speed.py --device cpu --batch-size 2 --repeats 1 \
        --lengths realistic --out "$OUT/train_speed.json"
fi

# --- 4. summary --------------------------------------------------------------------------------
"$PY" - "$OUT" "$DEVICE" "$(( $(date +%s) - START ))" \
    "tests=${RC[tests]}:${SECONDS_TAKEN[tests]}" \
    "env_throughput=${RC[env_throughput]}:${SECONDS_TAKEN[env_throughput]}" \
    "train_speed=${RC[train_speed]}:${SECONDS_TAKEN[train_speed]}" <<'EOF'
import json, re, sys
from pathlib import Path

out, device, total = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
steps = {}
for arg in sys.argv[4:]:
    name, rest = arg.split("=")
    rc, secs = rest.split(":")
    steps[name] = {"exit": int(rc), "seconds": int(secs), "log": f"{name}.log"}
log = (out / "tests.log").read_text()
for key in ("passed", "failed", "skipped", "error"):
    m = re.search(rf"(\d+) {key}", log)
    steps["tests"][key] = int(m.group(1)) if m else 0
summary = {"device": device, "fallback": device != "cuda", "total_seconds": total, "steps": steps,
           "environment": json.loads((out / "environment.json").read_text())}
for name in ("env_throughput", "train_speed"):
    p = out / f"{name}.json"
    summary[name] = json.loads(p.read_text()) if p.is_file() else None
ts = summary["train_speed"]
if ts:
    summary["seconds_per_update"] = {f"{r['phase']} ({r['lengths']})": r["seconds_median"] for r in ts["rows"]}
    summary["projected_protocol_hours"] = {k: v["hours"] for k, v in ts.get("projection", {}).items()}
(out / "device_check.json").write_text(json.dumps(summary, indent=2) + "\n")
ok = all(s["exit"] == 0 for s in steps.values())
print(f"device check on {device}{' (CPU fallback: no CUDA here)' if device != 'cuda' else ''}: "
      f"{'all steps passed' if ok else 'FAILED steps: ' + ', '.join(k for k, s in steps.items() if s['exit'])}; "
      f"{total} s; wrote {out / 'device_check.json'}")
if device == "cuda":
    for k, v in summary.get("projected_protocol_hours", {}).items():
        print(f"  projected full protocol ({k} lengths): {v:.1f} h")
else:
    print("  (tiny CPU-scale run: it checks the script, its numbers project nothing)")
sys.exit(0 if ok else 1)
EOF

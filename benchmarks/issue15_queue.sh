#!/usr/bin/env bash
# Issue 15's whole queue on one game, one resumable command: the Table-2 sweep, then
# the explanation sweeps (a)-(f) of docs/experiments.md, then their report. Every step skips
# finished cells and resumes the others from their newest checkpoint, so after a kill or at the
# start of the next working session the same command continues where the queue stopped.
#
#   CODE=/work/sweep_var DATA=/work/data/smac_var SCRIPTED=/work/data/scripted_var_easy GAME=varied \
#   OUT=/work/runs bash benchmarks/issue15_queue.sh [--dry-run]
#
# GAME: the configs/envs/ file every cell plays (default: varied, the game the protocol names).
# CODE: a frozen worktree of the revision the Table-2 sweep started on. The explanation sweeps
#   compare against Table 2's seeds 0-2 of HyGen and offline-only, so they must run the same code.
# DATA: the QMIX data root (every source map of marine-hard); SCRIPTED: scripted marine-easy data
#   made in the same game (`hygen collect --task-set marine_easy --policy heuristic`).
# --dry-run: list the explanation sweeps' cells and their state, run nothing (Table 2's cells:
#   reproduce.py's own output, or `hygen sweep --out $OUT/table2_$GAME/cpu_table2 --dry-run`).
# DATA, OUT: absolute paths (the script changes into CODE).
set -euo pipefail
: "${CODE:?set CODE to the frozen worktree}" "${DATA:?set DATA to the QMIX data root}"
: "${SCRIPTED:?set SCRIPTED to the scripted marine-easy data root}" "${OUT:?set OUT to the runs root}"
GAME="${GAME:-varied}"
DRY=()
[[ "${1:-}" == "--dry-run" ]] && DRY=(--dry-run)
PY="${PYTHON:-$(command -v python)}"
cd "$CODE"
export PYTHONPATH="$CODE" OMP_NUM_THREADS=1
# each step runs in the background and the script waits on it, so a SIGTERM to the script (not
# only to its process group) reaches the step, which stops its cells and saves nothing half-way
child=""
trap '[[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null; wait; exit 143' TERM INT
run() { echo "=== $(date -u '+%F %T') $*"; nice -n 3 "$PY" "$@" & child=$!; wait "$child"; child=""; }

# Table 2 (docs/experiments.md, "Table 2 on the varied game")
T2OUT="$OUT/table2_$GAME"
if [[ ${#DRY[@]} -eq 0 ]]; then
  run benchmarks/reproduce.py --scale cpu_table2 --methods table2 --seeds 0 1 2 3 4 --gin_file "envs/$GAME" \
      --data-root "$DATA" --workers 2 --out "$T2OUT" --table "$T2OUT/results.md" --results-json "$T2OUT/results.json"
fi

# The explanation sweeps: Table 2's files, 3 seeds; only the variants run (Table 2 holds the baselines)
T2=(--task-set marine_hard --gin_file data/medium --gin_file scales/cpu_table2 --gin_file "envs/$GAME"
    --seeds 0 1 2 --workers 2 --gin_param "DATA_ROOT = '$DATA'")
H=methods/hygen,runs/hybrid
O=methods/hygen,runs/hybrid,ablations/no_online
X="$OUT/explain_$GAME"
sweep() { run -m hygen.cli sweep "$@" "${DRY[@]}"; }
# (a) exploration rule; value setup (ODIS's mixed gap term)
sweep --out "$X/a_explore" --config "HyGen=$H" "${T2[@]}" \
    --grid "HyGenLearner.exploration = ['@EpsilonActions()', '@EpsilonSkillsSampledActions()']"
sweep --out "$X/a_value" --config "HyGen=$H" --config "offline-only=$O" "${T2[@]}" \
    --grid "HyGenLearner.conservative = ['@ODISGapLoss()']"
# (b) cloning strength: conservative weight 0.5 (Table 2: 5)
sweep --out "$X/b_weight" --config "offline-only=$O" --config "HyGen-fixed-cql=$H,ablations/fixed_cql" "${T2[@]}" \
    --grid "MixedCQLLoss.weight = [0.5]"
# (d) the BC-t ceiling at the same budget and data
sweep --out "$X/d_bc_t" --config "BC-t=methods/bc_t,runs/offline" "${T2[@]}"
# (e) phase-1 length (Table 2: 600; the policy phase stays 1400 steps)
sweep --out "$X/e_skill_steps" --config "HyGen=$H" "${T2[@]}" --grid "SKILL_STEPS = [200, 1200]"
# (f) encoder window (Table 2: 1)
sweep --out "$X/f_window" --config "HyGen=$H" --config "offline-only=$O" "${T2[@]}" \
    --grid "AttentionTrajectoryEncoder.window = [8]"
# (c) winnable source maps: marine-easy on scripted data (last: its own baselines, other data)
sweep --out "$X/c_marine_easy" --config "HyGen=$H" --config "offline-only=$O" --task-set marine_easy \
    --gin_file data/medium --gin_file scales/cpu_table2 --gin_file "envs/$GAME" --seeds 0 1 2 --workers 2 \
    --gin_param "DATA_ROOT = '$SCRIPTED'"

if [[ ${#DRY[@]} -eq 0 ]]; then
  run -m hygen.cli report "$T2OUT/cpu_table2" "$X"/{a_explore,a_value,b_weight,d_bc_t,e_skill_steps,f_window,c_marine_easy} \
      --reference HyGen --out "$X/report"
fi

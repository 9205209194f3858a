#!/usr/bin/env bash
# The recipe of the shipped base model: build synthetic spectra of the three training
# proteomes (in parallel), pretrain under the shipped noise model, calibrate, evaluate on a
# held-out proteome (and real spectra), and write the model card. Its defaults are the GPU
# recipe: one GPU with 16 cores, bf16 and a large batch for a bounded wall time. The CPU
# base model is the same recipe with other settings (its model card gives them).
#
#   benchmarks/gpu_pretrain.sh OUT_DIR
#
# Settings (environment variables, defaults in brackets):
#   DEVICE [cuda]          cpu runs the same recipe on the CPU (the test does, tiny)
#   MINUTES [8]            wall-time bound of the training itself; empty: none
#   STEPS [20000]          steps of the schedule (training stops earlier at MINUTES)
#   BATCH [512]            spectra per step
#   LEARNING_RATE [0.002]
#   WARMUP [STEPS/40+1]    warm-up steps
#   EVAL_EVERY [STEPS/10+1], SNAPSHOT_EVERY [0: none]  evaluation and kept snapshots
#   SEED [1]
#   SIZE [default]         named model size (src/trm/model/config.py)
#   INIT []                start from these weights (trm pretrain --init, e.g. the shipped
#                          model.pt: a GPU continuation of the shipped lineage); empty: random
#   DRAFTS [0.8]           share of each batch that starts from a draft, the rest blank
#                          (trm pretrain --draft-fraction; the long CPU run uses 0.5)
#   GRAPH_DRAFTS [0.5]     share of the drafts that are the spectrum graph's best path
#                          (trm pretrain --graph-draft-fraction)
#   RANKING [0]            share of each batch whose graph candidates the model also learns
#                          to rank against the true peptide (trm pretrain --rank-fraction)
#   RANK_GRAPH_SCORE [false]  rank by the model's score plus the graph's
#                          (trm pretrain --rank-graph-score)
#   TEACHER_FORCING [true where RANKING > 0]  calibrate (and so evaluate) the hybrid
#                          decoder's choice by teacher forcing (trm calibrate
#                          --teacher-forcing), what a model trained to rank serves
#   PEPTIDE_MIX [resources/peptide_mix/orbitrap_hcd.yaml]
#                          peptide mix YAML (trm peptide-mix): spectra drawn with its
#                          lengths, charges and missed cleavages; "none": uniform
#   MIX_SHARE [0.6]        share of the spectra drawn from the mix, the rest uniformly
#   N_SPECTRA [1000000]    synthetic spectra (train/validation/test by peptide)
#   THREADS [16]           CPU threads for MS2PIP and data preparation
#   HELDOUT_SPECTRA [2000] synthetic spectra of the held-out proteome for evaluation
#   DEV_SPLIT []           folder from benchmarks/dev_data.py: real-spectrum evaluation
#   TRAINING_FASTA, HELDOUT_FASTA   the proteomes (default: resources/fasta/, three to
#                          train on, Synechocystis held out)
# Everything it writes lands in OUT_DIR: data/, model/ (checkpoint, metrics.csv,
# calibrated model, evaluation.json) and MODEL_CARD.md.
set -euo pipefail
OUT=${1:?usage: benchmarks/gpu_pretrain.sh OUT_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES-8}
STEPS=${STEPS:-20000}
BATCH=${BATCH:-512}
LEARNING_RATE=${LEARNING_RATE:-0.002}
WARMUP=${WARMUP:-$((STEPS / 40 + 1))}
EVAL_EVERY=${EVAL_EVERY:-$((STEPS / 10 + 1))}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-0}
SEED=${SEED:-1}
SIZE=${SIZE:-default}
INIT=${INIT:-}
DRAFTS=${DRAFTS:-0.8}
GRAPH_DRAFTS=${GRAPH_DRAFTS:-0.5}
RANKING=${RANKING:-0}
RANK_GRAPH_SCORE=${RANK_GRAPH_SCORE:-false}
if awk "BEGIN {exit !($RANKING > 0)}"; then DEFAULT_FORCING=true; else DEFAULT_FORCING=false; fi
TEACHER_FORCING=${TEACHER_FORCING:-$DEFAULT_FORCING}
FORCING=()
if [ "$TEACHER_FORCING" = true ]; then FORCING=(--teacher-forcing); fi
STARTING=()
if [ -n "$INIT" ]; then STARTING=(--init "$INIT"); fi
PEPTIDE_MIX=${PEPTIDE_MIX:-resources/peptide_mix/orbitrap_hcd.yaml}
MIX_SHARE=${MIX_SHARE:-0.6}
MIX=()
if [ "$PEPTIDE_MIX" != none ]; then MIX=(--peptide-mix "$PEPTIDE_MIX" --mix-share "$MIX_SHARE"); fi
N_SPECTRA=${N_SPECTRA:-1000000}
THREADS=${THREADS:-16}
HELDOUT_SPECTRA=${HELDOUT_SPECTRA:-2000}
PYTHON=${PYTHON:-python}
FASTA="$ROOT/resources/fasta"
TRAINING=${TRAINING_FASTA:-"$FASTA/UP000002311-S.cerevisiae.fasta.gz $FASTA/UP000008066-C.thermophilum.fasta.gz $FASTA/UP000008524-T.brucei.fasta.gz"}
HELDOUT=${HELDOUT_FASTA:-"$FASTA/UP000001425-Synechocystis.fasta.gz"}
INSTRUMENT="$ROOT/config/instruments/orbitrap_hcd.yaml"
NOISE="$ROOT/resources/noise/orbitrap_hcd.yaml"
mkdir -p "$OUT/data" "$OUT/model"
cd "$ROOT"

# shellcheck disable=SC2086  # the FASTA lists are word lists on purpose
[ -f "$OUT/data/train/manifest.json" ] || $PYTHON -m trm synthetic --fasta $TRAINING \
  --instrument "$INSTRUMENT" --ms2pip-model-dir resources/ms2pip --out "$OUT/data/train" \
  --n-spectra "$N_SPECTRA" --seed 1 --threads "$THREADS" "${MIX[@]}"
# shellcheck disable=SC2086
[ -f "$OUT/data/heldout/manifest.json" ] || $PYTHON -m trm synthetic --fasta "$HELDOUT" \
  --exclude-fasta $TRAINING --instrument "$INSTRUMENT" --ms2pip-model-dir resources/ms2pip \
  --out "$OUT/data/heldout" --split-fractions 0 0 1 --n-spectra "$HELDOUT_SPECTRA" --seed 1 \
  --threads "$THREADS"

LIMIT=()
if [ -n "$MINUTES" ]; then LIMIT=(--max-minutes "$MINUTES"); fi
$PYTHON -m trm pretrain --train-dir "$OUT/data/train/train" \
  --validation-dir "$OUT/data/train/validation" --checkpoint "$OUT/model/pretrained.pt" \
  --metrics "$OUT/model/metrics.csv" --model-config "$SIZE" --steps "$STEPS" \
  --batch-size "$BATCH" --learning-rate "$LEARNING_RATE" --warmup-steps "$WARMUP" \
  --eval-every "$EVAL_EVERY" --eval-spectra 1024 --checkpoint-every 500 \
  --snapshot-every "$SNAPSHOT_EVERY" --seed "$SEED" --noise-model "$NOISE" \
  --draft-fraction "$DRAFTS" --graph-draft-fraction "$GRAPH_DRAFTS" --rank-fraction "$RANKING" \
  --rank-graph-score "$RANK_GRAPH_SCORE" \
  --instrument "$INSTRUMENT" --device "$DEVICE" --threads "$THREADS" "${LIMIT[@]}" \
  "${STARTING[@]}" --resume

$PYTHON -m trm calibrate --model "$OUT/model/pretrained.pt" \
  --validation-dir "$OUT/data/train/validation" --noise-model "$NOISE" \
  --instrument "$INSTRUMENT" --out "$OUT/model/model.pt" --report "$OUT/model/calibration.json" \
  --max-spectra 1000 --halt-threshold none --device "$DEVICE" --threads "$THREADS" \
  "${FORCING[@]}"

EVALUATE=(--model "$OUT/model/model.pt" --instrument "$INSTRUMENT"
  --heldout-shards "$OUT/data/heldout/test" --noise-model "$NOISE" --n-synthetic 500
  --modes beam search search+rescore --threads "$THREADS" --out "$OUT/model/evaluation.json")
if [ -n "${DEV_SPLIT:-}" ]; then EVALUATE+=(--dev-split "$DEV_SPLIT" --dev-part holdout); fi
$PYTHON benchmarks/evaluate_model.py "${EVALUATE[@]}"

$PYTHON benchmarks/model_card.py --checkpoint "$OUT/model/pretrained.pt" \
  --synthetic "$OUT/data/train" --evaluation "$OUT/model/evaluation.json" \
  --curve "$OUT/model/metrics.csv" \
  --command "DEVICE=$DEVICE MINUTES=$MINUTES STEPS=$STEPS BATCH=$BATCH LEARNING_RATE=$LEARNING_RATE WARMUP=$WARMUP SIZE=$SIZE N_SPECTRA=$N_SPECTRA SEED=$SEED THREADS=$THREADS ${INIT:+INIT=$INIT }DRAFTS=$DRAFTS GRAPH_DRAFTS=$GRAPH_DRAFTS RANKING=$RANKING RANK_GRAPH_SCORE=$RANK_GRAPH_SCORE TEACHER_FORCING=$TEACHER_FORCING PEPTIDE_MIX=$PEPTIDE_MIX MIX_SHARE=$MIX_SHARE${DEV_SPLIT:+ DEV_SPLIT=dev-split} benchmarks/gpu_pretrain.sh OUT" \
  --out "$OUT/MODEL_CARD.md"
echo "done: $OUT/MODEL_CARD.md"

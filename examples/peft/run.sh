#!/usr/bin/env bash
# The PEFT workflow end to end on CPU: train the quickstart base model (if its checkpoint is not
# there yet), tune it with each PEFT method on examples/peft (40 training, 12 validation examples
# of "reverse the words" with no instruction), and print the validation loss of the frozen base
# against each tuned adapter. From the repository root:
#   bash examples/peft/run.sh
# FT_TRAIN (default build/bin/ft_train) and RUNS (default runs) may be set. A method whose output
# folder already exists is not retrained: its recorded metrics are reported.
set -euo pipefail
cd "$(dirname "$0")/../.."
FT_TRAIN=${FT_TRAIN:-build/bin/ft_train}
RUNS=${RUNS:-runs}
base="$RUNS/quickstart/checkpoints/step_00000400.h5"
if [ ! -f "$base" ]; then
  echo "== training the base model (examples/quickstart/run.yaml)"
  "$FT_TRAIN" --config examples/quickstart/run.yaml "output_dir=$RUNS/quickstart"
fi

# valid_loss of the first and last evaluation in a run's metrics.jsonl
valid_loss() {
  grep -o '"valid_loss":[-0-9.e+]*' "$1/metrics.jsonl" | sed 's/.*://' | sed -n "$2"
}
trainable() {
  grep -o 'parameters [0-9,]* trainable of [0-9,]* ([0-9.e+-]*%)' "$1/train.log" | head -1
}

for method in prompt_tuning prefix_tuning p_tuning lora; do
  out="$RUNS/peft-$method"
  if [ -d "$out" ]; then
    echo "== $method: $out exists, reporting its results (remove it to train again)"
    continue
  fi
  echo "== $method"
  mkdir -p "$out"
  "$FT_TRAIN" --config "examples/peft/$method.yaml" "model.init_from=$base" "output_dir=$out" \
    2>&1 | tee "$out/train.log"
done

# LoRA starts exactly at the base (B = 0), so its first evaluation is the frozen base's loss.
echo
echo "validation loss on examples/peft/valid.jsonl (12 held-out examples):"
printf '%-14s %-11s %s\n' method "valid loss" "trainable parameters"
printf '%-14s %-11.4f %s\n' "frozen base" "$(valid_loss "$RUNS/peft-lora" 1p)" "-"
for method in prompt_tuning prefix_tuning p_tuning lora; do
  out="$RUNS/peft-$method"
  printf '%-14s %-11.4f %s\n' "$method" "$(valid_loss "$out" '$p')" \
    "$(trainable "$out" | sed 's/parameters //; s/ trainable//')"
done

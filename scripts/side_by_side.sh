#!/usr/bin/env bash
# The README's side-by-side table: each family of hf_encdec against transformers' own model of the same size, with
# the same script (examples/run_*.py), data (the machine's manual pages; git's gettext messages), tokenizer and steps.
# Every run is a separate folder under OUT; the table is printed at the end (python examples/side_by_side_table.py OUT).
#   bash scripts/side_by_side.sh [OUT] [MAIN_RUN]    # OUT defaults to runs/side-by-side; MAIN_RUN (a run folder of
#                                                    # scripts/main.sh) adds the domain-adaptation rows
# Steps per run (env): MLM_STEPS=2000 CLS_STEPS=300 CLM_STEPS=1000 ADAPT_STEPS=300; about 100 minutes with one seed
# (2 AMD EPYC cores, 2026-11-28).
# Seeds (env, space-separated): CLS_SEEDS="42" CLM_SEEDS="42"; a seed other than 42 writes NAME-seedN, and the table
# gives the mean and spread over a line's seeds. The MLM runs use seed 42 (BERT's alone took 19.9 min there).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_VERBOSITY=warning TOKENIZERS_PARALLELISM=false
out=${1:-runs/side-by-side}
main_run=${2:-}
py=.venv/bin/python
mkdir -p "$out"
common=(--report_to none --save_strategy no --seed 42 --logging_steps 50 --dataloader_num_workers 0)
done_run() { [ -f "$1/all_results.json" ]; }  # a finished run is not repeated
suffix() { [ "$1" = 42 ] || echo "-seed$1"; }

# 1. masked LM on the manual pages: our encoder and BERT (d128, 4 layers; one WordPiece tokenizer, trained by the first)
block="hidden_size=128,num_hidden_layers=4,num_attention_heads=4,intermediate_size=512,max_position_embeddings=128"
mlm=(--dataset_name manpages --max_seq_length 128 --do_train --do_eval --do_predict --max_eval_samples 400
     --max_predict_samples 400 --max_steps "${MLM_STEPS:-2000}" --per_device_train_batch_size 16 --learning_rate 5e-4
     --warmup_steps 60 "${common[@]}")
done_run "$out/mlm-ours" || $py examples/run_mlm.py --model_type hf_encdec_encoder --config_overrides "$block" \
    --tokenizer_type wordpiece "${mlm[@]}" --output_dir "$out/mlm-ours"
done_run "$out/mlm-bert" || $py examples/run_mlm.py --model_type bert --config_overrides "$block" \
    --tokenizer_name "$out/mlm-ours" "${mlm[@]}" --output_dir "$out/mlm-bert"

# 2. manual-page sections from a page's first 128 tokens: fine-tuned from the MLM run vs from scratch
cls=(--dataset_name manpages-sections --max_seq_length 128 --do_train --do_eval --do_predict
     --max_steps "${CLS_STEPS:-300}" --per_device_train_batch_size 16 --learning_rate 3e-4 --warmup_steps 20
     "${common[@]}")
for seed in ${CLS_SEEDS:-42}; do
    sfx=$(suffix "$seed")
    done_run "$out/cls-ours-pretrained$sfx" || $py examples/run_classification.py --model_name_or_path "$out/mlm-ours" \
        "${cls[@]}" --seed "$seed" --output_dir "$out/cls-ours-pretrained$sfx"
    done_run "$out/cls-ours-scratch$sfx" || $py examples/run_classification.py --model_type hf_encdec_encoder \
        --config_overrides "$block" --tokenizer_name "$out/mlm-ours" "${cls[@]}" --seed "$seed" \
        --output_dir "$out/cls-ours-scratch$sfx"
    done_run "$out/cls-bert-pretrained$sfx" || $py examples/run_classification.py --model_name_or_path "$out/mlm-bert" \
        "${cls[@]}" --seed "$seed" --output_dir "$out/cls-bert-pretrained$sfx"
    done_run "$out/cls-bert-scratch$sfx" || $py examples/run_classification.py --model_type bert \
        --config_overrides "$block" --tokenizer_name "$out/mlm-ours" "${cls[@]}" --seed "$seed" \
        --output_dir "$out/cls-bert-scratch$sfx"
done

# 3. causal LM on the manual pages: our decoder as GPT-2 and as Llama, against GPT-2 and Llama (d128, 4 layers, BPE)
clm=(--dataset_name manpages --block_size 128 --do_train --do_eval --do_predict --max_eval_samples 400
     --max_predict_samples 400 --max_steps "${CLM_STEPS:-1000}" --per_device_train_batch_size 16 --learning_rate 1e-3
     --warmup_steps 30 "${common[@]}")
# Each pair computes the same function (tests/models/test_transformers_parity.py): ours takes GPT-2's tanh GELU and
# the stock LlamaConfig's RoPE theta and RMSNorm epsilon here.
gpt="hidden_size=128,num_hidden_layers=4,num_attention_heads=4,max_position_embeddings=128"
llama="hidden_size=128,num_hidden_layers=4,num_attention_heads=4,num_key_value_heads=1,intermediate_size=384,max_position_embeddings=128"
[ -f "$out/clm-ours-gpt2/tokenizer.json" ] || $py examples/run_clm.py --model_type hf_encdec_decoder \
    --config_overrides "$gpt,intermediate_size=512,hidden_act=gelu_new" "${clm[@]}" --output_dir "$out/clm-ours-gpt2"
for seed in ${CLM_SEEDS:-42}; do
    sfx=$(suffix "$seed")
    done_run "$out/clm-ours-gpt2$sfx" || $py examples/run_clm.py --model_type hf_encdec_decoder \
        --config_overrides "$gpt,intermediate_size=512,hidden_act=gelu_new" --tokenizer_name "$out/clm-ours-gpt2" \
        "${clm[@]}" --seed "$seed" --output_dir "$out/clm-ours-gpt2$sfx"
    done_run "$out/clm-gpt2$sfx" || $py examples/run_clm.py --model_type gpt2 --config_overrides "$gpt" \
        --tokenizer_name "$out/clm-ours-gpt2" "${clm[@]}" --seed "$seed" --output_dir "$out/clm-gpt2$sfx"
    done_run "$out/clm-ours-llama$sfx" || $py examples/run_clm.py --preset decoder-small-llama \
        --config_overrides "$llama,rope_theta=10000.0,layer_norm_eps=1e-6" --tokenizer_name "$out/clm-ours-gpt2" \
        "${clm[@]}" --seed "$seed" --output_dir "$out/clm-ours-llama$sfx"
    done_run "$out/clm-llama$sfx" || $py examples/run_clm.py --model_type llama --config_overrides "$llama" \
        --tokenizer_name "$out/clm-ours-gpt2" "${clm[@]}" --seed "$seed" --output_dir "$out/clm-llama$sfx"
done

# 4. domain adaptation of the main job's model: git's messages, half to fine-tune on, the other half to test
if [ -n "$main_run" ]; then
    adapt=(--model_name_or_path "$main_run" --dataset_name gettext:de --dataset_package git --do_predict
           --predict_with_generate --max_predict_samples 1000 --per_device_eval_batch_size 32 "${common[@]}")
    done_run "$out/adapt-before" || $py examples/run_translation.py "${adapt[@]}" --output_dir "$out/adapt-before"
    done_run "$out/adapt-after" || $py examples/run_translation.py "${adapt[@]}" --do_train \
        --max_steps "${ADAPT_STEPS:-300}" --per_device_train_batch_size 32 --learning_rate 1e-4 --warmup_steps 30 \
        --output_dir "$out/adapt-after"
fi
$py examples/side_by_side_table.py "$out"

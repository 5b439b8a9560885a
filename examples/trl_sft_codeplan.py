#!/usr/bin/env python3
"""TRL SFTTrainer on rows written by `codeplan export`, with the LoRA and
optimizer settings of `codeplan finetune`'s defaults, so the two trainings are
comparable.

    codeplan export --input plans.jsonl --output train.jsonl --to prompt-completion \\
        --mode codeplan --val-split 0.05                # also writes train.val.jsonl
    python examples/trl_sft_codeplan.py --model meta-llama/Meta-Llama-3-8B-Instruct \\
        --train train.jsonl --val train.val.jsonl --output out/codeplan-lora
    codeplan lora import out/codeplan-lora --base base-f16.gguf --output codeplan-lora.gguf --mode codeplan

The prompt-completion layout makes SFTTrainer score the completion (the
assistant turn, plan and response, plus the chat template's end-of-turn
marker) and not the prompt: exactly the tokens codeplan finetune scores.
A --to messages file works too (pass --messages); TRL then needs a chat
template with generation markers for assistant-only loss.
"""
import argparse

from datasets import load_dataset
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

# codeplan finetune's defaults (codeplan finetune --help).
RANK, ALPHA = 8, 16
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LR, WARMUP, SCHEDULE, EPOCHS = 1e-4, 0.05, "cosine", 2
CTX, SEED, MAX_GRAD_NORM, WEIGHT_DECAY = 512, 42, 1.0, 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Hugging Face base model (id or folder, e.g. from codeplan model export-hf)")
    ap.add_argument("--train", required=True, help="codeplan export output (JSONL)")
    ap.add_argument("--val", help="held-out rows (codeplan export --val-split)")
    ap.add_argument("--output", required=True, help="folder for the PEFT adapter")
    ap.add_argument("--messages", action="store_true", help="the files use --to messages (assistant-only loss needs generation markers in the chat template)")
    args = ap.parse_args()

    files = {"train": args.train}
    if args.val:
        files["validation"] = args.val
    data = load_dataset("json", data_files=files)
    data = data.remove_columns(["id"])

    peft_config = LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS,
        bias="none", use_rslora=False, task_type="CAUSAL_LM",
    )
    config = SFTConfig(
        output_dir=args.output,
        num_train_epochs=EPOCHS,
        learning_rate=LR,
        lr_scheduler_type=SCHEDULE,
        warmup_ratio=WARMUP,
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=MAX_GRAD_NORM,
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
        seed=SEED,
        max_length=CTX,                   # --ctx 512: longer rows lose the end of their target
        packing=True,                     # finetune packs rows into 512-token passes
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        completion_only_loss=None if args.messages else True,
        assistant_only_loss=args.messages,
        eval_strategy="epoch" if args.val else "no",
        save_strategy="no",
        bf16=True,
        logging_steps=10,
        report_to=[],
    )
    trainer = SFTTrainer(
        model=args.model,
        args=config,
        train_dataset=data["train"],
        eval_dataset=data.get("validation"),
        peft_config=peft_config,
    )
    trainer.train()
    # adapter_config.json + adapter_model.safetensors: what codeplan lora import reads.
    trainer.model.save_pretrained(args.output, safe_serialization=True)


if __name__ == "__main__":
    main()

resume=(); [ -f model.ckpt.gguf ] && resume=(--resume)
./codeplan finetune init.gguf --full --data DATA/train.jsonl --out model.gguf --mode direct --format trained   --epochs 1 --lr 3e-4 --warmup 0.05 --schedule constant --weight-decay 0.1 --ctx 384 --batch 384 --seed 42 --threads 1 --checkpoint-every 50 "${resume[@]}"
./codeplan eval model.gguf --bench DATA/val.jsonl --modes direct --format trained --temperature 0   --max-plan-tokens 256 --max-tokens 128 --parallel 32 --ctx 24576 --threads 1 --out eval
./codeplan compare --input DATA/val.jsonl --output . --train DATA/train.jsonl --tokenizer docs/mini/tokenizer direct=eval

#!/usr/bin/env python3
"""gpu-check-peft.py: codeplan against transformers + peft (issue 22).

Called by scripts/gpu-check.sh (its "PEFT" block); also runs on its own.

  compare:  loads the folders `codeplan model export-hf` and `codeplan lora
            export` wrote with transformers and peft, and compares the
            next-token logits on codeplan's own tokens (from `codeplan model
            logits`, base and with the adapter) with codeplan's. Passes when
            the max absolute difference is below --tol (1e-3, F32).
            When the model folder has a tokenizer.json, the prompt is also
            tokenized by transformers and must give codeplan's token ids.
  timing:   --time-model DIR times --time-steps LoRA steps (forward, backward,
            AdamW) of peft + transformers at the given rank, targets,
            sequence length and batch of one row, after one untimed warm-up
            step, and reports tokens/s.

Writes a JSON report to --report. Exit status: 0 pass, 1 a check failed,
3 torch/transformers/peft missing (the caller reports the step as skipped).
"""
import argparse
import json
import os
import sys
import time


def load_json(path):
    with open(path) as f:
        return json.load(f)


def max_abs(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def next_logits(model, torch, tokens, device):
    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    with torch.no_grad():
        out = model(input_ids=ids)
    return out.logits[0, -1].float().cpu().tolist()


def compare(args, torch, transformers, peft, report):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Full F32: no TF32 matrix products, eager attention.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.hf, torch_dtype=torch.float32, attn_implementation="eager").to(device).eval()
    ok = True
    base = load_json(args.ours_base)
    tokens = base["tokens"]
    theirs = next_logits(model, torch, tokens, device)
    if len(theirs) != len(base["logits"]):
        report["compare_error"] = "vocabulary sizes differ: transformers %d, codeplan %d" % (len(theirs), len(base["logits"]))
        return False
    d = max_abs(theirs, base["logits"])
    report["base_max_abs_diff"] = d
    report["tokens"] = len(tokens)
    report["device"] = device
    ok &= d < args.tol
    theirs_lora = None
    if args.ours_lora:
        lora = load_json(args.ours_lora)
        if lora["tokens"] != tokens:
            report["compare_error"] = "the two logits files were made from different tokens"
            return False
        adapted = peft.PeftModel.from_pretrained(model, args.peft).to(device).eval()
        theirs_lora = next_logits(adapted, torch, tokens, device)
        dl = max_abs(theirs_lora, lora["logits"])
        report["lora_max_abs_diff"] = dl
        # The adapter must move the logits, or the comparison proves nothing.
        report["lora_effect"] = max_abs(lora["logits"], base["logits"])
        ok &= dl < args.tol and report["lora_effect"] > 10 * args.tol
    # codeplan's GPU logits (--gpu), when given, must agree as well.
    for key, path, adapter in (("gpu_base_max_abs_diff", args.ours_gpu_base, False), ("gpu_lora_max_abs_diff", args.ours_gpu_lora, True)):
        if not path or (adapter and theirs_lora is None):
            continue
        ours = load_json(path)
        if ours["tokens"] != tokens:
            report["compare_error"] = "%s was made from other tokens" % path
            return False
        want = theirs_lora if adapter else theirs
        report[key] = max_abs(want, ours["logits"])
        ok &= report[key] < args.tol
    tok_file = os.path.join(args.hf, "tokenizer.json")
    if args.prompt is not None and os.path.exists(tok_file):
        tok = transformers.AutoTokenizer.from_pretrained(args.hf)
        ids = tok(args.prompt)["input_ids"]
        report["tokenizer_matches"] = ids == tokens
        if ids != tokens:
            report["tokenizer_ids"] = ids[:64]
        ok &= ids == tokens
    else:
        report["tokenizer_matches"] = None
    report["tol"] = args.tol
    return ok


def timing(args, torch, transformers, peft, report):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t0 = time.time()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.time_model, torch_dtype=dtype, attn_implementation="sdpa").to(device)
    report["timing_load_s"] = round(time.time() - t0, 2)
    vocab = model.config.vocab_size
    config = peft.LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.0, bias="none",
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                             task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(42)

    def step():
        ids = torch.randint(0, vocab, (1, args.seq), generator=gen).to(device)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.item()

    step()  # warm-up: kernels, allocator
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()
    for _ in range(args.time_steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    secs = time.time() - t0
    report.update({
        "timing_steps": args.time_steps, "timing_seq": args.seq, "timing_rank": args.rank, "timing_dtype": str(dtype),
        "timing_s": round(secs, 3), "timing_tokens_per_s": round(args.time_steps * args.seq / secs, 1),
        "timing_device": device,
    })
    if device == "cuda":
        report["timing_peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf", help="folder of codeplan model export-hf")
    ap.add_argument("--peft", help="folder of codeplan lora export")
    ap.add_argument("--ours-base", help="codeplan model logits output for the base model")
    ap.add_argument("--ours-lora", help="codeplan model logits output with --lora")
    ap.add_argument("--ours-gpu-base", help="the same as --ours-base, computed with --gpu")
    ap.add_argument("--ours-gpu-lora", help="the same as --ours-lora, computed with --gpu (needs --ours-lora)")
    ap.add_argument("--prompt", help="the prompt codeplan tokenized (checks tokenizer.json when present)")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--time-model", help="export-hf folder of the model to time LoRA steps on")
    ap.add_argument("--time-steps", type=int, default=20)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--report", required=True, help="JSON report to write")
    args = ap.parse_args()
    if not args.time_model and not (args.hf and args.ours_base):
        ap.error("give --hf and --ours-base (compare), --time-model (timing), or both")

    report = {}
    try:
        import torch
        import transformers
        import peft
    except ImportError as e:
        report["skipped"] = "python has no %s" % (e.name or e)
        with open(args.report, "w") as f:
            json.dump(report, f, indent=2)
        print("gpu-check-peft: skipped:", report["skipped"], file=sys.stderr)
        return 3
    report["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    ok = True
    try:
        if args.hf and args.ours_base:
            ok &= compare(args, torch, transformers, peft, report)
        if args.time_model:
            ok &= timing(args, torch, transformers, peft, report)
    except Exception as e:  # report, do not hide: the caller prints the message
        report["error"] = "%s: %s" % (type(e).__name__, e)
        ok = False
    report["pass"] = bool(ok)
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Run by tests/test_vllm_cpu.py in its own process (vLLM's colocate mode sets up torch.distributed in the
process that trains): an online trainer with TRL's colocated vLLM on a CPU, a few steps on SmolLM2 at a high
learning rate, then a check that the engine samples from the *trained* weights.

After training, the final weights are synced once more and vLLM scores its own greedy continuation of a
prompt; the same tokens are scored by transformers with the trained model and with the untouched base. The
engine has the trained weights when its log-probs match the trained model's far better than the base's.
Prints one JSON line.

usage: python tests/colocate_check.py METHOD MODEL_DIR DATA_JSONL OUT_DIR [--lora]
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def _teacher_forced(model, prompt_ids, completion_ids):
    from negtune.losses.logps import token_logps

    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[:, len(prompt_ids) - 1:-1]
    return token_logps(logits, torch.tensor([completion_ids]))[0][0]


def main(method: str, model_dir: str, data: str, out: str, lora: bool) -> None:
    from peft import LoraConfig
    from vllm import SamplingParams

    from negtune.trainers import build_online_trainer, prompt_dataset

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompts = prompt_dataset(data, template="qwen-math-cot", limit=8)
    peft = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM") if lora else None
    trainer = build_online_trainer(
        method, model, prompts, tok, verifier="numeric", peft_config=peft, output_dir=out, max_steps=2,
        per_device_train_batch_size=4, num_generations=4, updates_per_generation=1, max_completion_length=32, learning_rate=2e-3 if lora else 2e-4,
        logging_steps=1, save_strategy="no", use_cpu=True, bf16=False, report_to="none", disable_tqdm=True,
        use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.2, vllm_max_model_length=512,
        seed=0, **({} if method in ("grpo", "dr_grpo") else {"dynamic_sampling": False}))
    trainer.train()
    generation = trainer.vllm_generation
    generation.sync_weights()  # the final weights (TRL syncs before each generation round)

    text = tok.apply_chat_template(prompts[0]["prompt"], add_generation_prompt=True, tokenize=False)
    prompt_ids = tok(text, add_special_tokens=False).input_ids
    params = SamplingParams(temperature=0.0, max_tokens=24, logprobs=0)
    result = generation.llm.generate([{"prompt_token_ids": prompt_ids}], params, use_tqdm=False)[0].outputs[0]
    completion = list(result.token_ids)
    vllm_lp = torch.tensor([lp[t].logprob for lp, t in zip(result.logprobs, completion)])

    trained = trainer.model.merge_and_unload() if lora else trainer.model
    trained_lp = _teacher_forced(trained.eval(), prompt_ids, completion)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    base_lp = _teacher_forced(base, prompt_ids, completion)
    from negtune.trainers.vllm_sync import close_colocated_vllm

    print(json.dumps({
        "vllm_dtype": str(generation.llm.llm_engine.model_config.dtype),
        "cpu_sync": bool(getattr(generation, "_negtune_cpu_sync", False)),
        "steps": trainer.state.global_step,
        "diff_trained": float((vllm_lp - trained_lp).abs().max()),
        "diff_base": float((vllm_lp - base_lp).abs().max()),
        "trained_vs_base": float((trained_lp - base_lp).abs().max()),
        "tokens": len(completion),
    }), flush=True)
    close_colocated_vllm(trainer)


if __name__ == "__main__":
    main(*sys.argv[1:5], lora="--lora" in sys.argv[5:])

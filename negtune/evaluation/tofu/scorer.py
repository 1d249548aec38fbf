"""Scoring one model on one TOFU eval set: batched answer NLLs (every answer of a batch of questions in one
forward pass) and batched greedy generations (left padding)."""

from __future__ import annotations

import numpy as np
import torch

from negtune.data.io import DataError
from negtune.evaluation.tofu.metrics import normalized_probability, rouge_l_recall, truth_ratio

# Prompt templates: "chat" = the tokenizer's own chat template (fallback: the plain question).
TEMPLATES = {
    "llama2": "[INST] {question} [/INST]",
    "llama3": "<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "qa": "Question: {question}\nAnswer:",
    "none": "{question}\n",
}


class TofuScorer:
    """Prompt encoding, batched answer NLLs and batched greedy generation for one model."""

    def __init__(self, model, tokenizer, template: str = "chat", system_prompt: str | None = None,
                 batch_size: int = 8, max_new_tokens: int = 200, generation_batch_size: int = 32):
        if template != "chat" and "{question}" not in TEMPLATES.get(template, template):
            raise DataError(f"--template {template!r}: expected chat, {', '.join(TEMPLATES)} or a string "
                            "containing '{question}'")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.system_prompt, self.batch_size, self.max_new_tokens = system_prompt, batch_size, max_new_tokens
        self.generation_batch_size = generation_batch_size

    def prompt_ids(self, question: str) -> list[int]:
        from negtune.data.prompts import render_chat

        if self.template == "chat":
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            return render_chat(self.tokenizer, messages + [{"role": "user", "content": question}])
        text = TEMPLATES.get(self.template, self.template).replace("{question}", question)
        return self.tokenizer(text)["input_ids"]  # with the tokenizer's BOS, as the model saw in training

    def answer_ids(self, answer: str) -> list[int]:
        ids = self.tokenizer((" " if self.template == "llama2" else "") + answer, add_special_tokens=False)
        ids = ids["input_ids"]
        eos = self.tokenizer.eos_token_id
        return ids + ([eos] if eos is not None else [])

    @torch.no_grad()
    def mean_nll(self, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
        """Mean token NLL of each answer given its prompt, all ``pairs`` in one right-padded forward pass."""
        from negtune.losses.logps import target_logits, token_logps

        device = next(self.model.parameters()).device
        width = max(len(p) + len(a) for p, a in pairs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(pairs), width), pad, dtype=torch.long)
        labels = torch.full((len(pairs), width), -100, dtype=torch.long)
        attention = torch.zeros((len(pairs), width), dtype=torch.long)
        for i, (p, a) in enumerate(pairs):
            seq = p + a
            ids[i, : len(seq)] = torch.tensor(seq)
            labels[i, len(p) : len(seq)] = torch.tensor(a)
            attention[i, : len(seq)] = 1
        was_training = self.model.training
        self.model.eval()
        try:
            labels = labels.to(device)
            logits, cols = target_logits(self.model, ids.to(device), attention.to(device), labels)
            logps, mask = token_logps(logits, labels[:, cols])
        finally:
            self.model.train(was_training)
        return (-logps.sum(-1) / mask.sum(-1).clamp(min=1)).tolist()

    def greedy(self, questions: list[str]) -> list[str]:
        return self.greedy_ids([self.prompt_ids(q) for q in questions])

    def greedy_ids(self, prompts: list[list[int]]) -> list[str]:
        """Greedy answers to already-encoded prompts, batched with left padding."""
        from negtune.rollout.engines import HFEngine, SamplingConfig

        engine = HFEngine(self.model, self.tokenizer, batch_size=self.generation_batch_size)
        sampling = SamplingConfig(n=1, temperature=0.0, max_new_tokens=self.max_new_tokens)
        return [g[0].text.strip() for g in engine.generate_ids(prompts, sampling)]


def score_split(scorer: TofuScorer, rows: list[dict], split: str, progress=None) -> dict[str, list]:
    """Per-example probability, ROUGE-L recall and truth ratio (+ the NLLs behind them) on one eval set."""
    has_para = split in ("forget", "retain")
    answer_nll, para_nll, pert_nll = [], [], []
    prompts = [scorer.prompt_ids(r["question"]) for r in rows]  # encoded once: for the NLLs and for generation
    for start in range(0, len(rows), scorer.batch_size):
        batch = rows[start : start + scorer.batch_size]
        pairs, spans = [], []
        for row, prompt in zip(batch, prompts[start : start + scorer.batch_size]):
            answers = [row["answer"], *([row["paraphrased_answer"]] if has_para else []), *row["perturbed_answer"]]
            spans.append(len(answers))
            pairs += [(prompt, scorer.answer_ids(a)) for a in answers]
        nll = scorer.mean_nll(pairs)  # every answer of the batch in one forward pass
        k = 0
        for span in spans:
            answer_nll.append(nll[k])
            if has_para:
                para_nll.append(nll[k + 1])
            pert_nll.append(nll[k + 1 + has_para : k + span])
            k += span
        if progress:
            progress(len(batch))
    generations = scorer.greedy_ids(prompts)
    if progress:
        progress(0)
    if has_para:
        prob = np.exp(-np.asarray(answer_nll)).tolist()
        tr = truth_ratio(para_nll, pert_nll).tolist()
    else:
        prob = normalized_probability(answer_nll, pert_nll).tolist()
        tr = truth_ratio(answer_nll, pert_nll).tolist()
    return {"question": [r["question"] for r in rows], "prob": prob,
            "rouge": rouge_l_recall(generations, [r["answer"] for r in rows]), "truth_ratio": tr,
            "generation": generations, "answer_nll": answer_nll, "paraphrased_nll": para_nll or None,
            "perturbed_nll": pert_nll}

"""Scoring one model on one TOFU eval set: batched answer NLLs (every answer of a batch of questions in one
forward pass, each question + answer tokenized together as TOFU does) and batched greedy generations (left
padding)."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from negtune.data.io import DataError
from negtune.data.prompts import PINNED_DATE, as_chat, encode_text_completion, render_prompt_text
from negtune.evaluation.tofu.metrics import normalized_probability, rouge_l_recall, truth_ratio

# Prompt templates: "chat" = the tokenizer's own chat template (fallback: the plain question). The others are
# TOFU's own formats (its config/model_config.yaml: llama2-7b "[INST] " + q + " [/INST]" + answer; phi, stablelm,
# pythia "Question: " + q + "\n" + "Answer: " + answer), the answer appended to the prompt text as there.
TEMPLATES = {
    "llama2": "[INST] {question} [/INST]",
    "llama3": "<|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "qa": "Question: {question}\nAnswer: ",
    "none": "{question}\n",
}
# The conversation whose rendering fingerprints a run's prompt format (see TofuScorer.template_fingerprint).
PROBE = ("Who wrote the book 'Probe'?", "It was written by Jane Probe.")


class TofuScorer:
    """Prompt encoding, batched answer NLLs and batched greedy generation for one model.

    Question and answer are tokenized together and the question's tokens masked
    (:func:`negtune.data.prompts.encode_text_completion`, TOFU's and open-unlearning's convention, also every
    trainer's); ``max_length`` truncates question + answer as TOFU's eval does (200 there; default None: no
    truncation, as open-unlearning's chat-template path, which no TOFU answer comes near).
    """

    def __init__(self, model, tokenizer, template: str = "chat", system_prompt: str | None = None,
                 batch_size: int = 8, max_new_tokens: int = 200, generation_batch_size: int = 32,
                 date: str = PINNED_DATE, max_length: int | None = None):
        if template != "chat" and "{question}" not in TEMPLATES.get(template, template):
            raise DataError(f"--template {template!r}: expected chat, {', '.join(TEMPLATES)} or a string "
                            "containing '{question}'")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.system_prompt, self.batch_size, self.max_new_tokens = system_prompt, batch_size, max_new_tokens
        self.generation_batch_size, self.date, self.max_length = generation_batch_size, date, max_length

    def prompt_text(self, question: str) -> tuple[str, bool]:
        """(prompt text, add_special_tokens): the chat template (with the system prompt and the pinned date), or
        the template string, which is tokenized with the tokenizer's BOS, as the model saw it in training."""
        if self.template == "chat":
            return render_prompt_text(self.tokenizer, as_chat(question, self.system_prompt), self.date)
        return TEMPLATES.get(self.template, self.template).replace("{question}", question), True

    def prompt_ids(self, question: str) -> list[int]:
        text, special = self.prompt_text(question)
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def encode(self, question: str, answer: str) -> tuple[list[int], list[int]]:
        """(input_ids, labels) of question + answer (+ EOS), tokenized together, the question's tokens masked."""
        text, special = self.prompt_text(question)
        return encode_text_completion(self.tokenizer, text, answer, self.max_length, add_special_tokens=special)

    def template_fingerprint(self) -> tuple[str, str]:
        """(fingerprint, probe text): sha256 of the :data:`PROBE` question and answer as this scorer renders
        them (template, system prompt, pinned date, BOS), so two eval logs can be checked to share a prompt format."""
        text, special = self.prompt_text(PROBE[0])
        rendered = text + PROBE[1]
        return hashlib.sha256(f"{special}\0{rendered}".encode()).hexdigest()[:16], rendered

    @torch.no_grad()
    def sequence_nll(self, encoded: list[tuple[list[int], list[int]]]) -> list[float]:
        """Mean NLL of the labeled tokens of each (input_ids, labels), all in one right-padded forward pass."""
        from negtune.losses.logps import target_logits, token_logps

        empty = next((i for i, (_, labels) in enumerate(encoded) if all(t == -100 for t in labels)), None)
        if empty is not None:
            seq = self.tokenizer.decode(encoded[empty][0])
            raise DataError(f"TOFU eval: no answer token left to score in {seq!r}: " + (
                f"--max-length {self.max_length} is filled by the question; raise it (TOFU's eval uses 200)"
                if self.max_length is not None else "the answer is empty or merged into the question's last token"))
        device = next(self.model.parameters()).device
        width = max(len(ids) for ids, _ in encoded)
        ids = torch.full((len(encoded), width), self.tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(encoded), width), -100, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, (seq, lab) in enumerate(encoded):
            ids[i, : len(seq)] = torch.tensor(seq)
            labels[i, : len(lab)] = torch.tensor(lab)
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
    for start in range(0, len(rows), scorer.batch_size):
        batch = rows[start : start + scorer.batch_size]
        pairs, spans = [], []
        for row in batch:
            answers = [row["answer"], *([row["paraphrased_answer"]] if has_para else []), *row["perturbed_answer"]]
            spans.append(len(answers))
            pairs += [scorer.encode(row["question"], a) for a in answers]
        nll = scorer.sequence_nll(pairs)  # every answer of the batch in one forward pass
        k = 0
        for span in spans:
            answer_nll.append(nll[k])
            if has_para:
                para_nll.append(nll[k + 1])
            pert_nll.append(nll[k + 1 + has_para : k + span])
            k += span
        if progress:
            progress(len(batch))
    generations = scorer.greedy_ids([scorer.prompt_ids(r["question"]) for r in rows])
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

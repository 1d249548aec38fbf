"""Prompt/answer encoding as the references do it (TOFU's data_module.convert_raw_data_to_model_format,
open-unlearning's preprocess_chat_instance: question + answer tokenized together, labels masked by the question's
token count), on a tokenizer that merges across the boundary; and prompts that never depend on the clock."""

from datetime import datetime

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from negtune.data.prompts import PINNED_DATE, encode_prompt_completion, render_chat, render_prompt_text
from negtune.evaluation.tofu import TofuScorer, score_split

# The generation prompt ends with a space; GPT-2-style pre-tokenization glues that space to the answer's first
# word (" The"), so prompt and answer tokenized apart give other tokens than tokenized together.
QA_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n{% else %}Question: "
               "{{ m['content'] }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}Answer: {% endif %}")
QUESTION, ANSWER = "Who wrote Tide?", "The author of Tide is Ana Sol."


@pytest.fixture(scope="module")
def tok():
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    texts = [f"Question: Who wrote {b}?\nAnswer: The author of {b} is Ana Sol." for b in ("Tide", "Rain", "Moss")] * 20
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<eos>", "<pad>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<pad>")
    fast.chat_template = QA_TEMPLATE
    return fast


def reference(tok, prompt_text: str, answer: str, max_length=None, special=False):
    """What TOFU/open-unlearning do: tokenize together, mask the first len(tokenize(prompt)) labels; EOS after
    the answer unless truncation removed the end."""
    n_question = len(tok(prompt_text, add_special_tokens=special)["input_ids"])
    ids = tok(prompt_text + answer, add_special_tokens=special)["input_ids"] + [tok.eos_token_id]
    labels = [-100] * n_question + ids[n_question:]
    return (ids[:max_length], labels[:max_length]) if max_length else (ids, labels)


def test_the_boundary_merges_with_this_tokenizer(tok):
    text, _ = render_prompt_text(tok, [{"role": "user", "content": QUESTION}])
    assert text.endswith("Answer: ")
    n = len(tok(text)["input_ids"])
    apart = tok(text)["input_ids"] + tok(ANSWER)["input_ids"]
    together = tok(text + ANSWER)["input_ids"]
    # apart: ..., ":", " " | "T", "he", ...; together: ..., ":", " The", ...
    assert tok.convert_ids_to_tokens(apart[n - 1 : n + 2]) == ["Ġ", "T", "he"]
    assert tok.convert_ids_to_tokens(together[n - 1 : n + 1]) == ["ĠThe", "Ġauthor"]


def test_encode_prompt_completion_tokenizes_together_and_masks_by_the_prompt_length(tok):
    ids, labels = encode_prompt_completion(tok, QUESTION, ANSWER)
    text, _ = render_prompt_text(tok, [{"role": "user", "content": QUESTION}])
    assert (ids, labels) == reference(tok, text, ANSWER)
    old_ids = render_chat(tok, [{"role": "user", "content": QUESTION}]) + tok(ANSWER)["input_ids"] + [tok.eos_token_id]
    assert ids != old_ids  # negtune's earlier encoding (apart, concatenated) scored other tokens
    # the merged " The" sits at the prompt's last position, so it is masked, as in the references
    n_prompt = len(tok(text)["input_ids"])
    assert labels[n_prompt - 1] == -100 and labels[n_prompt] != -100
    assert tok.decode([t for t in labels if t != -100]) == " author of Tide is Ana Sol.<eos>"
    # truncation keeps the prompt and cuts the tail, EOS first; a system prompt renders first
    assert encode_prompt_completion(tok, QUESTION, ANSWER, max_length=len(ids) - 1) == (ids[:-1], labels[:-1])
    sys_ids, sys_labels = encode_prompt_completion(tok, QUESTION, ANSWER, system_prompt="Be brief.")
    assert tok.decode(sys_ids).startswith("Be brief.\nQuestion: ")


@pytest.mark.parametrize("template", ["chat", "qa", "llama2"])
def test_tofu_scorer_encodes_and_scores_like_the_reference(tok, template):
    from negtune.models.tiny import build_model

    model = build_model(tok).eval()
    scorer = TofuScorer(model, tok, template=template, batch_size=4, max_new_tokens=2)
    text, special = scorer.prompt_text(QUESTION)
    assert scorer.encode(QUESTION, ANSWER) == reference(tok, text, ANSWER, special=special)
    # TOFU's own eval truncates question + answer at 200 tokens: the option, here at 12
    short = TofuScorer(model, tok, template=template, max_length=12)
    assert short.encode(QUESTION, ANSWER) == reference(tok, text, ANSWER, 12, special)
    # the eval scores exactly those sequences (its NLLs, hence probabilities and truth ratios)
    row = {"question": QUESTION, "answer": ANSWER, "paraphrased_answer": "The author is Ana Sol.",
           "perturbed_answer": ["The author of Tide is Bo Rain.", "The author of Tide is Cy Moss."]}
    values = score_split(scorer, [row], "forget")
    want = scorer.sequence_nll([reference(tok, text, a, special=special)
                                for a in (row["answer"], row["paraphrased_answer"], *row["perturbed_answer"])])
    assert [values["answer_nll"][0], values["paraphrased_nll"][0], *values["perturbed_nll"][0]] == pytest.approx(want)
    if template != "llama2":  # (its prompt ends in "]": nothing to merge)
        prompt = scorer.prompt_ids(QUESTION)  # the old convention: tokenized apart and concatenated
        answer = tok(ANSWER, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        apart = scorer.sequence_nll([(prompt + answer, [-100] * len(prompt) + answer)])
        assert apart[0] != pytest.approx(values["answer_nll"][0])


def test_a_max_length_the_question_fills_is_refused(tok):
    from negtune.data.io import DataError
    from negtune.models.tiny import build_model

    scorer = TofuScorer(build_model(tok).eval(), tok, template="qa", max_length=4)
    with pytest.raises(DataError, match="--max-length 4 is filled by the question"):
        score_split(scorer, [{"question": QUESTION, "answer": ANSWER, "perturbed_answer": ["No."]}], "world_facts")


class _Clock(datetime):
    day = datetime(2030, 1, 1)

    @classmethod
    def now(cls, tz=None):
        return cls.day


# Llama-3.x's header logic: date_string when given, else the clock; plus a bare strftime_now call
CLOCK_TEMPLATE = ("{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
                  "Today Date: {{ date_string }} ({{ strftime_now(\"%Y-%m-%d\") }})\n"
                  "{% for m in messages %}{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}A: {% endif %}")


def test_prompts_never_depend_on_the_clock(tok, monkeypatch):
    import transformers.utils.chat_template_utils as ctu

    monkeypatch.setattr(ctu, "datetime", _Clock)
    monkeypatch.setattr(tok, "chat_template", CLOCK_TEMPLATE)
    messages = [{"role": "user", "content": QUESTION}]
    raw, pinned, fingerprints = [], [], []
    for day in (datetime(2030, 1, 1), datetime(2031, 6, 15)):
        monkeypatch.setattr(_Clock, "day", day)
        raw.append(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        pinned.append(render_prompt_text(tok, messages)[0])
        fingerprints.append(TofuScorer(None, tok).template_fingerprint())
    assert raw[0] != raw[1]  # the mocked clock does reach the template
    assert pinned[0] == pinned[1] == f"Today Date: {PINNED_DATE} (2025-04-10)\n{QUESTION}\nA: "
    assert fingerprints[0] == fingerprints[1]
    assert render_chat(tok, messages) == tok(pinned[0], add_special_tokens=False)["input_ids"]
    assert "01 Feb 2024" in render_prompt_text(tok, messages, date="01 Feb 2024")[0]
    with pytest.raises(ValueError, match="expected a date like '10 Apr 2025'"):
        render_prompt_text(tok, messages, date="2024-02-01")

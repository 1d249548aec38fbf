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

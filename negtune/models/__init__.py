"""Model loading (Hugging Face + PEFT adapters) and the embedded tiny model."""

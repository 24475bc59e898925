"""LoRA fine-tuning of the reply generator and its export to GGUF for the llama.cpp runtime."""

"""model-catalog: one catalog entry per model seen anywhere (pure merge and Hugging Face parsing so far)."""

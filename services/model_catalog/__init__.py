"""model-catalog: one catalog entry per model seen anywhere, enriched from the Hugging Face API."""

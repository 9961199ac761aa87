"""Development-only helpers: tiny random checkpoints, synthetic samples and the demo. Nothing in the extractor imports them."""

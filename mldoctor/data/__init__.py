"""Reference data kept as data, not code (DCGM keeps its per-SKU targets the same way): see gpus.json."""

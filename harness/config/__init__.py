"""A run's configuration: the TOML file (`run_config`), scorers (`scorers`), prices (`prices`)
and LoRA adapters (`adapters`), all typed, validated and frozen.
"""

"""A run's configuration: the TOML file (`run_config`), its models (`models`), scorers
(`scorers`), prices (`prices`) and LoRA adapters (`adapters`), all typed, validated and frozen.
"""

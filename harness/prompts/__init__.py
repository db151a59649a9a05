"""Prompt sets: where they are (`sources`), their rows (`readers`, `hub_cache`), rows as prompts
(`load`, `template`), and which prompts a run takes (`selection`).
"""

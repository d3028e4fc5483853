"""COME-Repro: reference reproduction of COME (collaborative MoE for universal ultrasound lesion detection)."""
__version__ = "0.1.0"

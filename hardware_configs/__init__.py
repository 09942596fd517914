"""Chip profiles (TOML data files, one per chip) read by ``slipsnn.toolchain.profiles``."""

"""Lava processes and process models of slipsnn (this folder holds only process code: Lava imports every module here while compiling)."""

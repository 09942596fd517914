"""slipsnn's Lava processes and their models, alone in this folder: Lava's compiler imports every module beside a process to find its models."""

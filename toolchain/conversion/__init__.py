"""Conversion: torch model → float spiking network (``lower``, ``trace``) → Loihi integers (``quantize``),
with the 24-bit overflow proof (``overflow``) and the pre-training check (``check``)."""

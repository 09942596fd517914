"""Conversion: torch model → float spiking network (``lower``, ``trace``) → Loihi integers (``quantize``).

Calling the package, ``slipsnn.toolchain.convert(model, input_shape, timesteps, ...)``, is the one-call
``pipeline.convert_model`` (see ``slipsnn.toolchain.ConvertPackage``).
"""

import sys

from .. import ConvertPackage

sys.modules[__name__].__class__ = ConvertPackage

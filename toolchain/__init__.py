"""slipsnn toolchain: SlipReLU ANNs → integer spiking networks → Lava / Loihi 2, with cost reports."""

__version__ = "0.1.0"

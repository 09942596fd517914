"""Torch kernels over IR synapses: applying a synapse, and exact connectivity counts."""

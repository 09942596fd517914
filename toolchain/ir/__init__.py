"""The intermediate representations (numpy only): format limits, the integer network, the float network,
and the pure neuron steps every backend shares."""

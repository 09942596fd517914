"""Writers and readers of the integer network's file formats (netx HDF5)."""

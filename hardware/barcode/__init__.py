"""Fixed-mount barcode readers on a serial port (the part's serial when the PLC does not give it)."""

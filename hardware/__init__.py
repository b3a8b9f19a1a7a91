"""Drivers for the inspection cell's devices and the virtual cell that stands in for them.

Never imports Qt or torch: the station core and headless tools depend on this package.
"""

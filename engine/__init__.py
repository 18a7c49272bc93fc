"""The sparse-backprop engine: update schemes compiled against any torch module into lean training plans.

Model-agnostic; knows nothing of keyboards.
"""

"""The sparse-backprop engine: update schemes compiled against any torch module into lean training plans.

Model-agnostic: a model describes its own stages and trainable-tensor layout (`engine.staged`), and the engine reads
only that description. It knows nothing of keyboards, nor of any model's parameter names.
"""

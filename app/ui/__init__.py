"""The desktop window (PySide6): it only shows the headless parts' state and forwards what the user does."""
import importlib

# torch before PySide6: PySide6 replaces `__import__` with its feature hook, and torch's ~1,100 modules imported
# through that hook hold about 40 MiB more memory (bench footprint)
importlib.import_module("torch")

"""Typing: what a word is, and the keystroke path keystroke → context → search → combine → suggestions.

`words` splits the text before the cursor; `predictor` searches known words with the model and combines its sources.
"""

"""Package data the window needs at run time: its style sheet and the demo text it can replay.

Read through `importlib.resources`, so a non-editable install finds them.
"""

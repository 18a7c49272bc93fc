"""What the keyboard keeps on disk: the typing history, the personal model file, and the store that ties them.

Every write is atomic; nothing read back is unpickled.
"""

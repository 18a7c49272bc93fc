"""Learning while typing: committed text → learner → plan step → guard → publish.

`modes` is the one registry of update modes; the learner cuts windows, steps the engine's plan, and judges each step.
"""

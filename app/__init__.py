"""The product: predictor, history, learner, store, command line and the Qt user interface (app/ui).

Everything outside app/ui runs headless.
"""

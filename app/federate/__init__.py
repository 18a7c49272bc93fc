"""Federated learning of the shared base on Flower: each device learns its user's text with the product's learner
and uploads only a sparse delta; the server averages the deltas into a new base (`pocketkb federate`).
"""

"""Helpers shared by process.py, train.py and predict.py."""

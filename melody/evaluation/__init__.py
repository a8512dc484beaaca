"""Evaluation of trained models and their melodies, one module per analysis; report.py ties them
into evaluate.py's report."""

"""The melody library: the encoding, the models, datasets, training, generation and evaluation.

The scripts in the repository root (preprocess.py, train.py, melodygenerator.py, evaluate.py,
app.py) are thin command lines over it.
"""

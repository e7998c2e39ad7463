"""The pieces of ``python -m bench.train`` (``bench/train.py``), one concern per module:

- ``rows``: the chat examples (lengths from a clipped log-normal), a pure function of the seed;
- ``model``: the model under test (tiny, or a random-init Llama of a real shape) made trainable;
- ``probes``: device sync, CPU pressure and a process's RSS peak;
- ``runs``: the recipe and baseline steps on one shared model, timed in alternation, and the
  loss/gradient agreement check;
- ``report``: the result document and the printed table.
"""

"""The pieces of ``python -m bench.train`` (``bench/train.py``), one concern per module:

- ``rows``: the chat examples (lengths from a clipped log-normal, or all of one length), a pure
  function of the seed;
- ``model``: the model under test (tiny, SmolLM2-135M when on disk, or a random-init Llama of a
  real shape), the memory plan for it, made trainable;
- ``previous``: the trainer's loss before the chunked one (commit 9d80a30), the ``previous`` run;
- ``probes``: device sync, CPU pressure and a process's RSS peak;
- ``runs``: the recipe, previous and naive steps on one shared model, timed in alternation, and
  the loss/gradient agreement check;
- ``report``: the result document and the printed table.
"""

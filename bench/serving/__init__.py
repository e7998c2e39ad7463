"""The pieces of ``python -m bench.serve`` (``bench/serve.py``), one concern per module:

- ``workload``: the model names, the prompt and the request every arm sends;
- ``loadgen``: the client process that sends the load, and its typed ``Sample`` records;
- ``upstream``: an upstream that answers at once (what is left is the gateway's own cost);
- ``metrics``: percentiles, CPU meters, and ``Arm``, the summary of one way of sending the load;
- ``runner``: rounds of load in alternation, each started on a quiet machine;
- ``adapters``: LoRA adapters made without training, stored as a finished job leaves them;
- ``harness``: vLLM, the instant upstream, the hone server (``tests.harness``) and the client;
- ``phases``: the measured phases (gateway ceiling and overhead, multi-adapter, cold vs warm);
- ``run``: one run: everything started, the phases measured, everything stopped;
- ``report``: the result document and the printed table.
"""

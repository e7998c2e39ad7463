"""The contract every hone process shares: the control plane (``service``), the trainer
(``trainer``) and the vLLM plugin (``inference``) import this package and never each other.

It imports only the standard library and pydantic (boto3 lazily, inside the S3 blob store):

- ``blobstore``: the ``BlobStore`` protocol and its backends, picked by URL scheme;
- ``layout``: where every blob lives (files, checkpoints, final adapters, results, the
  adapter index);
- ``manifest``: the typed ``manifest.json`` written last into every adapter directory, and
  the upload/download helpers that write and verify it;
- ``names``: the fine-tuned model-name grammar;
- ``hyperparameters`` and ``methods``: the method registry (data format, typed
  hyperparameters with OpenAI's ``"auto"``, the trainer recipe);
- ``spec``: the ``JobSpec`` a launcher hands a trainer, and the trainer's report messages.
"""

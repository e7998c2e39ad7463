"""The whole flow against a real cluster (docs/deploy.md, "Testing on kind or k3s"): runs when
KUBECONFIG is set and the dev overlay is deployed with the API reachable (e.g. through
``kubectl -n hone port-forward svc/hone-api 8080:80``); skipped otherwise."""

from __future__ import annotations

import os
import time

import openai
import pytest

from tests.harness.jobs import upload, wait_status
from tests.integration import tuning

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a cluster (KUBECONFIG)"),
    pytest.mark.skipif(
        not os.environ.get("HONE_K8S_API_URL") or not os.environ.get("HONE_K8S_API_KEY"),
        reason="needs HONE_K8S_API_URL and HONE_K8S_API_KEY of the deployed API",
    ),
]


def test_train_and_serve_in_the_cluster() -> None:
    client = openai.OpenAI(base_url=os.environ["HONE_K8S_API_URL"], api_key=os.environ["HONE_K8S_API_KEY"])
    file_id = upload(client, tuning.memorisation_rows())
    job = client.fine_tuning.jobs.create(
        model="hone-tiny",
        training_file=file_id,
        seed=1,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 15, "batch_size": 2, "learning_rate_multiplier": 2.5}},
        },
    )
    job = wait_status(client, job.id, timeout=1800)
    assert job.status == "succeeded", job.error
    deadline = time.time() + 300
    while True:  # the first request makes vLLM fetch the adapter
        try:
            reply = client.chat.completions.create(
                model=job.fine_tuned_model,
                temperature=0,
                max_tokens=16,
                messages=[{"role": "user", "content": tuning.PAIRS[0][0]}],
            )
            break
        except openai.APIStatusError:
            assert time.time() < deadline
            time.sleep(5)
    assert reply.choices[0].message.content.strip() == tuning.PAIRS[0][1]

"""The trainer's memory: the chunked loss computes exactly what the full-vocabulary one did
(loss, accuracy and gradients, with and without activation checkpointing), and the memory plan
sizes real model shapes the way their published parameter counts and device sizes say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contract.hyperparameters import SupervisedHyperparameters
from trainer import losses
from trainer.data import IGNORE, ChatRenderer, Example, pack
from trainer.model import load_tokenizer, load_trainable
from trainer.plan import Device, DoesNotFit, GiB, Shape, estimate, make_plan

# Published configs (config.json on the Hugging Face hub), the fields the plan reads.
LLAMA_3_1_8B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
}
LLAMA_3_1_70B = {**LLAMA_3_1_8B, "hidden_size": 8192, "num_hidden_layers": 80, "intermediate_size": 28672}
LLAMA_3_1_70B["num_attention_heads"] = 64
QWEN2_5_0_5B = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "tie_word_embeddings": True,
}
H100 = Device("cuda", 1, 80 * GiB, 2, varlen_attention=True)


def _rows(renderer: ChatRenderer) -> list[Example]:
    rows = []
    for i in range(6):
        rows.append(
            renderer.sft(
                {
                    "messages": [
                        {"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"},
                        {"role": "assistant", "content": f"The answer is {2 * i}, because {i} + {i} = {2 * i}."},
                    ]
                }
            )
        )
    return rows


def _reference_loss(model: torch.nn.Module, examples: list[Example]) -> tuple[torch.Tensor, int]:
    """The textbook loss: full logits over the packed row, log-softmax, mean over targets."""
    row = pack(examples)
    logits = model(input_ids=row["input_ids"], position_ids=row["position_ids"], use_cache=False).logits[0, :-1]
    targets = row["labels"][0, 1:]
    mask = targets != IGNORE
    logps = torch.log_softmax(logits.float(), -1).gather(-1, targets.clamp(min=0)[:, None])[:, 0]
    correct = int(((logits.argmax(-1) == targets) & mask).sum())
    return -(logps * mask).sum() / mask.sum(), correct


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("training_type", ["lora", "full"])  # a frozen head (gradient in forward) and a trainable one
def test_chunked_loss_equals_the_full_vocabulary_loss(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, checkpointing: bool, training_type: str
) -> None:
    hp = SupervisedHyperparameters(lora_dropout=0.0, training_type=training_type)
    renderer = ChatRenderer(load_tokenizer(str(tiny_model_dir)), 2048)
    examples = _rows(renderer)
    torch.manual_seed(0)
    model = load_trainable(str(tiny_model_dir), hp, torch.device("cpu"), None, checkpointing)
    for name, p in model.named_parameters():  # LoRA's B starts at zero: give the adapter something to differentiate
        if p.requires_grad and "lora_" in name:
            torch.nn.init.normal_(p, std=0.05)
    head = model.get_output_embeddings()
    assert head.weight.requires_grad == (training_type == "full")
    model.train()

    reference, correct = _reference_loss(model, examples)
    reference.backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)

    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 7 * model.config.vocab_size)  # 7 positions a chunk
    fast_path = losses._FrozenHeadLogps.apply
    fast_calls: list[int] = []

    def counted(*args: object) -> object:
        fast_calls.append(1)
        return fast_path(*args)

    monkeypatch.setattr(losses._FrozenHeadLogps, "apply", counted)
    loss, accuracy, tokens = losses.sft_loss(model, examples, torch.device("cpu"), 2048, backward=True)
    got = _grads(model)
    assert bool(fast_calls) == (training_type == "lora")  # each path really ran where expected

    n_targets = int((pack(examples)["labels"][0, 1:] != IGNORE).sum())
    assert n_targets > 7 * 3  # several chunks really ran
    assert loss == pytest.approx(float(reference.detach()), abs=1e-5)
    assert accuracy == pytest.approx(correct / n_targets)
    assert tokens == sum(len(ex.input_ids) for ex in examples)
    assert got.keys() == expected.keys() and len(got) > 0
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-6, rtol=1e-4), name


def test_sequence_logps_sum_each_examples_targets(tiny_model_dir: Path) -> None:
    renderer = ChatRenderer(load_tokenizer(str(tiny_model_dir)), 2048)
    examples = _rows(renderer)
    model = load_trainable(str(tiny_model_dir), SupervisedHyperparameters(), torch.device("cpu"), None).eval()
    with torch.no_grad():
        packed = torch.cat([s for s, _ in losses.sequence_logps(model, examples, torch.device("cpu"), 2048)])
        alone = torch.cat([s for ex in examples for s, _ in losses.sequence_logps(model, [ex], torch.device("cpu"), 1)])
    assert packed.shape == (len(examples),) and bool((packed < 0).all())
    assert torch.allclose(packed, alone, atol=1e-4)


def test_parameter_counts_match_the_published_ones() -> None:
    assert Shape.from_config(LLAMA_3_1_8B).parameters == 8_030_261_248
    assert Shape.from_config(LLAMA_3_1_70B).parameters == 70_553_706_496
    # Qwen2.5-0.5B publishes 494,032,768 including its q/k/v biases (which the plan ignores)
    assert abs(Shape.from_config(QWEN2_5_0_5B).parameters - 494_032_768) < 0.001 * 494_032_768


def test_8b_lora_on_one_80gb_gpu_takes_full_length_rows() -> None:
    plan = make_plan(Shape.from_config(LLAMA_3_1_8B), SupervisedHyperparameters(), H100, longest_example=4000)
    assert plan.tokens_per_micro_batch == 16384
    assert plan.estimated_peak < 0.9 * 80 * GiB
    assert plan.message().startswith("plan: 8.0B LoRA bf16 on 1 x 80 GiB cuda, 16,384 tokens/micro-batch")


def test_checkpointing_is_switched_on_when_activations_do_not_fit() -> None:
    shape, hp = Shape.from_config(QWEN2_5_0_5B), SupervisedHyperparameters()
    cpu = Device("cpu", 1, 6 * GiB, 4, varlen_attention=False)
    plan = make_plan(shape, hp, cpu, longest_example=1000)
    assert plan.gradient_checkpointing and plan.estimated_peak <= 0.9 * 6 * GiB
    assert estimate(shape, hp, cpu, plan.tokens_per_micro_batch, False) > 0.9 * 6 * GiB
    roomy = make_plan(shape, hp, Device("cpu", 1, 64 * GiB, 4, varlen_attention=False), longest_example=1000)
    assert not roomy.gradient_checkpointing and roomy.tokens_per_micro_batch == 2048


def test_explicit_settings_are_kept() -> None:
    hp = SupervisedHyperparameters(max_tokens_per_micro_batch=4096, gradient_checkpointing=True)
    plan = make_plan(Shape.from_config(LLAMA_3_1_8B), hp, H100, longest_example=100)
    assert (plan.tokens_per_micro_batch, plan.gradient_checkpointing) == (4096, True)


def test_a_job_that_cannot_fit_says_so_with_the_numbers() -> None:
    full = SupervisedHyperparameters(training_type="full")
    with pytest.raises(DoesNotFit) as e:
        make_plan(Shape.from_config(LLAMA_3_1_70B), full, H100, longest_example=1000)
    message = str(e.value)
    assert "70.6B full fine-tuning needs about" in message and "1 x 80 GiB cuda allows 72.0 GiB" in message
    # the same job on a machine that has the memory is planned
    assert make_plan(Shape.from_config(QWEN2_5_0_5B), full, Device("cpu", 1, 64 * GiB, 4, False), 1000)


def test_full_fine_tuning_on_several_gpus_is_sharded() -> None:
    """FSDP2 splits weights, gradients and AdamW state over the ranks: a per-device peak that
    falls with the number of GPUs. LoRA keeps a whole base per rank unless that cannot fit."""
    shape, full = Shape.from_config(LLAMA_3_1_8B), SupervisedHyperparameters(training_type="full")
    one, eight = (Device("cuda", n, 80 * GiB, 2, True) for n in (1, 8))
    assert estimate(shape, full, eight, 4096, True, sharded=True) < estimate(shape, full, one, 4096, True) / 3
    assert make_plan(shape, full, eight, 1000).sharded and not make_plan(shape, full, one, 1000).sharded
    plan = make_plan(Shape.from_config(LLAMA_3_1_70B), full, Device("cuda", 16, 80 * GiB, 2, True), 1000)
    assert plan.message().startswith("plan: 70.6B full bf16 on 16 x 80 GiB cuda, sharded (FSDP2), ")

    lora = SupervisedHyperparameters()
    assert not make_plan(shape, lora, eight, 1000).sharded  # an 8B base fits each GPU whole
    big = make_plan(Shape.from_config(LLAMA_3_1_70B), lora, eight, 1000)  # 141 GB of bf16 weights do not
    assert big.sharded and big.estimated_peak <= 0.9 * 80 * GiB
    with pytest.raises(DoesNotFit):
        make_plan(Shape.from_config(LLAMA_3_1_70B), lora, one, 1000)


def test_short_examples_are_planned_at_their_real_row_length() -> None:
    """A batch of 4 examples of at most 80 tokens never builds a 2,048-token row: the estimate
    is for 320 tokens (the 135M demo job was once estimated at 10 GiB and used 1.2 GB)."""
    shape = Shape.from_config(QWEN2_5_0_5B)
    cpu = Device("cpu", 1, 64 * GiB, 4, varlen_attention=False)
    short = make_plan(shape, SupervisedHyperparameters(batch_size=4), cpu, longest_example=80)
    assert short.tokens_per_micro_batch == 2048
    assert short.estimated_peak == estimate(shape, SupervisedHyperparameters(batch_size=4), cpu, 320, False)
    assert short.estimated_peak < make_plan(shape, SupervisedHyperparameters(), cpu, 80).estimated_peak

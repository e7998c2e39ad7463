"""The tiny model builder: files, shapes, determinism and the ChatML template (no torch needed)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
pytest.importorskip("tokenizers")
pytest.importorskip("jinja2")
transformers = pytest.importorskip("transformers")

from service.catalog.tiny import build_tiny_model  # noqa: E402

FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def config(model_dir: Path) -> dict:
    return json.loads((model_dir / "config.json").read_text())


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path):
    return transformers.AutoTokenizer.from_pretrained(str(model_dir))


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_files_exist(model_dir: Path) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == FILES


def test_config(config: dict) -> None:
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["model_type"] == "llama"
    assert (config["hidden_size"], config["num_hidden_layers"]) == (256, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (4, 2, 64)
    assert config["tie_word_embeddings"] is False
    assert config["torch_dtype"] == "float32"


def test_tensor_shapes_match_config(model_dir: Path, config: dict) -> None:
    tensors = safetensors_numpy.load_file(str(model_dir / "model.safetensors"))
    h, v, inter = config["hidden_size"], config["vocab_size"], config["intermediate_size"]
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    expected = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        expected |= {
            p + "self_attn.q_proj.weight": (q, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (inter, h),
            p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
            p + "input_layernorm.weight": (h,),
            p + "post_attention_layernorm.weight": (h,),
        }
    assert {k: t.shape for k, t in tensors.items()} == expected
    assert all(t.dtype == np.float32 for t in tensors.values())
    assert np.all(tensors["model.norm.weight"] == 1.0)
    assert abs(float(tensors["model.embed_tokens.weight"].std()) - 0.02) < 0.002
    assert abs(float(tensors["lm_head.weight"].std()) - 1 / 16) < 0.005  # wider head, see tiny.py


def test_vocab_and_special_ids_agree(model_dir: Path, config: dict, tokenizer) -> None:
    assert 2000 <= len(tokenizer) <= 4000
    assert config["vocab_size"] == len(tokenizer)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert tokenizer.eos_token_id == config["eos_token_id"] == im_end
    assert tokenizer.pad_token_id == config["pad_token_id"] == eot
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == im_end


def test_encode_decode_round_trip(tokenizer) -> None:
    for text in [
        "Hello, world! 123 + 456 = 579.",
        "Ünïcödé ✓ 日本語 🎉\n\ttabs  and  spaces",
        "<|im_start|>user\nhi<|im_end|>\n",
    ]:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text
    assert tokenizer.encode("<|im_start|>") == [tokenizer.convert_tokens_to_ids("<|im_start|>")]
    assert "token_type_ids" not in tokenizer("hi")


def test_deterministic(tmp_path: Path) -> None:
    a = _digests(build_tiny_model(tmp_path / "a", seed=7))
    b = _digests(build_tiny_model(tmp_path / "b", seed=7))
    c = _digests(build_tiny_model(tmp_path / "c", seed=8))
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]
    assert a["tokenizer.json"] == c["tokenizer.json"]


def test_template_plain_conversation(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.apply_chat_template(messages[1:3], tokenize=False) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    )


def test_template_content_parts_and_developer(tokenizer) -> None:
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
    ]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
    )
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(Exception, match="Only text content parts"):
        tokenizer.apply_chat_template(image, tokenize=False)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
TOOLS_BLOCK = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": {"name": "get_weather", "description": "Current weather", '
    '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}\n'
    "</tools>\n\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\n"
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


def test_template_tool_calls(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
        {
            "role": "assistant",
            "content": "18 C. Checking two more.",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lyon"}}},
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Nice"}}},
            ],
        },
    ]
    assert tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False) == (
        "<|im_start|>system\nUse tools.\n\n" + TOOLS_BLOCK + "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call><|im_end|>\n"
        '<|im_start|>tool\n{"temp": 18}<|im_end|>\n'
        "<|im_start|>assistant\n18 C. Checking two more.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Nice"}}\n</tool_call><|im_end|>\n'
    )


def test_template_tools_without_system_message(tokenizer) -> None:
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    rendered = tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\n" + TOOLS_BLOCK + "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
    )

"""Shared pieces of the model-level tests: a tiny Llama-architecture model from a LlamaConfig with
seeded random weights (nothing is downloaded), and its input ids."""

import os

import pytest
import torch

# transformers and compressed-tensors import triton.language when they are imported, and triton
# decides then, once, whether its @jit functions run compiled or through the CPU interpreter. These
# test modules import them at collection, before tests/providers/triton/conftest.py turns the
# interpreter on for the triton provider's CPU tests; so turn it on here too, by the same rule.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def tiny_llama(seed: int = 0, layers: int = 1, hidden: int = 256, inter: int = 512, vocab: int = 256):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=hidden // 4, max_position_embeddings=128,
        tie_word_embeddings=False, architectures=["LlamaForCausalLM"])
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM._from_config(cfg, dtype=torch.bfloat16).eval()


def input_ids(n: int = 12, vocab: int = 256, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def llama():
    return tiny_llama()


@pytest.fixture
def ids():
    return input_ids()


@pytest.fixture
def make_llama():
    """The model builder itself, for tests that need more than one model or other sizes."""
    return tiny_llama

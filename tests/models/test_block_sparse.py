"""Block-sparse weights on the sparse CPU path: their block size is found from the weights,
BSR products match dense ones, and the conversion times BSR beside CSR and keeps the winner."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_config, tiny_model
from transformers import AutoModelForSequenceClassification

import prunekit.models.sparse as sparse_module
from prunekit.errors import ConfigError
from prunekit.models.sparse import SparseLinear, break_even_sparsity, to_sparse_inference
from prunekit.models.sparse_encoder import FeatureMajorLinear, weight_block_size


def block_sparse(shape: tuple[int, int], block: int, keep: float, seed: int = 0) -> torch.Tensor:
    """A random weight with only ``keep`` of its ``block`` x ``block`` blocks nonzero."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = shape
    kept = torch.rand(rows // block, cols // block, generator=generator) < keep
    kept = kept.repeat_interleave(block, 0).repeat_interleave(block, 1)
    return torch.randn(shape, generator=generator) * kept


def test_the_block_size_is_read_from_the_weights():
    weight = block_sparse((64, 96), 8, keep=0.1)
    assert weight_block_size(weight) == 8
    assert weight_block_size(block_sparse((64, 96), 32, keep=0.2)) == 32
    # a few zeros inside kept blocks (an earlier unstructured plan) keep the structure
    holed = weight.clone()
    holed[weight != 0] *= torch.rand(int((weight != 0).sum())) > 0.3
    assert weight_block_size(holed) == 8
    # unstructured 95%: the nonzeros scatter over every block size tried
    generator = torch.Generator().manual_seed(0)
    scattered = torch.randn(64, 96) * (torch.rand(64, 96, generator=generator) < 0.05)
    assert weight_block_size(scattered) is None
    # unstructured 50% (magnitude's per-tensor cut): every block is about half full, no fuller
    # than the weight, so BSR would store its zeros
    assert (
        weight_block_size(torch.randn(64, 96) * (torch.rand(64, 96, generator=generator) < 0.5))
        is None
    )
    # ...while 8 x 8 blocks at 60% sparsity are (full blocks), and not 16 or 32 (under half full)
    assert weight_block_size(block_sparse((64, 96), 8, keep=0.4, seed=3)) == 8
    assert weight_block_size(torch.zeros(64, 96)) is None
    assert weight_block_size(block_sparse((64, 96), 8, keep=0.1)[:, :90]) is None  # 4 ∤ 90


@pytest.mark.parametrize("block", [4, 8])
def test_bsr_linears_match_dense_ones(block):
    linear = torch.nn.Linear(32, 48)
    with torch.no_grad():
        linear.weight.copy_(block_sparse((48, 32), block, keep=0.25, seed=block))
    x = torch.randn(3, 700, 32)  # more rows than one chunk
    with torch.no_grad():
        token_major = SparseLinear(linear, block=block)
        assert token_major.weight.layout == torch.sparse_bsr
        assert torch.allclose(token_major(x), linear(x), atol=1e-5)
        feature_major = FeatureMajorLinear(linear.weight, linear.bias, float("inf"), block)
        flat = x.reshape(-1, 32)
        assert torch.allclose(feature_major(flat.T), linear(flat).T, atol=1e-5)
        residual = torch.randn(48, flat.shape[0])
        got = feature_major(flat.T, residual=residual.clone())
        assert torch.allclose(got, linear(flat).T + residual, atol=1e-5)


def fake_timings(monkeypatch, bsr_ms: float) -> None:
    """Dense takes 1 ms, CSR 0.5 ms and BSR ``bsr_ms`` at every size (so the choice is
    deterministic)."""

    def timed(module, x, rounds=5):
        # dense: an nn.Linear (token-major) or a FeatureMajorLinear that never runs sparse
        if isinstance(module, torch.nn.Linear) or getattr(module, "sparse_up_to", 0) is None:
            return 1e-3
        return (bsr_ms if module.block else 0.5) * 1e-3

    monkeypatch.setattr(sparse_module, "time_linear", timed)


def block_sparse_model(family: str = "bert", ffn: int = TINY["ffn"]):
    """A tiny model whose attention projections (32 x 32) keep the 8 x 8 blocks (i, j) with
    i + j divisible by 4 (one per 16 x 16 block: block-sparse at 8, not at 16 or 32), and whose
    FFN linears (37 wide by default: no block size divides it) are unstructured."""
    model = tiny_model(family)
    if ffn != TINY["ffn"]:
        config = tiny_config(family)
        config.intermediate_size = ffn
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(config).eval()
    generator = torch.Generator().manual_seed(0)
    grid = torch.arange(TINY["hidden"] // 8)
    kept = ((grid[:, None] + grid[None, :]) % 4 == 0).repeat_interleave(8, 0)
    kept = kept.repeat_interleave(8, 1)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layer." in name:
                shape = tuple(module.weight.shape)
                if shape == (TINY["hidden"], TINY["hidden"]):
                    module.weight.mul_(10 * kept)
                else:
                    module.weight.mul_(10 * (torch.rand(shape, generator=generator) < 0.05))
    return model


@pytest.mark.parametrize("layout", ["feature", "token"])
@pytest.mark.parametrize("bsr_ms", [0.1, 0.9])
def test_the_conversion_runs_bsr_where_it_is_timed_faster(monkeypatch, layout, bsr_ms):
    model = block_sparse_model()
    with torch.no_grad():
        expected = model.base_model(**tiny_batch()).last_hidden_state
    fake_timings(monkeypatch, bsr_ms)
    choices = to_sparse_inference(model, tokens=(16, 256), rounds=1, layout=layout)
    attention = [c for c in choices if "ffn" not in c.name]
    ffn = [c for c in choices if "ffn" in c.name]
    assert attention and ffn and all(c.sparse for c in choices)
    if bsr_ms < 0.5:  # BSR timed faster: the attention projections run it
        assert all(c.block == 8 and c.csr_ms == pytest.approx((0.5, 0.5)) for c in attention)
        assert all(c.sparse_ms == pytest.approx((bsr_ms, bsr_ms)) for c in attention)
    else:  # CSR faster: BSR was timed, and not kept
        assert all(c.block is None and c.csr_ms is None for c in attention)
    assert all(c.block is None and c.csr_ms is None for c in ffn)  # never tried as BSR
    kernels = [
        m.block
        for m in model.modules()
        if isinstance(m, SparseLinear | FeatureMajorLinear)
        and getattr(m, "sparse_up_to", 1) is not None
    ]
    assert (8 in kernels) == (bsr_ms < 0.5)
    monkeypatch.undo()
    with torch.no_grad():
        got = model.base_model(**tiny_batch()).last_hidden_state
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("sparse_faster", [True, False])
def test_break_even_times_bsr_products_with_whole_blocks_zero(monkeypatch, sparse_faster):
    timed = []

    def fake_time(module, x, rounds):  # sparse 1 ms; dense 2 ms (sparse faster) or 0.5 ms
        timed.append(module)
        if isinstance(module, FeatureMajorLinear):
            return 1.0
        return 2.0 if sparse_faster else 0.5

    monkeypatch.setattr(sparse_module, "time_linear", fake_time)
    found = break_even_sparsity(32, 64, 16, grid=(0.9, 0.99), rounds=1, block=8)
    assert found == (0.9 if sparse_faster else None)
    sparse = [m for m in timed if isinstance(m, FeatureMajorLinear)]
    assert len(sparse) == (1 if sparse_faster else 2)  # stops at the first sparsity that wins
    for module in sparse:  # BSR products of weights whose zeros are whole 8 x 8 blocks
        assert module.block == 8 and module.sparse.layout == torch.sparse_bsr
        assert weight_block_size(module.sparse.to_dense()) == 8


def test_break_even_refuses_a_block_that_does_not_divide():
    with pytest.raises(ConfigError, match="block 5 does not divide"):
        break_even_sparsity(32, 64, 16, rounds=1, block=5)


def test_bench_reports_the_bsr_projections_and_their_break_even(monkeypatch, tmp_path):
    from conftest import word_tokenizer
    from typer.testing import CliRunner

    from prunekit.cli import app
    from prunekit.models import save

    # a 40-wide FFN (8 divides it, so the 8 x 8 break-even is timed; its unstructured weights
    # still run CSR)
    model = block_sparse_model(ffn=40)
    directory = save(model, tmp_path / "blocks", tokenizer=word_tokenizer())
    fake_timings(monkeypatch, bsr_ms=0.1)  # sparse wins at every density: break-even 50%
    args = ["bench", str(directory), "--runtime", "sparse", "--rounds", "1", "--seq-len", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    # per layer: the fused query/key/value and the output projection run BSR, the FFN CSR
    assert f"{4 * TINY['layers']}/{4 * TINY['layers']} projections" in text
    assert f"({2 * TINY['layers']} of them BSR (block-sparse))" in text
    assert "with 8x8 blocks (batch 1: 50%, batch 32: 50%)" in text

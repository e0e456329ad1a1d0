"""The tiled (block-wise) losses equal a naive dense float64 reference: values and every gradient."""

from __future__ import annotations

import contextlib
import itertools
import math
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scibind.align import tiled
from scibind.align.clip import ClipObjective
from scibind.align.siglip import SigLipObjective
from scibind.align.tiled import auto_block_size, l2_normalize, row_col_logsumexp, sigmoid_pair_sum
from scibind.errors import ConfigError

RTOL, ATOL = 1e-6, 1e-9


def dense_positives(groups: torch.Tensor | None, n: int) -> torch.Tensor:
    eye = torch.eye(n, dtype=torch.bool)
    if groups is None:
        return eye
    return eye | ((groups[:, None] == groups[None, :]) & (groups >= 0)[:, None])


def dense_clip(za, zb, logit_scale, groups, eps, max_scale=100.0):
    """The textbook loss on the full logit matrix: soft-target cross-entropy in both directions."""
    za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
    n = za.shape[0]
    s = logit_scale.clamp(max=math.log(max_scale)).exp()
    logits = s * za @ zb.T
    pos = dense_positives(groups, n).to(logits.dtype)
    t = (1 - eps) * pos / pos.sum(1, keepdim=True) + eps / n
    rows = -(t * logits.log_softmax(1)).sum(1).mean()
    cols = -(t * logits.T.log_softmax(1)).sum(1).mean()
    return (rows + cols) / 2


def dense_siglip(za, zb, logit_scale, bias, groups, max_scale=100.0):
    za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
    n = za.shape[0]
    s = logit_scale.clamp(max=math.log(max_scale)).exp()
    y = dense_positives(groups, n).to(za.dtype) * 2 - 1
    return -F.logsigmoid(y * (s * za @ zb.T + bias)).sum() / n


def close(got, want):
    torch.testing.assert_close(got, want, rtol=RTOL, atol=ATOL)


def shift_mode(running_max: bool):
    """The running-max path is what float32 takes at large scales; force it in float64 too."""
    return mock.patch.object(tiled, "_FIXED_SHIFT_LIMIT", {}) if running_max else contextlib.nullcontext()


def inputs(seed, n, d, groups_kind, duplicate=False):
    gen = torch.Generator().manual_seed(seed)
    za = torch.randn(n, d, generator=gen, dtype=torch.float64)
    zb = torch.randn(n, d, generator=gen, dtype=torch.float64)
    if duplicate and n > 1:
        za[n // 2 :] = za[0]  # identical rows: ties in every block
        zb[1] = za[1]
    groups = None if groups_kind == "none" else torch.randint(-1, 3, (n,), generator=gen)
    return za.requires_grad_(), zb.requires_grad_(), groups


case = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**16),
        "n": st.integers(2, 29),
        "d": st.integers(1, 6),
        "block": st.integers(1, 9),
        "groups": st.sampled_from(["none", "codes"]),
        "duplicate": st.booleans(),
        "log_scale": st.floats(-1.0, math.log(100.0) + 0.5),
    }
)


@settings(max_examples=25, deadline=None)
@given(c=case, eps=st.sampled_from([0.0, 0.1]), running_max=st.booleans())
def test_clip_equals_dense_reference(c, eps, running_max):
    za, zb, groups = inputs(c["seed"], c["n"], c["d"], c["groups"], c["duplicate"])
    obj = ClipObjective(block_size=c["block"], label_smoothing=eps, positive_target="group").double()
    with torch.no_grad():
        obj.logit_scale.fill_(c["log_scale"])
    targets = {} if groups is None else {"group": groups}
    params = [za, zb, obj.logit_scale]
    with shift_mode(running_max):
        got = obj({"a": za, "b": zb}, **targets).loss
        got_grads = torch.autograd.grad(got, params)
    want = dense_clip(za, zb, obj.logit_scale, groups, eps)
    close(got, want)
    for g, w in zip(got_grads, torch.autograd.grad(want, params), strict=True):
        close(g, w)


@settings(max_examples=25, deadline=None)
@given(c=case, bias=st.floats(-12.0, 4.0))
def test_siglip_equals_dense_reference(c, bias):
    za, zb, groups = inputs(c["seed"], c["n"], c["d"], c["groups"], c["duplicate"])
    obj = SigLipObjective(block_size=c["block"], positive_target="group").double()
    with torch.no_grad():
        obj.logit_scale.fill_(c["log_scale"])
        obj.logit_bias.fill_(bias)
    targets = {} if groups is None else {"group": groups}
    got = obj({"a": za, "b": zb}, **targets).loss
    want = dense_siglip(za, zb, obj.logit_scale, obj.logit_bias, groups)
    close(got, want)
    params = [za, zb, obj.logit_scale, obj.logit_bias]
    for g, w in zip(torch.autograd.grad(got, params), torch.autograd.grad(want, params), strict=True):
        close(g, w)


@pytest.mark.parametrize("cls", [ClipObjective, SigLipObjective])
def test_masks_select_the_sub_batch_with_blocks_that_do_not_divide_it(cls):
    za, zb, groups = inputs(3, 23, 5, "codes")
    present = {"a": torch.rand(23, generator=torch.Generator().manual_seed(1)) > 0.3}
    rows = present["a"]
    obj = cls(block_size=4, positive_target="group").double()
    got = obj({"a": za, "b": zb}, present, group=groups).loss
    if cls is ClipObjective:
        want = dense_clip(za[rows], zb[rows], obj.logit_scale, groups[rows], 0.0)
    else:
        want = dense_siglip(za[rows], zb[rows], obj.logit_scale, obj.logit_bias, groups[rows])
    close(got, want)
    for g, w in zip(torch.autograd.grad(got, [za, zb]), torch.autograd.grad(want, [za, zb]), strict=True):
        close(g, w)
        assert torch.all(g[~rows] == 0)


def test_one_row_kernels_and_one_row_batches():
    za, zb, _ = inputs(0, 1, 4, "none")
    s = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    r, c = row_col_logsumexp(za, zb, s, 7)
    close(r, s * (za * zb).sum(1))
    close(c, r)
    b = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    close(sigmoid_pair_sum(za, zb, s, b, None, 7), -F.logsigmoid(s * (za * zb).sum() + b))
    # A batch of one record has no negatives: the pair contributes 0 and still reaches every parameter.
    for cls in (ClipObjective, SigLipObjective):
        obj = cls(block_size=1).double()
        out = obj({"a": za, "b": zb})
        assert float(out.loss) == 0.0
        out.loss.backward()
        assert all(p.grad is not None for p in obj.parameters())


@pytest.mark.parametrize("running_max", [False, True])
def test_rectangular_and_large_scale_kernels_match_dense(running_max):
    gen = torch.Generator().manual_seed(5)
    za = F.normalize(torch.randn(13, 6, generator=gen, dtype=torch.float64), dim=1).requires_grad_()
    zb = F.normalize(torch.randn(21, 6, generator=gen, dtype=torch.float64), dim=1).requires_grad_()
    s = torch.tensor(100.0, dtype=torch.float64, requires_grad=True)
    gr, gc = (
        torch.randn(13, generator=gen, dtype=torch.float64),
        torch.randn(21, generator=gen, dtype=torch.float64),
    )
    params = [za, zb, s]
    with shift_mode(running_max):
        r, c = row_col_logsumexp(za, zb, s, 4)
        got = torch.autograd.grad((r * gr).sum() + (c * gc).sum(), params, retain_graph=True)
    logits = s * za @ zb.T
    close(r, logits.logsumexp(1))
    close(c, logits.logsumexp(0))
    want = torch.autograd.grad((logits.logsumexp(1) * gr).sum() + (logits.logsumexp(0) * gc).sum(), params)
    for g, w in zip(got, want, strict=True):
        close(g, w)


def test_float32_at_the_largest_scale_stays_finite_and_accurate():
    # s = 100, anti-aligned rows: logits near -100, below exp's float32 range after a fixed shift of 100.
    gen = torch.Generator().manual_seed(2)
    za = torch.randn(50, 8, generator=gen)
    zb = -za + 0.01 * torch.randn(50, 8, generator=gen)
    obj32 = ClipObjective(temperature=0.01, block_size=16)
    obj64 = ClipObjective(temperature=0.01, tiled=False).double()
    got = obj32({"a": za, "b": zb}).loss
    torch.testing.assert_close(
        got.double(), obj64({"a": za.double(), "b": zb.double()}).loss, rtol=1e-5, atol=0
    )


@pytest.mark.parametrize("cls", [ClipObjective, SigLipObjective])
def test_bf16_autocast_computes_the_loss_in_float32(cls):
    gen = torch.Generator().manual_seed(0)
    emb = {v: torch.randn(40, 16, generator=gen).to(torch.bfloat16) for v in "ab"}
    obj = cls(block_size=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = obj(emb).loss
    assert got.dtype == torch.float32
    want = cls(tiled=False).double()({v: e.double() for v, e in emb.items()}).loss
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)


def test_auto_block_size_follows_the_budget():
    assert auto_block_size(torch.float32, "cpu") == 512
    assert auto_block_size(torch.float32, "cuda") == 4096
    assert auto_block_size(torch.float64, "cpu", memory_budget_mb=64) == 1408
    assert auto_block_size(torch.float32, "cpu", memory_budget_mb=0.001) == 64
    assert ClipObjective(memory_budget_mb=64).block_for(torch.zeros(1, 2)) == 2048
    assert SigLipObjective(block_size=100).block_for(torch.zeros(1, 2)) == 100


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": 0}, "block_size"),
        ({"block_size": 2.5}, "block_size"),
        ({"memory_budget_mb": 0}, "memory"),
    ],
)
def test_bad_tiling_options_name_the_option(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ClipObjective(**kwargs)


def _peak_rss_mb(fn) -> float:
    """Peak resident-memory increase while ``fn`` runs (Linux: reset the high-water mark first)."""
    status = Path("/proc/self/status")

    def field(name: str) -> float:
        line = next(x for x in status.read_text().splitlines() if x.startswith(name))
        return int(line.split()[1]) / 1024

    Path("/proc/self/clear_refs").write_text("5")
    before = field("VmRSS:")
    fn()
    return field("VmHWM:") - before


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("cls", [ClipObjective, SigLipObjective])
def test_memory_stays_far_below_the_logit_matrix(cls):
    n = 6144  # one float32 logit matrix is 144 MiB; the dense losses hold several
    gen = torch.Generator().manual_seed(0)
    emb = {v: torch.randn(n, 8, generator=gen).requires_grad_() for v in "ab"}
    obj = cls(block_size=256)

    def step():
        obj(emb).loss.backward()

    peak = _peak_rss_mb(step)
    assert peak < 48, f"peak RSS grew by {peak:.0f} MiB"


def test_l2_normalize_matches_functional_normalize_with_zero_and_tiny_rows():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    x[2] = 0.0
    x[4] = 1e-14
    x.requires_grad_()
    g = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    got = l2_normalize(x)
    want = F.normalize(x, dim=-1)
    close(got, want)
    close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])


@pytest.mark.parametrize("running_max", [False, True])
def test_fused_normalisation_equals_normalising_first(running_max):
    """``normalize=True`` gives F.normalize-then-dense values and gradients, zero and tiny rows included."""
    gen = torch.Generator().manual_seed(8)
    za = (3 * torch.randn(11, 6, generator=gen, dtype=torch.float64)).requires_grad_(False)
    zb = torch.randn(11, 6, generator=gen, dtype=torch.float64)
    za[3], zb[5] = 0.0, 1e-14
    za.requires_grad_()
    zb.requires_grad_()
    s = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    gr, gc = (
        torch.randn(11, generator=gen, dtype=torch.float64),
        torch.randn(11, generator=gen, dtype=torch.float64),
    )
    na, nb = F.normalize(za, dim=1), F.normalize(zb, dim=1)
    logits = s * na @ nb.T
    y = torch.eye(11, dtype=torch.float64) * 2 - 1
    with shift_mode(running_max):
        r, c, d = tiled.infonce_terms(za, zb, s, 4, normalize=True)
        sig = sigmoid_pair_sum(za, zb, s, b, None, 4, normalize=True)
    close(r, logits.logsumexp(1))
    close(c, logits.logsumexp(0))
    close(d, (na * nb).sum(1))
    close(sig, -F.logsigmoid(y * (logits + b)).sum())
    params = [za, zb, s]
    got = torch.autograd.grad((r * gr).sum() + (c * gc).sum() + (d * gr).sum(), params)
    want = torch.autograd.grad(
        (logits.logsumexp(1) * gr).sum() + (logits.logsumexp(0) * gc).sum() + ((na * nb).sum(1) * gr).sum(),
        params,
        retain_graph=True,
    )
    for g, w in zip(got, want, strict=True):
        close(g, w)
    got = torch.autograd.grad(sig, [*params, b])
    want = torch.autograd.grad(-F.logsigmoid(y * (logits + b)).sum(), [*params, b])
    for g, w in zip(got, want, strict=True):
        close(g, w)


@pytest.mark.parametrize("cls", [ClipObjective, SigLipObjective])
def test_no_normalised_copies_of_the_embeddings(cls):
    """Counted allocations, not RSS (whose noise is as large as one copy): only the two gradient buffers."""
    from torch.profiler import ProfilerActivity, profile

    n, dim = 1024, 512  # one [n, D] float32 tensor is 2 MiB; blocks of 256 x 256 are 0.25 MiB
    gen = torch.Generator().manual_seed(0)
    emb = {v: torch.randn(n, dim, generator=gen).requires_grad_() for v in "ab"}
    obj = cls(block_size=256)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        obj(emb).loss.backward()
    large = [e.name for e in prof.events() if e.self_cpu_memory_usage >= n * dim * 4]
    # The gradients of the two views; normalised copies (or their gradients) would add two or more.
    assert len(large) == 2, large
    assert all(torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0 for e in emb.values())


@pytest.mark.parametrize("groups", [None, torch.tensor([0, 1, 0, -1, 2, 2, -1, 1, 3])])
def test_sigmoid_row_shards_sum_to_the_whole(groups):
    """What each rank computes under torchrun: the shards of a row partition add up to the whole."""
    gen = torch.Generator().manual_seed(4)
    za = torch.randn(9, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    zb = torch.randn(9, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    params = [za, zb, s, b]
    whole = sigmoid_pair_sum(za, zb, s, b, groups, 2, normalize=True)
    want = torch.autograd.grad(whole, params)
    bounds = [0, 4, 5, 9]  # shards that blocks of 2 do not divide, one of a single row
    shards = [
        sigmoid_pair_sum(za, zb, s, b, groups, 2, normalize=True, rows=r) for r in itertools.pairwise(bounds)
    ]
    close(sum(shards), whole)
    got = [sum(g) for g in zip(*(torch.autograd.grad(x, params) for x in shards), strict=True)]
    for g, w in zip(got, want, strict=True):
        close(g, w)

"""One FILIP training step with token towers: one encoder pass per token view against two.

Token-level objectives need both the pooled embeddings and the tokens of a view. The trainer gets both from
:meth:`scibind.align.model.MultiTowerModel.forward_with_tokens`, which runs each token view's encoder once
when the encoder has ``forward_with_tokens``; before, it ran ``forward`` and ``forward_tokens`` one after
the other. This times a forward + backward step of ``core/filip`` over a fine-tuned ``core/minilm`` text
tower and a ``core/cnn`` image tower both ways, alternating, in one process.

Run: OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/token_step.py [--batch 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both ways")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from scibind.align.filip import FilipObjective
    from scibind.align.model import build_model
    from scibind.align.tokens import embed_with_tokens
    from scibind.data.types import Batch, ModalityBatch

    torch.manual_seed(0)
    towers = {
        "text": {"encoder": "core/minilm", "encoder_kwargs": {"freeze": False, "max_length": 64}},
        "image": {
            "encoder": "core/cnn",
            "encoder_kwargs": {"in_channels": 3, "embed_dim": 64, "width": 16, "depth": 3},
        },
    }
    model = build_model(towers, 128).train()
    n = args.batch
    texts = [
        f"patch {i}: {'dense' if i % 2 else 'sparse'} nuclei with some stroma and fat, " * 2 for i in range(n)
    ]
    batch = Batch(
        ids=[str(i) for i in range(n)],
        views={
            "text": ModalityBatch(texts, torch.arange(n)),
            "image": ModalityBatch(torch.randn(n, 3, 64, 64), torch.arange(n)),
        },
        present={v: torch.ones(n, dtype=torch.bool) for v in towers},
        targets={},
    )
    objective = FilipObjective()
    views = list(towers)

    def step(one_pass: bool) -> None:
        if one_pass:
            embeddings, tokens = embed_with_tokens(model, batch, views)
        else:
            embeddings = model(batch)
            t, m = model.forward_tokens(batch, views)
            tokens = {"tokens": t, "token_masks": m}
        model.zero_grad()
        objective(embeddings, batch.present, **tokens).loss.backward()

    step(True)  # warm-up
    best = {True: float("inf"), False: float("inf")}
    for _ in range(args.rounds):
        for one_pass in (False, True):
            start = time.perf_counter()
            for _ in range(args.repeats):
                step(one_pass)
            best[one_pass] = min(best[one_pass], (time.perf_counter() - start) / args.repeats)
    print(
        f"batch {n}, threads {torch.get_num_threads()}, best of {args.rounds} rounds x {args.repeats} steps"
    )
    print(f"two passes (forward + forward_tokens): {best[False]:.3f} s/step")
    print(
        f"one pass (forward_with_tokens):        {best[True]:.3f} s/step  ({best[True] / best[False]:.2f}x)"
    )


if __name__ == "__main__":
    main()

"""A GPT-style language model: causal self-attention through
``F.scaled_dot_product_attention``, trained on a small text, eagerly and compiled, then
sampled with ``topk`` and ``multinomial``.

The model is the shape of nanoGPT's (token and position embeddings, pre-norm blocks of
attention and a GELU MLP, a head tied to the token embedding).  Both runs start from the
same weights and see the same batches; the whole training step (forward, loss, backward,
AdamW) is what ``graphc.compile`` compiles.

    python examples/gpt.py                 # eager, then compiled; prints both losses
"""
import argparse
import math
import time

from tqdm import tqdm

import graphc as torch
import graphc.nn.functional as F
from graphc import nn

from text import CharCodec, batches, load_text


class CausalSelfAttention(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2)
                   for t in self.qkv(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width), nn.Dropout(dropout))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, block_size, width=64, heads=4, layers=2, dropout=0.0):
        super().__init__()
        self.block_size = block_size
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(block_size, width)
        self.blocks = nn.ModuleList(Block(width, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok.weight          # weight tying, as GPT-2
        for name, p in self.named_parameters():     # GPT-2's init
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        x = self.tok(idx) + self.pos(torch.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    @torch.no_grad()
    def generate(self, idx, new_tokens, temperature=1.0, top_k=None, generator=None):
        """Appends ``new_tokens`` sampled one at a time from the top ``top_k`` logits."""
        for _ in range(new_tokens):
            logits, _ = self(idx[:, -self.block_size:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return idx


def train_step(model, optimizer):
    """The training step: the batch's loss, its gradients, the optimizer's update."""
    def step(x, y):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss
    return step


def train(model, steps, data, batch_size, seed, compiled, label, quiet, lr=3e-3):
    """AdamW on random windows; returns the loss of each step and the median step time."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    step = train_step(model, optimizer)
    run = torch.compile(step) if compiled else step
    losses, times = [], []
    stream = batches(data, batch_size, model.block_size, seed)
    bar = tqdm(range(steps), desc=label, disable=quiet, leave=False)
    for _ in bar:
        x, y = next(stream)
        start = time.perf_counter()
        loss = run(x, y).item()
        times.append(time.perf_counter() - start)
        losses.append(loss)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
    return losses, sorted(times[1:] or times)[len(times[1:] or times) // 2]


def main(steps=300, batch_size=16, block_size=32, width=64, heads=4, layers=2, seed=0,
         modes=("eager", "compiled"), sample_tokens=200, quiet=False):
    """Trains one GPT per mode from the same initial weights; returns per mode the
    losses and median step time, and a sample from the last model."""
    text = load_text()
    codec = CharCodec(text)
    data = codec.encode(text)
    results = {}
    for mode in modes:
        torch.manual_seed(seed)
        model = GPT(len(codec.chars), block_size, width, heads, layers)
        losses, step_s = train(model, steps, data, batch_size, seed, mode == "compiled",
                               mode, quiet)
        results[mode] = {"losses": losses, "step_s": step_s}
        if not quiet:
            print(f"{mode:>8}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
                  f"{step_s * 1e3:.1f} ms per step")
    prompt = codec.encode("The data set ").view(1, -1)
    model.eval()
    out = model.generate(prompt, sample_tokens, top_k=10,
                         generator=torch.Generator().manual_seed(seed))
    results["sample"] = codec.decode(out[0])
    if not quiet:
        print(results["sample"])
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["eager", "compiled", "both"], default="both")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    main(steps=args.steps, seed=args.seed, quiet=args.quiet,
         modes=("eager", "compiled") if args.mode == "both" else (args.mode,))

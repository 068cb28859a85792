"""A character-level LSTM language model, trained on a small text eagerly and compiled,
then sampled with ``multinomial``.

``nn.Embedding`` -> a two-layer ``nn.LSTM`` (``batch_first``) -> ``nn.Linear``, trained
with Adam and gradient-norm clipping on random windows of the text.  Compiled, the whole
step is one program: the LSTM's time loop is unrolled over the window length, which
makes the first compiled step slow (about 40 s for 2 layers x 16 steps on a 2-core
machine; the disk cache makes later runs start at once).

    python examples/char_lstm.py           # eager, then compiled; prints both losses
"""
import argparse
import time

from tqdm import tqdm

import graphc as torch
import graphc.nn.functional as F
from graphc import nn

from text import CharCodec, batches, load_text


class CharLSTM(nn.Module):
    def __init__(self, vocab, width=128, layers=2, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, num_layers=layers, batch_first=True,
                            dropout=dropout)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx, state=None):
        out, state = self.lstm(self.embed(idx), state)
        return self.head(out), state

    @torch.no_grad()
    def sample(self, prompt, new_tokens, temperature=0.8, generator=None):
        """Feeds the prompt, then one sampled character at a time, carrying the state."""
        logits, state = self(prompt)
        out = [prompt]
        for _ in range(new_tokens):
            probs = F.softmax(logits[:, -1] / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            out.append(nxt)
            logits, state = self(nxt, state)
        return torch.cat(out, dim=1)


def train(model, steps, data, batch_size, block_size, seed, compiled, label, quiet,
          lr=3e-3, clip=1.0):
    """Adam with gradient clipping; returns the losses and the median step time."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x, y):
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss

    run = torch.compile(step) if compiled else step
    losses, times = [], []
    stream = batches(data, batch_size, block_size, seed)
    bar = tqdm(range(steps), desc=label, disable=quiet, leave=False)
    for _ in bar:
        x, y = next(stream)
        start = time.perf_counter()
        losses.append(run(x, y).item())
        times.append(time.perf_counter() - start)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    later = sorted(times[1:] or times)
    return losses, later[len(later) // 2]


def main(steps=300, batch_size=16, block_size=16, width=128, layers=2, seed=0,
         modes=("eager", "compiled"), sample_tokens=200, quiet=False):
    """Trains one model per mode from the same initial weights; returns per mode the
    losses and median step time, and a sample from the last model."""
    text = load_text()
    codec = CharCodec(text)
    data = codec.encode(text)
    results = {}
    for mode in modes:
        torch.manual_seed(seed)
        model = CharLSTM(len(codec.chars), width, layers)
        losses, step_s = train(model, steps, data, batch_size, block_size, seed,
                               mode == "compiled", mode, quiet)
        results[mode] = {"losses": losses, "step_s": step_s}
        if not quiet:
            print(f"{mode:>8}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
                  f"{step_s * 1e3:.1f} ms per step")
    model.eval()
    out = model.sample(codec.encode("The data set ").view(1, -1), sample_tokens,
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

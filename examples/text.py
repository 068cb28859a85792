"""A small English text that needs no download, as character ids, for the language-model
examples (``gpt.py``, ``char_lstm.py``): the descriptions of scikit-learn's bundled
datasets, about 20 kB."""
from sklearn import datasets

import graphc as torch


def load_text() -> str:
    loaders = (datasets.load_iris, datasets.load_digits, datasets.load_wine,
               datasets.load_breast_cancer, datasets.load_diabetes)
    return "\n\n".join(load().DESCR for load in loaders)


class CharCodec:
    """Characters <-> ids over the characters of a text."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str):
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids.tolist())


def batches(data, batch_size: int, block_size: int, seed: int):
    """Endless (inputs, next-character targets) pairs of random windows of ``data``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        starts = torch.randint(len(data) - block_size - 1, (batch_size,),
                               generator=generator)
        x = torch.stack([data[s:s + block_size] for s in starts.tolist()])
        y = torch.stack([data[s + 1:s + 1 + block_size] for s in starts.tolist()])
        yield x, y

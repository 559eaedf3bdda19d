#!/usr/bin/python3
"""Writes one broken or unusual model file for the bad-input corpus (Debian's python3-torch):
   make_model.py KIND PATH, KIND one of state_dict, pickled, out3d, out1d, huge, nan, tuple, int, dict,
   wrong_input, empty, plain, flipped (plain's weights, another forward), nan_denoiser (images to NaN images).
All take [batch, 1, 12, 12] images (the corpus's synthetic data)."""
import sys

from typing import Dict

import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(144, 8)

    def forward(self, x):
        return self.head(x.flatten(1))


class Out3d(Net):
    def forward(self, x):
        return self.head(x.flatten(1)).unsqueeze(2)


class Out1d(Net):
    def forward(self, x):
        return self.head(x.flatten(1)).sum(1)


class Huge(Net):
    def forward(self, x):
        return self.head(x.flatten(1)) * 1e30


class Nan(Net):
    def forward(self, x):
        return self.head(x.flatten(1)) * float("nan")


class Int(Net):
    def forward(self, x):
        return self.head(x.flatten(1)).long()


class Dict(Net):
    def forward(self, x) -> Dict[str, torch.Tensor]:
        return {"e": self.head(x.flatten(1))}


class WrongInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(100, 8)

    def forward(self, x):
        return self.head(x.flatten(1))


class Empty(Net):
    def forward(self, x):
        return self.head(x.flatten(1))[:, :0]


class Flipped(Net):
    def forward(self, x):
        return self.head(x.flip(3).flatten(1))


class Pair(Net):
    def forward(self, x):
        y = self.head(x.flatten(1))
        return y, y


class NanDenoiser(torch.nn.Module):
    def forward(self, x):
        return x * float("nan")


kind, path = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if kind == "state_dict":
    torch.save(Net().state_dict(), path)
elif kind == "pickled":
    torch.save(Net(), path)
else:
    model = {"out3d": Out3d, "out1d": Out1d, "huge": Huge, "nan": Nan, "tuple": Pair, "int": Int, "dict": Dict,
             "wrong_input": WrongInput, "empty": Empty, "plain": Net, "flipped": Flipped,
             "nan_denoiser": NanDenoiser}[kind]()
    torch.jit.script(model.eval()).save(path)

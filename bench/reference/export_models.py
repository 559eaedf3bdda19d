"""TorchScript models for the Python-vs-rguard benchmark (bench/p2_python_reference.sh).

small_cnn.pt: the quickstart architecture (conv 16, conv 32, linear 64) on 1x28x28, input
normalisation and l2 normalisation inside; resnet18.pt: torchvision's ResNet-18 with a
128-d head on 3x224x224, ImageNet normalisation and l2 normalisation inside. Random
weights (seeded): throughput does not depend on them. Usage: export_models.py OUT_DIR
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(32 * 7 * 7, 64)

    def forward(self, x):
        x = (x - 0.2860) / 0.3530
        return F.normalize(self.head(self.features(x).flatten(1)), dim=1)


class Resnet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torchvision.models.resnet18(num_classes=128)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return F.normalize(self.net((x - self.mean) / self.std), dim=1)


if __name__ == "__main__":
    out = sys.argv[1]
    torch.manual_seed(0)
    for name, model in (("small_cnn", SmallCnn()), ("resnet18", Resnet18())):
        torch.jit.save(torch.jit.script(model.eval()), f"{out}/{name}.pt")

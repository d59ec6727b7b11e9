#!/usr/bin/python3
"""Writes the weight-bomb checkpoints of tests/data (run with /usr/bin/python3).

A torch.save state dict whose every tensor is a stride-0 view (`expand`) of
one number: torch saves the one-element storage once, so a few KB describe a
network of any size. Shaped as WeSpeaker's ResNet34:

  stride0-base1024.pt  1024 base channels: 5.5 G weights (22 GB as float32);
                       the loader must refuse it before allocating anything.
  stride0-base2.pt     2 base channels, within every size bound: refused
                       because its views read one storage element repeatedly.

Usage: /usr/bin/python3 tests/support/make_bomb_models.py [tests/data]
"""
import collections
import os
import sys

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "data")


def bomb(channels, blocks=(3, 4, 6, 3), embed_dim=256, feat_dim=80):
    one = torch.full((1,), 0.01)

    def view(*shape):
        return one.view(*([1] * len(shape))).expand(*shape)

    state = collections.OrderedDict()

    def conv_bn(conv, bn, out_ch, in_ch, kernel):
        state[conv + ".weight"] = view(out_ch, in_ch, kernel, kernel)
        for name in ("weight", "bias", "running_mean", "running_var"):
            state[bn + "." + name] = view(out_ch)

    conv_bn("conv1", "bn1", channels, 1, 3)
    in_ch = channels
    for stage, count in enumerate(blocks):
        planes = channels << stage
        for b in range(count):
            block = "layer%d.%d." % (stage + 1, b)
            stride = 2 if stage > 0 and b == 0 else 1
            conv_bn(block + "conv1", block + "bn1", planes, in_ch, 3)
            conv_bn(block + "conv2", block + "bn2", planes, planes, 3)
            if stride != 1 or in_ch != planes:
                conv_bn(block + "shortcut.0", block + "shortcut.1", planes,
                        in_ch, 1)
            in_ch = planes
    rows = feat_dim
    for _ in range(3):
        rows = (rows - 1) // 2 + 1
    state["seg_1.weight"] = view(embed_dim, 2 * in_ch * rows)
    state["seg_1.bias"] = view(embed_dim)
    return state


def main():
    torch.save(bomb(1024), os.path.join(OUT, "stride0-base1024.pt"))
    torch.save(bomb(2), os.path.join(OUT, "stride0-base2.pt"))


if __name__ == "__main__":
    main()

"""xresnet1d: the benchmark's best network family on PTB-XL (Strodthoff et al. 2020; their fastai models/xresnet1d.py,
itself fastai's XResNet in 1D), on the raw 12-lead signal (N, 12, T) -> (N, outputs) logits for any T of a few
dozen samples or more (global pooling).

The ResNet-D ("bag of tricks") changes to a plain ResNet, in 1D with the benchmark's kernel size 5:
- a stem of three convolutions (12 -> 32 -> 32 -> 64 channels, the first with stride 2), then a max-pool (3, 2);
- four stages, the later three halving time; a block that downsamples strides its middle (k-wide) convolution,
  and its shortcut average-pools (2, ceil) before its 1x1 convolution, so no sample is skipped;
- the last batch norm of every block starts at zero (the block starts as its shortcut);
- the benchmark's widths: 64 in every stage (not 64-128-256-512), x4 in bottleneck blocks (expansion 4);
- the concat-pooling head (models/layers1d.py).

xresnet1d18 [2, 2, 2, 2] and xresnet1d34 [3, 4, 6, 3] use basic blocks (two k-wide convolutions), xresnet1d50
[3, 4, 6, 3] and xresnet1d101 [3, 4, 23, 3] bottleneck blocks (1x1 -> k -> 1x1, 4x wider out).

One difference from the benchmark as it ran: its training script re-initialises every batch norm to weight 1
(`weight_init`, applied after the model is built), which undoes the zero init; here it is kept, as the model
definition intends (it matters most for the 101-layer network trained from scratch).
"""
import paddle.nn as nn

from .layers1d import ConcatPoolHead, conv_bn

WIDTH = 64  # every stage, before the expansion
STEM = (32, 32, 64)
DEPTHS = {"xresnet1d18": (1, (2, 2, 2, 2)), "xresnet1d34": (1, (3, 4, 6, 3)), "xresnet1d50": (4, (3, 4, 6, 3)),
          "xresnet1d101": (4, (3, 4, 23, 3))}  # arch: (expansion, blocks per stage)


class XResBlock(nn.Layer):
    """Basic (expansion 1) or bottleneck (expansion 4) block from `cin` to `width * expansion` channels."""

    def __init__(self, expansion, cin, width, stride, kernel):
        super().__init__()
        cout = width * expansion
        if expansion == 1:
            convs = [conv_bn(cin, width, kernel, stride), conv_bn(width, cout, kernel, act=False, zero_bn=True)]
        else:
            convs = [conv_bn(cin, width, 1), conv_bn(width, width, kernel, stride),
                     conv_bn(width, cout, 1, act=False, zero_bn=True)]
        self.convs = nn.Sequential(*convs)
        shortcut = []
        if stride != 1:
            shortcut.append(nn.AvgPool1D(2, stride=2, ceil_mode=True))
        if cin != cout:
            shortcut.append(conv_bn(cin, cout, 1, act=False))
        self.shortcut = nn.Sequential(*shortcut) if shortcut else None
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.convs(x) + (self.shortcut(x) if self.shortcut is not None else x))


class XResNet1D(nn.Layer):
    def __init__(self, expansion, blocks, num_outputs, in_channels=12, kernel=5, stem_kernel=5):
        super().__init__()
        sizes = (in_channels,) + STEM
        self.stem = nn.Sequential(*[conv_bn(sizes[i], sizes[i + 1], stem_kernel, stride=2 if i == 0 else 1)
                                    for i in range(3)], nn.MaxPool1D(3, stride=2, padding=1))
        layers, cin = [], STEM[-1]
        for stage, n in enumerate(blocks):
            for b in range(n):
                layers.append(XResBlock(expansion, cin, WIDTH, 2 if (stage > 0 and b == 0) else 1, kernel))
                cin = WIDTH * expansion
        self.layers = nn.Sequential(*layers)
        self.head = ConcatPoolHead(cin, num_outputs)

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


def xresnet1d(arch, num_outputs):
    expansion, blocks = DEPTHS[arch]
    return XResNet1D(expansion, blocks, num_outputs)

"""inception1d: InceptionTime (Fawaz et al. 2020) as the PTB-XL benchmark builds it (Strodthoff et al. 2020, their
fastai models/inception1d.py), on the raw 12-lead signal (N, 12, T) -> (N, outputs) logits for any T (global
pooling; no stride anywhere, so time keeps its length until the head).

Six inception blocks; each: a 1x1 bottleneck to 32 channels, then three parallel convolutions of it (kernels 39,
19 and 9: the benchmark's base kernel 40 = 8 x 5, halved twice and made odd) beside a max-pool (3, stride 1) of the
block's input followed by a 1x1 convolution, 32 filters each, concatenated (128 channels), batch norm, ReLU.
Every third block adds a shortcut from the input of the three (1x1 convolution and batch norm), then ReLU.
Convolutions without bias, He-initialised; the concat-pooling head (models/layers1d.py).
"""
import paddle
import paddle.nn as nn

from .layers1d import ConcatPoolHead, batch_norm1d, conv1d


class InceptionBlock1D(nn.Layer):
    def __init__(self, cin, filters, kernels, bottleneck):
        super().__init__()
        self.bottleneck = conv1d(cin, bottleneck, 1)
        self.convs = nn.LayerList([conv1d(bottleneck, filters, k) for k in kernels])
        self.pool_branch = nn.Sequential(nn.MaxPool1D(3, stride=1, padding=1), conv1d(cin, filters, 1))
        self.bn_relu = nn.Sequential(batch_norm1d((len(kernels) + 1) * filters), nn.ReLU())

    def forward(self, x):
        b = self.bottleneck(x)
        return self.bn_relu(paddle.concat([c(b) for c in self.convs] + [self.pool_branch(x)], axis=1))


class Shortcut1D(nn.Layer):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv, self.bn, self.relu = conv1d(cin, cout, 1), batch_norm1d(cout), nn.ReLU()

    def forward(self, x, out):
        return self.relu(out + self.bn(self.conv(x)))


class Inception1D(nn.Layer):
    def __init__(self, num_outputs, in_channels=12, kernel=40, depth=6, bottleneck=32, filters=32):
        super().__init__()
        assert kernel >= 40 and depth % 3 == 0
        kernels = [k - 1 if k % 2 == 0 else k for k in (kernel, kernel // 2, kernel // 4)]  # 39, 19, 9
        width = (len(kernels) + 1) * filters
        self.blocks = nn.LayerList([InceptionBlock1D(in_channels if d == 0 else width, filters, kernels, bottleneck)
                                    for d in range(depth)])
        self.shortcuts = nn.LayerList([Shortcut1D(in_channels if s == 0 else width, width) for s in range(depth // 3)])
        self.head = ConcatPoolHead(width, num_outputs)

    def forward(self, x):
        res = x
        for d, block in enumerate(self.blocks):
            x = block(x)
            if d % 3 == 2:
                x = self.shortcuts[d // 3](res, x)
                res = x
        return self.head(x)


def inception1d(num_outputs):
    return Inception1D(num_outputs)

"""Layers the benchmark's 1D networks share (xresnet1d, inception1d; Strodthoff et al. 2020, "Deep Learning for ECG
Analysis: Benchmarks and Insights from PTB-XL", whose fastai code they follow): a convolution with batch norm and
ReLU, and the concat-pooling head. Initialisation as the benchmark's `weight_init`: He (Kaiming) normal for
convolutions and linear layers, zero biases, batch norm weight 1 and bias 0 (but see `zero_bn`)."""
import paddle
import paddle.nn as nn

KAIMING = nn.initializer.KaimingNormal()  # fan in, gain sqrt(2): torch's kaiming_normal_ default


def conv1d(cin, cout, kernel, stride=1, bias=False):
    """A 'same' convolution ((k - 1) // 2 padding each side), He-initialised."""
    return nn.Conv1D(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2,
                     weight_attr=paddle.ParamAttr(initializer=KAIMING),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)) if bias else False)


def batch_norm1d(channels, zero=False):
    """Batch norm, weight 1 (0 with `zero`: the block starts as its shortcut, the ResNet-D / bag-of-tricks init)."""
    return nn.BatchNorm1D(channels, weight_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0 if zero else 1.0)),
                          bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))


def conv_bn(cin, cout, kernel, stride=1, act=True, zero_bn=False):
    """conv -> batch norm [-> ReLU] (fastai's ConvLayer, bn_1st)."""
    layers = [conv1d(cin, cout, kernel, stride), batch_norm1d(cout, zero_bn)]
    return nn.Sequential(*(layers + [nn.ReLU()] if act else layers))


def linear(cin, cout):
    return nn.Linear(cin, cout, weight_attr=paddle.ParamAttr(initializer=KAIMING),
                     bias_attr=paddle.ParamAttr(initializer=nn.initializer.Constant(0.0)))


class ConcatPoolHead(nn.Layer):
    """The benchmark's head (create_head1d, lin_ftrs_head [128], ps_head 0.5): max- and average-pooling over time
    concatenated (any length works), then BN -> dropout 0.25 -> linear 128 -> ReLU -> BN -> dropout 0.5 -> linear."""

    def __init__(self, channels, num_outputs, hidden=128, dropout=0.5):
        super().__init__()
        self.fc1 = nn.Sequential(batch_norm1d(2 * channels), nn.Dropout(dropout / 2), linear(2 * channels, hidden), nn.ReLU())
        self.fc2 = nn.Sequential(batch_norm1d(hidden), nn.Dropout(dropout), linear(hidden, num_outputs))

    def forward(self, x):
        x = paddle.concat([x.max(axis=-1), x.mean(axis=-1)], axis=1)
        return self.fc2(self.fc1(x))

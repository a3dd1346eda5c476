"""A small 1D residual network on the raw 12-lead signal (12, L): wide kernels because ECG waves span tens of
samples, four stages halving time, then average- and max-pooling over time (any length L works, so training
crops and whole records at validation share the weights)."""
import paddle
import paddle.nn as nn


class BasicBlock1D(nn.Layer):
    def __init__(self, cin, cout, stride, kernel=7):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1D(cin, cout, kernel, stride=stride, padding=pad, bias_attr=False)
        self.bn1 = nn.BatchNorm1D(cout)
        self.conv2 = nn.Conv1D(cout, cout, kernel, padding=pad, bias_attr=False)
        self.bn2 = nn.BatchNorm1D(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv1D(cin, cout, 1, stride=stride, bias_attr=False), nn.BatchNorm1D(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class ResNet1D(nn.Layer):
    def __init__(self, num_classes, in_channels=12, widths=(32, 64, 128, 256), blocks=(2, 2, 2, 2), dropout=0.2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1D(in_channels, widths[0], 15, stride=2, padding=7, bias_attr=False),
                                  nn.BatchNorm1D(widths[0]), nn.ReLU(), nn.MaxPool1D(3, stride=2, padding=1))
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for b in range(n):
                layers.append(BasicBlock1D(cin, w, stride=2 if (b == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        x = paddle.concat([x.mean(axis=-1), x.max(axis=-1)], axis=1)
        return self.fc(self.dropout(x))


def resnet1d(num_classes=2):
    return ResNet1D(num_classes)

"""Small PyTorch models that exercise individual streaming constructs.

Each model is tiny (well under 60 KB as ONNX), takes exactly one float input with
batch 1 and fixed shapes, returns one float tensor, and is built seeded and in eval
mode.  Every BatchNorm gets random affine parameters *and* random running stats so
that BN actually does something after folding.

Time is the last axis of every input.  ``MODELS`` maps the fixture name to
``(builder, input_shape)``; ``build(name)`` returns the seeded eval-mode module.

Used by ``examples/streaming/export.py`` to write ``tests/fixtures/streaming/``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------- helpers


def _causal_pad(x: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Left zero-pad the last (time) axis by (k-1)*d frames."""
    return F.pad(x, ((kernel_size - 1) * dilation, 0))


def randomize_bn(model: nn.Module, seed: int) -> None:
    """Give every BatchNorm random gamma/beta and non-trivial running mean/var."""
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))             # gamma in [0.5, 1.5)
                m.bias.copy_(0.2 * torch.randn(c, generator=g))               # beta
                m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                m.running_var.copy_(0.25 + 1.5 * torch.rand(c, generator=g))  # var in [0.25, 1.75)


# --------------------------------------------------------------------------- 1. tcn_residual


class _TCNBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dilation: int, act: nn.Module,
                 chomp: bool = False, kernel_size: int = 3):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.chomp = chomp
        # chomp: the classic TCN way (symmetric Conv1d padding, then drop the last `pad` frames)
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation,
                              padding=self.pad if chomp else 0)
        self.bn = nn.BatchNorm1d(c_out)
        self.act = act
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chomp:
            h = self.conv(x)[:, :, :-self.pad]
        else:
            h = self.conv(F.pad(x, (self.pad, 0)))
        return self.act(self.bn(h)) + self.skip(x)


class TCNResidual(nn.Module):
    """Residual dilated causal TCN (d = 1, 2, 4, 8; k = 3), per-frame output.

    Exercises: causal F.pad and Conv1d-padding + chomp slice, Conv->BN->act with
    exact-erf GELU / Tanh / Hardswish, residual Add with 1x1-conv skips where the
    channel count changes, causal MaxPool1d(3, stride=1) after a -1e4 left pad,
    1x1 conv head.  [1, 8, 32] -> [1, 4, 32].
    """

    input_shape = (1, 8, 32)

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(
            _TCNBlock(8, 16, 1, nn.GELU(approximate="none")),
            _TCNBlock(16, 16, 2, nn.Tanh(), chomp=True),
            _TCNBlock(16, 16, 4, nn.Hardswish()),
            _TCNBlock(16, 12, 8, nn.GELU(approximate="none")),
        )
        self.pool = nn.MaxPool1d(3, stride=1)
        self.head = nn.Conv1d(12, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)
        h = self.pool(F.pad(h, (2, 0), value=-1e4))
        return self.head(h)


# --------------------------------------------------------------------------- 2. strided_encoder


class StridedEncoder(nn.Module):
    """Causal Conv1d stack with two stride-2 layers (k=4 then k=3), 1/4 output rate.

    Exercises: strided causal convs (left pad k-1 via F.pad), BN, ReLU, rate
    change by 4.  [1, 8, 32] -> [1, 16, 8].
    """

    input_shape = (1, 8, 32)

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(8, 12, 3)
        self.b1 = nn.BatchNorm1d(12)
        self.c2 = nn.Conv1d(12, 16, 4, stride=2)
        self.b2 = nn.BatchNorm1d(16)
        self.c3 = nn.Conv1d(16, 16, 3, stride=2)
        self.b3 = nn.BatchNorm1d(16)
        self.head = nn.Conv1d(16, 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b1(self.c1(_causal_pad(x, 3))))
        h = F.relu(self.b2(self.c2(_causal_pad(h, 4))))   # 32 -> 16
        h = F.relu(self.b3(self.c3(_causal_pad(h, 3))))   # 16 -> 8
        return self.head(h)


# --------------------------------------------------------------------------- 3. spectrogram_cnn


class SpectrogramCNN(nn.Module):
    """2-D CNN over a [F=16 mel, T=24] spectrogram, causal in time only.

    Exercises: Conv2d k=(3,3) with symmetric frequency padding (Conv padding=(1,0))
    and causal time padding (F.pad(x, (p, 0, 0, 0))), stride 2 along frequency,
    dilation 2 along time, BatchNorm2d, ReLU, flatten(1, 2) of channels x freq into
    a [1, C*F', T] sequence, 1x1 Conv1d head.  [1, 1, 16, 24] -> [1, 6, 24].
    """

    input_shape = (1, 1, 16, 24)

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, (3, 3), padding=(1, 0))
        self.b1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 8, (3, 3), stride=(2, 1), padding=(1, 0))   # F 16 -> 8
        self.b2 = nn.BatchNorm2d(8)
        self.c3 = nn.Conv2d(8, 8, (3, 3), dilation=(1, 2), padding=(1, 0))  # time dilation 2
        self.b3 = nn.BatchNorm2d(8)
        self.head = nn.Conv1d(8 * 8, 6, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b1(self.c1(F.pad(x, (2, 0, 0, 0)))))
        h = F.relu(self.b2(self.c2(F.pad(h, (2, 0, 0, 0)))))
        h = F.relu(self.b3(self.c3(F.pad(h, (4, 0, 0, 0)))))
        h = h.flatten(1, 2)                  # [1, 8, 8, 24] -> [1, 64, 24]
        return self.head(h)


# --------------------------------------------------------------------------- 4. window_classifier


class WindowClassifier(nn.Module):
    """Two causal convs, global mean over time, Linear, Softmax: one output per window.

    Exercises: time reduction (mean over the whole window, ReduceMean), Linear
    (Gemm/MatMul), Softmax on the last axis.  [1, 8, 16] -> [1, 5].
    """

    input_shape = (1, 8, 16)

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(8, 16, 3)
        self.c2 = nn.Conv1d(16, 16, 3, dilation=2)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c1(_causal_pad(x, 3)))
        h = F.relu(self.c2(_causal_pad(h, 3, 2)))
        h = h.mean(dim=2)
        return torch.softmax(self.fc(h), dim=-1)


# --------------------------------------------------------------------------- 5./9. rnn taggers


class _RNNTagger(nn.Module):
    input_shape = (1, 8, 20)

    def __init__(self, rnn: nn.Module, hidden: int):
        super().__init__()
        self.conv = nn.Conv1d(8, 16, 3)
        self.rnn = rnn
        self.fc = nn.Linear(hidden, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(_causal_pad(x, 3)))
        h = h.permute(0, 2, 1)               # [1, T, 16]
        h, _ = self.rnn(h)                   # zero initial state
        return self.fc(h)                    # [1, T, 6]


class GRUTagger(_RNNTagger):
    """Causal conv front-end, then a GRU over time, per-frame Linear.

    Exercises: Transpose to [N, T, C], recurrent state (GRU, zero h0), time on
    axis 1 of the output.  [1, 8, 20] -> [1, 20, 6].
    """

    def __init__(self):
        super().__init__(nn.GRU(16, 24, batch_first=True), 24)


class LSTMTagger(_RNNTagger):
    """Like GRUTagger with nn.LSTM(16, 16): recurrent state (h, c), zero init.

    [1, 8, 20] -> [1, 20, 6].
    """

    def __init__(self):
        super().__init__(nn.LSTM(16, 16, batch_first=True), 16)


# --------------------------------------------------------------------------- 6. lookahead_tcn


class _LookaheadBlock(nn.Module):
    def __init__(self, c: int, k: int, d: int):
        super().__init__()
        self.conv = nn.Conv1d(c, c, k, dilation=d, padding=d * (k - 1) // 2)
        self.bn = nn.BatchNorm1d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x))) + x


class LookaheadTCN(nn.Module):
    """Non-causal TCN: symmetric Conv1d padding (look-ahead of d*(k-1)/2 frames).

    Exercises: centred convs (k=3 d=1, k=5 d=2, k=3 d=2), residual adds whose skip
    path bypasses the delayed path (needs delay alignment when streaming), BN,
    ReLU.  [1, 8, 24] -> [1, 4, 24].
    """

    input_shape = (1, 8, 24)

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv1d(8, 12, 1)
        self.blocks = nn.Sequential(
            _LookaheadBlock(12, 3, 1),
            _LookaheadBlock(12, 5, 2),
            _LookaheadBlock(12, 3, 2),
        )
        self.head = nn.Conv1d(12, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.inp(x)))


# --------------------------------------------------------------------------- 7. multi_window


class MultiWindow(nn.Module):
    """One tensor read by two causal convs with different receptive fields.

    Exercises: fan-out of a streamed tensor to two windows (k=3 d=1 needs 3
    frames, k=5 d=2 needs 9), Concat along channels, 1x1 conv.
    [1, 8, 16] -> [1, 4, 16].
    """

    input_shape = (1, 8, 16)

    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(8, 8, 3)
        self.b = nn.Conv1d(8, 8, 5, dilation=2)
        self.bn = nn.BatchNorm1d(16)
        self.head = nn.Conv1d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ha = self.a(_causal_pad(x, 3))
        hb = self.b(_causal_pad(x, 5, 2))
        h = F.relu(self.bn(torch.cat([ha, hb], dim=1)))
        return self.head(h)


# --------------------------------------------------------------------------- 8. upsampler


class Upsampler(nn.Module):
    """Causal conv, then ConvTranspose1d(k=2, s=2, p=0): 2x output rate.

    Exercises: rate increase (each input frame yields exactly 2 output frames, no
    overlap, so it is causal), BN, ReLU, 1x1 conv.  [1, 8, 16] -> [1, 4, 32].
    """

    input_shape = (1, 8, 16)

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(8, 8, 3)
        self.b1 = nn.BatchNorm1d(8)
        self.up = nn.ConvTranspose1d(8, 8, kernel_size=2, stride=2, padding=0)
        self.head = nn.Conv1d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b1(self.c1(_causal_pad(x, 3))))
        h = F.relu(self.up(h))
        return self.head(h)


# --------------------------------------------------------------------------- registry


MODELS: dict[str, type[nn.Module]] = {
    "tcn_residual": TCNResidual,
    "strided_encoder": StridedEncoder,
    "spectrogram_cnn": SpectrogramCNN,
    "window_classifier": WindowClassifier,
    "gru_tagger": GRUTagger,
    "lookahead_tcn": LookaheadTCN,
    "multi_window": MultiWindow,
    "upsampler": Upsampler,
    "lstm_tagger": LSTMTagger,
}


def build(name: str, seed: int = 0) -> nn.Module:
    """Seeded default init + randomized BatchNorm stats, eval mode."""
    cls: Callable[[], nn.Module] = MODELS[name]
    torch.manual_seed(seed)
    model = cls()
    randomize_bn(model, seed)
    model.eval()
    return model


def input_shape(name: str) -> tuple[int, ...]:
    return tuple(MODELS[name].input_shape)

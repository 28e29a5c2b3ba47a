"""``elman``: the plain recurrent network s_t = tanh(W x_t + U s_{t-1} + b)."""

from torch import nn

from .fused import FusedRNNCore
from .registry import register_core


@register_core("elman")
class ElmanCore(FusedRNNCore):
    """Elman RNN with tanh, run by torch's fused ``nn.RNN``. State ``{"h": [B, L, H]}``."""

    def make_rnn(self, input_size: int, hidden_size: int, num_layers: int) -> nn.RNNBase:
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity="tanh")

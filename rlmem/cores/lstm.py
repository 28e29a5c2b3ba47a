"""``lstm``: long short-term memory (torch's fused ``nn.LSTM``)."""

from torch import nn

from .fused import FusedRNNCore
from .registry import register_core


@register_core("lstm")
class LSTMCore(FusedRNNCore):
    """LSTM. State ``{"h": [B, L, H], "c": [B, L, H]}``; the output is the top layer's h."""

    state_keys = ("h", "c")

    def make_rnn(self, input_size: int, hidden_size: int, num_layers: int) -> nn.RNNBase:
        return nn.LSTM(input_size, hidden_size, num_layers)

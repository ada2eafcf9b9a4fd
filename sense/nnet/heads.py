"""Frame-level heads put on top of a speech encoder.

:class:`CTCProbe` is the SLU probe of the SENSE paper (appendix B1): encoder
frames -> one hidden layer (1024 units, LeakyReLU, dropout 0.15) -> a linear
layer -> log-softmax over the output characters, trained with the CTC loss.
"""

from __future__ import annotations

import torch
from torch import nn

#: The paper's probe: hidden size and dropout.
PROBE_HIDDEN = 1024
PROBE_DROPOUT = 0.15


class CTCProbe(nn.Module):
    """Per-frame log-probabilities over an output alphabet.

    Parameters
    ----------
    input_dim : int
        Size of the encoder frames.
    num_symbols : int
        Size of the output alphabet, CTC blank included.
    hidden_dim : int
        Units of the hidden layer.
    dropout : float
        Dropout after the activation.

    Example
    -------
    >>> probe = CTCProbe(32, num_symbols=10, hidden_dim=16)
    >>> probe(torch.randn(2, 7, 32)).shape
    torch.Size([2, 7, 10])
    """

    def __init__(
        self,
        input_dim: int,
        num_symbols: int,
        hidden_dim: int = PROBE_HIDDEN,
        dropout: float = PROBE_DROPOUT,
    ):
        super().__init__()
        self.input_dim = int(input_dim)
        self.num_symbols = int(num_symbols)
        self.hidden_dim = int(hidden_dim)
        self.dropout = float(dropout)
        self.hidden = nn.Linear(self.input_dim, self.hidden_dim)
        self.activation = nn.LeakyReLU()
        self.drop = nn.Dropout(self.dropout)
        self.output = nn.Linear(self.hidden_dim, self.num_symbols)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [B, T, num_symbols] (float32) of frames [B, T, input_dim]."""
        logits = self.output(self.drop(self.activation(self.hidden(frames))))
        return torch.log_softmax(logits.float(), dim=-1)

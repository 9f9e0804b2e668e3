"""int8 decoding: PyTorch dynamic quantisation of a trained model's linear layers.

`quantize_int8(model)` replaces every `nn.Linear` (the output projection, the attention and
readout projections of the RNN, every projection and feed-forward layer of the Transformer;
with a vocabulary shortlist all but the output projection) by its dynamically quantised int8
version: weights stored as int8 (per output channel), activations quantised per batch, int8
matmuls (oneDNN / fbgemm), float32 in and out. The recurrent cells keep their float32 weights
(the decoder's step loop reads them directly), as do the embeddings. Inference only, on the
CPU, with float32 activations (no bf16 autocast).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

QUANTIZE = ("int8",)  # --quantize


def quantize_int8(model: nn.Module, keep_output: bool = False) -> nn.Module:
    """The model (in eval mode, on the CPU) with its nn.Linear layers dynamically quantised;
    with `keep_output`, all but the output projection (`model.output_layer`), which stays
    float so that a vocabulary shortlist (nmt.shortlist) can pick its rows."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = model.cpu().eval()
    spec: dict = {nn.Linear: per_channel_dynamic_qconfig}
    if keep_output:
        output = model.output_layer
        spec = {
            name: per_channel_dynamic_qconfig
            for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m is not output
        }
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=False)


def is_quantized(model: nn.Module) -> bool:
    """Whether any layer of `model` is a dynamically quantised int8 one."""
    from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear

    return any(isinstance(m, QuantizedLinear) for m in model.modules())

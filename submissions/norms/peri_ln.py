"""Peri-LN: LayerNorm around each transformer sublayer, on its input and output.

Kim et al., "Peri-LN: Revisiting Normalization Layer in the Transformer
Architecture", ICML 2025 (arXiv:2502.02732). Pre-LN computes
``x + Module(LN(x))``; Peri-LN also normalizes the sublayer's output before the
residual add:

    x = x + LN_out(Module(LN_in(x)))

so the residual stream grows by bounded-variance increments. ``make_norm``
builds the input norms (and the final norm) as ``nn.LayerNorm``;
``transform_model`` fills the output-norm slots that the model provides: every
module with ``attn_out_norm`` and ``mlp_out_norm`` attributes (the gpt
workload's Block, where they are ``nn.Identity`` by default) gets a fresh
``nn.LayerNorm`` in each (gain 1, shift 0). A model without those slots cannot
be made Peri-LN by a norm plugin, and is refused with a clear error.
"""

from torch import nn

KIND = "norm"
DESCRIPTION = "Peri-LN: LayerNorm on each sublayer's input and output (token)"
PAPER = "Kim et al., Peri-LN: Revisiting Normalization Layer in the Transformer Architecture, ICML 2025, arXiv:2502.02732"
SITES = ("token",)
DEFAULTS = {"eps": 1e-5}
SEARCH_SPACE = {}

OUTPUT_SLOTS = ("attn_out_norm", "mlp_out_norm")


def make_norm(site, num_features, hp):
    if site not in SITES:
        raise ValueError(f"peri_ln supports sites {SITES}, not {site!r}")
    return nn.LayerNorm(num_features, eps=hp.eps)


def _width(block):
    """The residual width of a block: the size of its (input) LayerNorms."""
    sizes = {m.normalized_shape for m in block.modules() if isinstance(m, nn.LayerNorm)}
    if len(sizes) != 1:
        raise ValueError(
            f"peri_ln: cannot tell the residual width of {type(block).__name__} "
            f"(its LayerNorms have shapes {sorted(sizes) or 'none'})"
        )
    return sizes.pop()


def transform_model(model, hp):
    blocks = [m for m in model.modules() if all(hasattr(m, slot) for slot in OUTPUT_SLOTS)]
    if not blocks:
        raise ValueError(
            f"peri_ln needs a model whose blocks have output-norm slots {OUTPUT_SLOTS} "
            f"(as the gpt workload's Block); {type(model).__name__} has none"
        )
    for block in blocks:
        width = _width(block)
        for slot in OUTPUT_SLOTS:
            current = getattr(block, slot)
            if not isinstance(current, nn.Identity):
                raise ValueError(f"peri_ln: {type(block).__name__}.{slot} is already {type(current).__name__}, expected nn.Identity")
            # on the block's device and dtype, since the runner may build on the device
            ref = next(block.parameters())
            setattr(block, slot, nn.LayerNorm(width, eps=hp.eps, device=ref.device, dtype=ref.dtype))
    return model

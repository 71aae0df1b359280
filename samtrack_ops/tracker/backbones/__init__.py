"""Image encoders of the DeAOT family, named as in the official checkpoints (``encoder.*``).

Each backbone module exposes ``build(frozen_bn=True) -> nn.Module``; the module's ``forward(image)``
returns the list of feature maps the DeAOT decoder and LSTT consume (strides 4, 8, 16, 16).
"""

import importlib

_BACKBONE_MODULES = {
    "resnet50": "resnet",
    "mobilenetv2": "mobilenetv2",
    "swin_base": "swin",
}


def build_backbone(name):
    """Builds the encoder called ``name`` ("resnet50", "mobilenetv2" or "swin_base")."""
    if name not in _BACKBONE_MODULES:
        raise ValueError(f"Unknown DeAOT encoder {name!r}; expected one of {sorted(_BACKBONE_MODULES)}")
    module = importlib.import_module(f"{__name__}.{_BACKBONE_MODULES[name]}")
    return module.build()

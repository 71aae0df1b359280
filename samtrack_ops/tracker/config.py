"""The DeAOT model family as data: one implementation, six configurations.

Values follow the AOT authors' model configurations (``configs/models/*deaot*.py`` of
yoxu515/aot-benchmark) and what SAM-Track sets when it drives the tracker (memory options).
"""

import dataclasses

MAX_OBJECTS_PER_ENGINE = 10


@dataclasses.dataclass(frozen=True)
class DeAOTConfig:
    """Architecture and inference settings of one DeAOT variant.

    encoder: backbone registry name ("resnet50", "mobilenetv2", "swin_base").
    encoder_dims: channels of the encoder features at strides 4, 8, 16, 16.
    lstt_layers: number of gated propagation (LSTT) layers.
    embed_dim: token width of the visual branch (the identity branch has the same width).
    self_heads, att_heads: heads of the self-propagation and of the memory attention (DeAOT: one
        head with a 128-wide key).
    expand_ratio: width of values and gates relative to the propagated features.
    local_max_distance: radius of the short-term attention window (7: 15 x 15).
    align_corners: True for "16k+1" input sizes (17x17 ID-bank conv, bilinear align_corners);
        False for multiples of 16 (16x16 ID-bank conv).
    max_objects: identities per engine (decoder outputs max_objects + 1 channels).
    long_term_mem_gap: the authors' evaluation gap for this variant (SAM-Track overrides it).
    """

    name: str
    encoder: str
    encoder_dims: tuple
    lstt_layers: int
    embed_dim: int = 256
    self_heads: int = 1
    att_heads: int = 1
    expand_ratio: float = 2.0
    local_max_distance: int = 7
    align_corners: bool = True
    max_objects: int = MAX_OBJECTS_PER_ENGINE
    long_term_mem_gap: int = 9999
    stride: int = 16
    max_long_edge: float = 800 * 1.3

    @property
    def num_identities(self):
        """Channels of the one-hot mask and of the decoder output (background + identities)."""
        return self.max_objects + 1


_MOBILENET_DIMS = (24, 32, 96, 1280)
_RESNET50_DIMS = (256, 512, 1024, 1024)
_SWIN_BASE_DIMS = (128, 256, 512, 512)

CONFIGS = {
    config.name: config
    for config in (
        DeAOTConfig("deaott", "mobilenetv2", _MOBILENET_DIMS, lstt_layers=1),
        DeAOTConfig("deaots", "mobilenetv2", _MOBILENET_DIMS, lstt_layers=2),
        DeAOTConfig("deaotb", "mobilenetv2", _MOBILENET_DIMS, lstt_layers=3),
        DeAOTConfig("deaotl", "mobilenetv2", _MOBILENET_DIMS, lstt_layers=3, long_term_mem_gap=5),
        DeAOTConfig("r50_deaotl", "resnet50", _RESNET50_DIMS, lstt_layers=3, long_term_mem_gap=5),
        DeAOTConfig(
            "swinb_deaotl",
            "swin_base",
            _SWIN_BASE_DIMS,
            lstt_layers=3,
            align_corners=False,
            long_term_mem_gap=5,
        ),
    )
}

# SAM-Track's memory settings (its model_args.aot_args): every variant is driven with these.
SAMTRACK_LONG_TERM_MEM_GAP = 9999
SAMTRACK_MAX_LEN_LONG_TERM = 9999


def get_config(name):
    """Returns the DeAOTConfig registered as ``name`` (e.g. "r50_deaotl")."""
    if name not in CONFIGS:
        raise ValueError(f"Unknown DeAOT model {name!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[name]

"""The DeAOT network (inference only), built from a DeAOTConfig; state-dict names as the official ones."""

from torch import nn

from samtrack_ops.tracker.backbones import build_backbone
from samtrack_ops.tracker.config import DeAOTConfig, get_config
from samtrack_ops.tracker.decoder import FPNDecoder
from samtrack_ops.tracker.lstt import DualBranchLSTT


class DeAOTNetwork(nn.Module):
    """Encoder, identity bank, LSTT and FPN decoder of one DeAOT variant.

    Shapes for an input of H x W (H = 16 h + 1 with align_corners, else 16 h; W likewise):
    encoder features at strides 4, 8, 16; tokens (B, h * w, embed_dim); logits (B, max_objects + 1,
    H/4, W/4) rounded like the encoder's convolutions.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.encoder = build_backbone(config.encoder)
        self.encoder_projector = nn.Conv2d(config.encoder_dims[-1], dim, kernel_size=1)
        self.LSTT = DualBranchLSTT(
            config.lstt_layers,
            dim,
            config.self_heads,
            config.att_heads,
            expand_ratio=config.expand_ratio,
            max_distance=config.local_max_distance,
        )
        self.decoder = FPNDecoder(
            in_dim=dim * 2,
            out_dim=config.num_identities,
            hidden_dim=dim,
            shortcut_dims=config.encoder_dims,
            align_corners=config.align_corners,
        )
        if config.align_corners:
            self.patch_wise_id_bank = nn.Conv2d(config.num_identities, dim, kernel_size=17, stride=16, padding=8)
        else:
            self.patch_wise_id_bank = nn.Conv2d(config.num_identities, dim, kernel_size=16, stride=16)
        self.id_norm = nn.LayerNorm(dim)

    @property
    def dtype(self):
        """Floating-point dtype of the weights; every tensor the tracker feeds the network has it."""
        return self.encoder_projector.weight.dtype

    def encode_image(self, image):
        """image: (B, 3, H, W) normalised -> (features [s4, s8, s16, ...], tokens (B, h*w, dim), (h, w))."""
        features = self.encoder(image)
        projected = self.encoder_projector(features[-1])
        size_2d = tuple(projected.shape[-2:])
        return features, projected.flatten(2).transpose(1, 2), size_2d

    def identity_embedding(self, one_hot):
        """one_hot: (B, K, H, W) with K <= max_objects + 1 leading channels (background first; the
        omitted channels are all zero) -> normalised ID embedding (B, h * w, dim).
        """
        weight = self.patch_wise_id_bank.weight[:, : one_hot.shape[1]]
        conv = self.patch_wise_id_bank
        embedding = nn.functional.conv2d(
            one_hot, weight, conv.bias, stride=conv.stride, padding=conv.padding
        )
        return self.id_norm(embedding.flatten(2).transpose(1, 2))

    def decode(self, lstt_output, adapted, size_2d):
        """lstt_output: (B, h*w, 2*dim); adapted: ``decoder.adapt(features)`` of the frame
        -> logits (B, max_objects + 1, H/4, W/4)."""
        batch, _, channels = lstt_output.shape
        grid = lstt_output.transpose(1, 2).reshape(batch, channels, *size_2d)
        return self.decoder(grid, adapted)


def build_network(config):
    """Builds a DeAOTNetwork (random weights) from a DeAOTConfig or a registered model name."""
    if not isinstance(config, DeAOTConfig):
        config = get_config(config)
    return DeAOTNetwork(config).eval()

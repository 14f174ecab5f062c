"""Networks: the paper's 3D U-Net (Appendix A), the Multi-UNet baseline's fusion rule, and the
hetero-modal U-Net (any subset of its modalities)."""

from ACELib.networks.fusion import fuse_label_maps
from ACELib.networks.hetero import HeteroUNet3D, build_network, fuse_modalities, network_description
from ACELib.networks.unet import ConvBlock, UNet3D, UNetConfig, count_parameters

__all__ = ["ConvBlock", "HeteroUNet3D", "UNet3D", "UNetConfig", "build_network", "count_parameters",
           "fuse_label_maps", "fuse_modalities", "network_description"]

"""Networks: the paper's 3D U-Net (Appendix A) and the Multi-UNet baseline's fusion rule."""

from ACELib.networks.fusion import fuse_label_maps
from ACELib.networks.unet import ConvBlock, UNet3D, UNetConfig, count_parameters

__all__ = ["ConvBlock", "UNet3D", "UNetConfig", "count_parameters", "fuse_label_maps"]

"""Models: M2U-Net and the paper's baselines, behind one registry."""

from .erfnet import ERFNet
from .m2unet import M2UNet
from .registry import create_model, list_models, register_model
from .unet import UNet

register_model("m2unet", "M2U-Net (Laibacher et al. 2019): MobileNetV2 encoder, contracting IR decoder")(M2UNet)
# The paper's baselines, trained from scratch (only m2unet has a pretrained encoder: m2unet.weights.build_model).
register_model("unet", "U-Net (Ronneberger et al. 2015) with zero padding: the paper's 31.03M baseline")(UNet)
register_model("erfnet", "ERFNet (Romera et al. 2018), written from its paper: the paper's 2.06M baseline")(ERFNet)

__all__ = ["M2UNet", "UNet", "ERFNet", "create_model", "list_models", "register_model"]

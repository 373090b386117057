"""Models: M2U-Net and the paper's baselines, behind one registry."""

from .m2unet import M2UNet
from .pretrained import load_authors_checkpoint, load_imagenet_encoder
from .registry import create_model, list_models, register_model

register_model("m2unet", "M2U-Net (Laibacher et al. 2019): MobileNetV2 encoder, contracting IR decoder")(M2UNet)

__all__ = ["M2UNet", "create_model", "list_models", "register_model", "load_authors_checkpoint", "load_imagenet_encoder"]

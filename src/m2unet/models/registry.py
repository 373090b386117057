"""One registry for every architecture: ``create_model("m2unet")``, like timm and smp."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str = ""):
    """Decorator: make a model constructor available to :func:`create_model` under ``name``."""

    def decorate(constructor):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = constructor
        _DESCRIPTIONS[name] = description
        return constructor

    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_description(name: str) -> str:
    return _DESCRIPTIONS[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model, e.g. ``create_model("m2unet")`` (random weights; :func:`m2unet.weights.build_model` adds ImageNet, :func:`m2unet.weights.load_weights` a trained file)."""
    try:
        constructor = _MODELS[name]
    except KeyError:
        from ..errors import M2UNetError

        raise M2UNetError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    model = constructor(**kwargs)
    model.registry_name = name
    return model

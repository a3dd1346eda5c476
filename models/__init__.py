from .resnet import build_model, imagenet_weights_available, load_pretrained

__all__ = ["build_model", "imagenet_weights_available", "load_pretrained"]

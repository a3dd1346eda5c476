from .resnet import PretrainedWeightsError, build_model, imagenet_weights_available, load_pretrained

__all__ = ["PretrainedWeightsError", "build_model", "imagenet_weights_available", "load_pretrained"]

from .picture_augment import (ECG_MEAN, ECG_STD, GaussianNoise, RandomAmplitudeScale, RandomTimeErasing,
                              RandomTimeShift, ToCHW, build_transforms)

__all__ = ["ECG_MEAN", "ECG_STD", "GaussianNoise", "RandomAmplitudeScale", "RandomTimeErasing", "RandomTimeShift",
           "ToCHW", "build_transforms"]

"""The lineage's cutout augmentations, by name (see :data:`clipguide.registry.AUGMENTS`).

Each factory returns a kornia augmentation module. ``noise`` is no kornia module: it is the
per-cutout Gaussian noise that :class:`clipguide.cutouts.Cutouts` adds itself, so its factory
returns None.
"""

from __future__ import annotations

import kornia.augmentation as K


def flip():
    return K.RandomHorizontalFlip(p=0.5)


def sharpness():
    return K.RandomSharpness(0.3, p=0.4)


def affine():
    return K.RandomAffine(degrees=15, translate=(0.1, 0.1), p=0.7, padding_mode="border")


def perspective():
    return K.RandomPerspective(0.2, p=0.7)


def jitter():
    # A fixed order (saturation, then hue; brightness and contrast are not jittered) instead of a
    # random one per call: the order is one draw for the whole batch, which would tie image k's
    # augments to the batch it is in.
    return K.ColorJitter(hue=0.01, saturation=0.01, p=0.7, order=(2, 3))


def erasing():
    return K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 1 / 0.3), value=0.5, p=0.7)


def noise():
    return None

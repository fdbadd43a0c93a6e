"""Random affine augmentation of whole batches on their device (the GPU path's augmentation).

Augmenting image by image in the loader costs the CPU about as much per image as a small
supernet's step on a GPU, so on a GPU the CPU becomes the bottleneck. `random_affine` draws one
rotation, shift and scale per image and resamples the whole batch with one `affine_grid` and
one `grid_sample` where the batch already is, with what torchvision's `RandomAffine` does per
image: nearest-neighbour sampling, zeros outside the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    degrees: float = 10.0,
    translate: tuple[float, float] = (0.1, 0.1),
    scale: tuple[float, float] = (0.9, 1.1),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """`images` (N, C, H, W), each rotated by up to ±`degrees`, shifted by up to `translate`
    (fractions of the width and height) and scaled by a factor in `scale`."""
    n = images.shape[0]
    if generator is None:  # drawn where the batch is: no host-device copy, no synchronisation
        rand = torch.rand(n, 4, device=images.device)
    else:
        rand = torch.rand(n, 4, generator=generator, device=generator.device).to(images.device)
    angle = (rand[:, 0] * 2 - 1) * math.radians(degrees)
    factor = scale[0] + rand[:, 1] * (scale[1] - scale[0])
    # a shift by a fraction f of the side is 2f in affine_grid's [-1, 1] coordinates
    shift_x = (rand[:, 2] * 2 - 1) * 2 * translate[0]
    shift_y = (rand[:, 3] * 2 - 1) * 2 * translate[1]
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    ).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)

"""Rendering distorted glyphs: the generator behind the `glyphs` dataset.

Each class is one character; every (font, character, stroke width) is rendered once with
Pillow into a template. An image is a template warped by a random affine map (rotation, shear,
aspect, scale, translation) plus a smooth elastic displacement, sampled twice as fine as the
output and averaged down, with clutter that a classifier must learn to ignore: a fragment of a
neighbouring glyph entering from an edge, thin lines, uneven ink and background, and noise.

Image `i` of a split depends only on (seed, split, i): chunks of `CHUNK` images draw from their
own random stream, so a smaller split is a prefix of a larger one and the splits never share a
stream. All randomness is numpy's; torch only resamples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from supernet.errors import DatasetError

CHUNK = 250  # images per random stream
SUPERSAMPLE = 2  # images are drawn at this multiple of their size, then averaged down
TEMPLATE_SCALE = 4  # clean glyphs are rendered at this multiple of the image size

# digits, capitals and the lower-case letters whose shape differs from their capital
# (the 47 classes of EMNIST Balanced)
DEFAULT_CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt"
# matplotlib's bundled text fonts with every one of those characters
DEFAULT_FONTS = (
    *(f"DejaVuSans{s}.ttf" for s in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSansMono{s}.ttf" for s in ("", "-Bold", "-Oblique", "-BoldOblique")),
    *(f"DejaVuSerif{s}.ttf" for s in ("", "-Bold", "-Italic", "-BoldItalic")),
    *(f"STIXGeneral{s}.ttf" for s in ("", "Bol", "Italic", "BolIta")),
    "cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf",
)


@dataclass(frozen=True)
class Distortion:
    """How far each image departs from its clean glyph.

    Attributes:
        glyph_height: capital height as a fraction of the frame.
        rotation: largest rotation in degrees (uniform in ±rotation).
        shear: largest horizontal shear (tangent of the angle).
        aspect: largest log-ratio of horizontal to vertical scale.
        scale: largest relative change of the glyph size.
        translate: largest shift of the glyph centre, as a fraction of the frame.
        elastic: amplitude of the smooth displacement field, as a fraction of the frame.
        fragment: probability of a neighbouring glyph entering from an edge.
        lines: expected number of clutter lines per image (Poisson).
        noise: standard deviation of the pixel noise (intensities in [0, 1]).
    """

    glyph_height: float = 0.5
    rotation: float = 8.0
    shear: float = 0.15
    aspect: float = 0.15
    scale: float = 0.1
    translate: float = 0.06
    elastic: float = 0.015
    fragment: float = 0.25
    lines: float = 0.25
    noise: float = 0.04


def font_path(name: str) -> Path:
    """A font file: a path, or the name of a font matplotlib ships."""
    path = Path(name)
    if path.is_file():
        return path
    import matplotlib

    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if not bundled.is_file():
        raise DatasetError(
            f"font {name!r} is neither a file nor one of matplotlib's fonts in {bundled.parent}; "
            "set data.fonts to font files that exist (null: the bundled default)"
        )
    return bundled


def render_templates(
    fonts: Sequence[str], classes: str, strokes: Sequence[int], canvas: int, glyph_height: float
) -> torch.Tensor:
    """Clean glyphs, [font, class, stroke, canvas, canvas] in [0, 1], ink bbox centred.

    Each font is scaled so that its capital "H" is `glyph_height` of the canvas; characters
    keep their relative size within a font (lower case stays smaller than capitals).
    """
    from PIL import Image, ImageDraw, ImageFont

    big = 4 * canvas
    out = torch.zeros(len(fonts), len(classes), len(strokes), canvas, canvas)
    for f, name in enumerate(fonts):
        path = str(font_path(name))
        probe = ImageFont.truetype(path, 100)
        top, bottom = probe.getbbox("H")[1], probe.getbbox("H")[3]
        size = max(int(round(100 * glyph_height * canvas / max(bottom - top, 1))), 4)
        font = ImageFont.truetype(path, size)
        for c, char in enumerate(classes):
            for s, stroke in enumerate(strokes):
                image = Image.new("L", (big, big))
                draw = ImageDraw.Draw(image)
                draw.text((big // 2, big // 2), char, font=font, fill=255, anchor="mm",
                          stroke_width=int(stroke), stroke_fill=255)
                ink = np.asarray(image, dtype=np.float32) / 255.0
                if ink.max() == 0:
                    raise DatasetError(f"font {name!r} has no glyph for {char!r}; drop the font")
                rows, cols = np.nonzero(ink)
                cy = (rows.min() + rows.max() + 1) // 2
                cx = (cols.min() + cols.max() + 1) // 2
                half = canvas // 2
                crop = ink[max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half]
                out[f, c, s, : crop.shape[0], : crop.shape[1]] = torch.from_numpy(crop)
    return out


def balanced_labels(count: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Labels in shuffled rounds of every class once: any prefix is balanced to within one."""
    rounds = math.ceil(count / num_classes)
    return np.concatenate([rng.permutation(num_classes) for _ in range(rounds)])[:count]


def _affine(rng: np.random.Generator, n: int, d: Distortion, shift: np.ndarray) -> torch.Tensor:
    """[n, 2, 3] maps from output to template coordinates (inverse of the glyph's motion)."""
    angle = np.deg2rad(rng.uniform(-d.rotation, d.rotation, n))
    shear = rng.uniform(-d.shear, d.shear, n)
    aspect = np.exp(rng.uniform(-d.aspect, d.aspect, n) / 2)
    scale = 1.0 + rng.uniform(-d.scale, d.scale, n)
    cos, sin = np.cos(angle), np.sin(angle)
    # forward map: rotate · shear · diag(scale·aspect, scale/aspect)
    sx, sy = scale * aspect, scale / aspect
    a = np.stack([np.stack([cos * sx, (cos * shear - sin) * sy], -1),
                  np.stack([sin * sx, (sin * shear + cos) * sy], -1)], -2)
    inv = np.linalg.inv(a)
    t = -np.einsum("nij,nj->ni", inv, shift)
    return torch.from_numpy(np.concatenate([inv, t[:, :, None]], axis=2)).float()


def _elastic(rng: np.random.Generator, n: int, amplitude: float, side: int) -> torch.Tensor:
    """[n, side, side, 2] smooth random displacement (bicubic upsampling of a 4×4 grid)."""
    coarse = torch.from_numpy(rng.normal(0.0, amplitude * 2, (n, 2, 4, 4))).float()
    field = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1)


def _lines(rng: np.random.Generator, n: int, rate: float, side: int) -> torch.Tensor:
    """[n, side, side] thin antialiased line segments, Poisson(`rate`) per image."""
    counts = rng.poisson(rate, n)
    most = int(counts.max()) if n else 0
    ends = rng.uniform(-1.2, 1.2, (n, max(most, 1), 2, 2))
    width = rng.uniform(0.02, 0.06, (n, max(most, 1)))
    level = rng.uniform(0.3, 0.9, (n, max(most, 1)))
    canvas = torch.zeros(n, side, side)
    axis = (torch.arange(side) + 0.5) / side * 2 - 1
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)  # [side, side, (x, y)]
    for k in range(most):
        on = torch.from_numpy(np.flatnonzero(counts > k))  # only images with a k-th line
        p, q = (torch.from_numpy(ends[on.numpy(), k, j]).float()[:, None, None, :] for j in (0, 1))
        v = q - p
        u = ((grid - p) * v).sum(-1) / (v * v).sum(-1).clamp(min=1e-6)
        dist = (grid - (p + u.clamp(0, 1)[..., None] * v)).norm(dim=-1)
        w = torch.from_numpy(width[on.numpy(), k]).float()[:, None, None]
        shade = torch.from_numpy(level[on.numpy(), k]).float()[:, None, None]
        canvas[on] = torch.maximum(canvas[on], (1 - dist / w).clamp(0, 1) * shade)
    return canvas


def render_chunk(
    templates: torch.Tensor,
    labels: np.ndarray,
    size: int,
    distortion: Distortion,
    rng: np.random.Generator,
) -> np.ndarray:
    """Images of `labels` ([n, size, size] uint8) drawn from `templates` with `rng`.

    The same number of draws is made whatever `labels` holds, so a chunk's image `i`
    depends only on its stream and its label.
    """
    fonts, classes, strokes = templates.shape[:3]
    n, d, side = len(labels), distortion, size * SUPERSAMPLE
    font = rng.integers(0, fonts, n)
    stroke = rng.integers(0, strokes, n)
    glyph = templates[font, labels, stroke][:, None]  # [n, 1, canvas, canvas]
    shift = rng.uniform(-d.translate, d.translate, (n, 2)) * 2  # frame half-width = 1
    theta = _affine(rng, n, d, shift)
    grid = F.affine_grid(theta, [n, 1, side, side], align_corners=False)
    grid = grid + _elastic(rng, n, d.elastic, side)
    ink = F.grid_sample(glyph, grid, align_corners=False)[:, 0]

    # a neighbour's fragment: another glyph centred just beyond the left or right edge
    has_fragment = torch.from_numpy(rng.random(n) < d.fragment)
    other = templates[rng.integers(0, fonts, n), rng.integers(0, classes, n),
                      rng.integers(0, strokes, n)][:, None]
    side_sign = rng.choice([-1.0, 1.0], n)
    offset = np.stack([side_sign * rng.uniform(0.95, 1.3, n), rng.uniform(-0.3, 0.3, n)], -1)
    theta_o = _affine(rng, n, d, offset)
    grid_o = F.affine_grid(theta_o, [n, 1, side, side], align_corners=False)
    fragment = F.grid_sample(other, grid_o, align_corners=False)[:, 0]
    ink = torch.maximum(ink, fragment * has_fragment[:, None, None])
    ink = torch.maximum(ink, _lines(rng, n, d.lines, side))

    # uneven ink and paper, then noise at the output size
    strength = torch.from_numpy(rng.uniform(0.8, 1.0, n)).float()[:, None, None]
    paper = torch.from_numpy(rng.uniform(0.0, 0.1, n)).float()[:, None, None]
    image = paper + (1 - paper) * ink * strength
    image = F.avg_pool2d(image[:, None], SUPERSAMPLE)[:, 0]
    image = image + torch.from_numpy(rng.normal(0.0, d.noise, (n, size, size))).float()
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def render_split(
    templates: torch.Tensor,
    count: int,
    size: int,
    distortion: Distortion,
    seed: int,
    split: int,
) -> tuple[np.ndarray, np.ndarray]:
    """`count` images and balanced labels of split number `split` (prefix-stable in `count`)."""
    classes = templates.shape[1]
    labels = balanced_labels(count, classes, np.random.default_rng([seed, split, 0]))
    images = np.zeros((count, size, size), dtype=np.uint8)
    for k, start in enumerate(range(0, count, CHUNK)):
        rng = np.random.default_rng([seed, split, 1, k])
        full = np.concatenate([labels[start : start + CHUNK],
                               np.zeros(max(start + CHUNK - count, 0), dtype=labels.dtype)])
        chunk = render_chunk(templates, full, size, distortion, rng)
        images[start : start + CHUNK] = chunk[: min(CHUNK, count - start)]
    return images, labels.astype(np.int64)

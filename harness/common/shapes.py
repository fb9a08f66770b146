"""Procedurally rendered shapes: a small image-classification dataset that
needs no download, shared by the workloads that use it (cifar tiny's
``shapes10``, diffusion tiny's ``shapes16``).

Ten shape classes (disk, ring, square, hollow square, triangle, plus, ellipse,
three bars, crescent, diamond) rendered from signed distance fields with
anti-aliased edges, at a random position, scale and small rotation, in random
fore- and background colours (so colour is no cue), over a background
gradient, with a distractor blob and Gaussian pixel noise. A real learning
problem (a linear model does poorly, a small ResNet climbs for a few hundred
steps), identical for identical (n, seed): tiny targets are calibrated on it.
"""

from __future__ import annotations

import numpy as np

SHAPES_VERSION = 1  # bump when rendering changes: tiny targets are calibrated on it
SHAPE_NAMES = (
    "disk", "ring", "square", "hollow_square", "triangle",
    "plus", "ellipse", "three_bars", "crescent", "diamond",
)  # fmt: skip

IMAGE_SIZE = 32
MAX_ROTATION_DEG = 15.0
LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 luminance of an RGB colour
MIN_LUMA_CONTRAST = 0.15  # square and diamond differ by 45 deg: keep well below 22.5


def _box(px, py, bx, by):
    """Signed distance to an axis-aligned box with half-sizes (bx, by)."""
    qx, qy = np.abs(px) - bx, np.abs(py) - by
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _triangle(px, py, r):
    """Signed distance to an equilateral triangle of half-side r, centred on its
    centroid, apex towards -y (Inigo Quilez's formula, vectorized)."""
    k = np.sqrt(3.0)
    px = np.abs(px) - r
    py = -py + r / k  # flip y so the apex points up in image coordinates
    fold = px + k * py > 0
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0.0)
    return -np.hypot(px, py) * np.sign(py)


def _shape_sdf(label: int, u, v):
    """Signed distance (in units of the shape's half-extent) for class ``label``
    at shape-local coordinates (u, v). Negative inside."""
    r = np.hypot(u, v)
    if label == 0:  # disk
        return r - 0.9
    if label == 1:  # ring
        return np.abs(r - 0.7) - 0.2
    if label == 2:  # filled square
        return _box(u, v, 0.75, 0.75)
    if label == 3:  # hollow square
        return np.abs(_box(u, v, 0.65, 0.65)) - 0.15
    if label == 4:  # triangle
        return _triangle(u, v + 0.15, 1.0)
    if label == 5:  # plus
        return np.minimum(_box(u, v, 0.9, 0.25), _box(u, v, 0.25, 0.9))
    if label == 6:  # ellipse, 2:1 (approximate distance: fine for anti-aliasing)
        a, b = 0.95, 0.45
        return (np.hypot(u / a, v / b) - 1.0) * b
    if label == 7:  # three horizontal bars
        return np.minimum.reduce([_box(u, v - c, 0.9, 0.16) for c in (-0.6, 0.0, 0.6)])
    if label == 8:  # crescent: a disk with an offset disk bitten out
        return np.maximum(r - 0.9, -(np.hypot(u - 0.45, v) - 0.7))
    if label == 9:  # diamond (square standing on a corner)
        return (np.abs(u) + np.abs(v) - 0.95) / np.sqrt(2.0)
    raise ValueError(label)


def render_shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (uint8, (n, 3, 32, 32)) and labels (int64, (n,)), exactly
    label-balanced when 10 divides n, identical for identical (n, seed)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = rng.permutation(np.arange(n) % len(SHAPE_NAMES)).astype(np.int64)

    # Per-image parameters, all drawn up front so the stream never depends on class.
    scale = rng.uniform(4.5, 10.5, n)  # half-extent in pixels
    margin = IMAGE_SIZE / 2 - scale - 1.0  # keep the shape inside the frame
    cx = IMAGE_SIZE / 2 + rng.uniform(-1, 1, n) * margin
    cy = IMAGE_SIZE / 2 + rng.uniform(-1, 1, n) * margin
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, n))

    # Colours: random hues, independent of the class. The shape is always
    # brighter than its background by at least MIN_LUMA_CONTRAST. A fixed
    # polarity matters: with light-on-dark and dark-on-light equally likely, a
    # first-layer filter's response to a shape's edge averages to zero over the
    # data, and training sits on a long plateau until the net happens on
    # polarity-invariant features -- how long is mostly luck and learning rate.
    background = rng.uniform(0, 1, (n, 3))
    foreground = rng.uniform(0, 1, (n, 3))
    for _ in range(1000):  # rejection sampling; ~half the pairs pass each round
        contrast = (foreground - background) @ LUMA
        swap = contrast <= -MIN_LUMA_CONTRAST  # right contrast, wrong way round
        background[swap], foreground[swap] = foreground[swap], background[swap].copy()
        low = np.abs(contrast) < MIN_LUMA_CONTRAST
        if not low.any():
            break
        background[low] = rng.uniform(0, 1, (int(low.sum()), 3))
        foreground[low] = rng.uniform(0, 1, (int(low.sum()), 3))
    gradient_dir = rng.uniform(0, 2 * np.pi, n)
    gradient_amp = rng.uniform(0.0, 0.3, n)
    blob_xy = rng.uniform(2, IMAGE_SIZE - 2, (n, 2))
    blob_sigma = rng.uniform(1.5, 3.5, n)
    blob_colour = rng.uniform(0, 1, (n, 3))
    blob_alpha = rng.uniform(0.3, 0.8, n)
    noise_sigma = rng.uniform(0.03, 0.14, n)
    noise = rng.standard_normal((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)

    # Pixel-centre coordinates, broadcast as (n, H, W).
    grid = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    gy, gx = grid[None, :, None], grid[None, None, :]
    col = lambda a: a[:, None, None].astype(np.float32)  # noqa: E731  (n,) -> (n,1,1)

    # Shape coverage: rotate into shape-local coordinates, evaluate the class's
    # signed distance, convert to a one-pixel-wide anti-aliased edge.
    dx, dy = gx - col(cx), gy - col(cy)
    cos, sin = col(np.cos(angle)), col(np.sin(angle))
    u, v = (cos * dx + sin * dy) / col(scale), (-sin * dx + cos * dy) / col(scale)
    coverage = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for k in range(len(SHAPE_NAMES)):
        idx = np.flatnonzero(labels == k)
        distance_px = _shape_sdf(k, u[idx], v[idx]) * col(scale[idx])
        coverage[idx] = np.clip(0.5 - distance_px, 0.0, 1.0)

    # Background: flat colour plus a linear brightness gradient. (float32 and
    # in-place from here on: these are the big (n, 3, 32, 32) arrays.)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    ramp = (col(np.cos(gradient_dir)) * (gx - 16) + col(np.sin(gradient_dir)) * (gy - 16)) / 16
    image = np.empty((n, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    image[:] = (col(gradient_amp) * ramp)[:, None]
    image += f32(background)[:, :, None, None]
    image += coverage[:, None] * f32(foreground - background)[:, :, None, None]

    # Distractor: a soft blob that may overlap the shape.
    blob = np.exp(
        -((gx - col(blob_xy[:, 0])) ** 2 + (gy - col(blob_xy[:, 1])) ** 2) / (2 * col(blob_sigma) ** 2)
    ) * col(blob_alpha)
    image += blob[:, None] * (f32(blob_colour)[:, :, None, None] - image)

    noise *= f32(noise_sigma)[:, None, None, None]
    image += noise
    image *= 255.0
    images = np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)
    return images, labels


__all__ = ["render_shapes", "SHAPES_VERSION", "SHAPE_NAMES", "IMAGE_SIZE"]

"""model.two_views: AMDIM's augmentation, checked image by image against
what it promises (a shared flip, reflect-padded translations, colour only
for RGB input), and seeded by its seed alone."""

import copy

import numpy as np
import pytest
import tensorflow as tf

from pyexport import model
from pyexport.spec import SCALINGS

SPEC = {
    "model": {"image_size": 16, "channels": 3, "blocks": 2, "z_dim": 8, "scaling": "unit_centered",
              "global_pairing": "seed", "augment": False, "augment_pad": 4, "color_jitter": False},
    "loss": {"alpha": 0.5, "beta": 1.0, "gamma": 0.01, "objective": "two_view_nce", "temperature": 0.1, "head_dim": 8},
    "optimizer": {"learning_rate": 1e-3},
    "seed": 3,
}


def spec_with(**model_keys):
    s = copy.deepcopy(SPEC)
    s["model"].update(model_keys)
    return s


def batch(spec, n, seed=0):
    m = spec["model"]
    return np.random.default_rng(seed).integers(0, 256, (n, m["image_size"], m["image_size"], m["channels"]), dtype=np.uint8)


def views(spec, x, seed=(1, 2)):
    v = model.two_views(tf.constant(x), spec, tf.constant(seed, tf.int64)).numpy()
    scale, offset = SCALINGS[spec["model"]["scaling"]]
    return np.rint((v - offset) / scale).astype(np.int64)  # back to pixel values


def placement(view, image, pad):
    """(flipped, dy, dx) for which view is image, maybe flipped, translated by
    (dy, dx) with reflect padding; None when no such placement exists."""
    h, w = image.shape[:2]
    found = []
    for flipped in (False, True):
        src = image[:, ::-1] if flipped else image
        padded = np.pad(src, [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.array_equal(padded[dy:dy + h, dx:dx + w], view):
                    found.append((flipped, dy - pad, dx - pad))
    assert len(found) <= 1, found  # random images: a placement is unique
    return found[0] if found else None


def test_views_are_translations_of_one_flip():
    spec = spec_with()
    n, pad = 64, spec["model"]["augment_pad"]
    x = batch(spec, n)
    v = views(spec, x)
    assert v.shape == (2 * n,) + x.shape[1:]
    flips, unmoved = [], 0
    for i in range(n):
        a, b = placement(v[i], x[i], pad), placement(v[n + i], x[i], pad)
        assert a is not None and b is not None, i
        assert a[0] == b[0], "image %d: the two views are flipped differently" % i
        flips.append(a[0])
        unmoved += (a[1:] == (0, 0)) + (b[1:] == (0, 0))
    assert 0 < sum(flips) < n  # both flipped and unflipped images
    # p 0.8 of a translation among 81 offsets: ~21% of views unmoved.
    assert 0.08 < unmoved / (2 * n) < 0.4, unmoved


def test_grey_input_skips_the_colour_parts():
    spec = spec_with(channels=1, color_jitter=True, scaling="symmetric")
    x = batch(spec, 32, seed=1)
    v = views(spec, x)
    for i in range(32):
        a, b = placement(v[i], x[i], 4), placement(v[32 + i], x[i], 4)
        assert a is not None and b is not None and a[0] == b[0], i


def test_colour_jitter_and_greyscale():
    spec = spec_with(color_jitter=True, augment_pad=0)
    n = 400
    x = batch(spec, n, seed=2)
    v = views(spec, x)
    assert v.min() >= 0 and v.max() <= 255
    grey = np.array([np.array_equal(im[..., 0], im[..., 1]) and np.array_equal(im[..., 1], im[..., 2]) for im in v])
    assert 0.17 < grey.mean() < 0.33, grey.mean()  # p 0.25
    # Without translation the views differ only in colour: same flip, other colours.
    changed = np.abs(v[:n] - v[n:]).mean(axis=(1, 2, 3))
    assert (changed > 1).mean() > 0.8


def test_views_depend_on_the_seed_alone():
    spec = spec_with(color_jitter=True)
    x = batch(spec, 8, seed=4)
    np.testing.assert_array_equal(views(spec, x, (5, 6)), views(spec, x, (5, 6)))
    assert not np.array_equal(views(spec, x, (5, 6)), views(spec, x, (5, 7)))


def ramp(n, size):
    """n copies of an image whose channels are affine in (row, col), which a
    bilinear resize reproduces exactly: 4·row + col, row + 4·col, 40."""
    r, c = np.mgrid[0:size, 0:size]
    im = np.stack([4 * r + c, r + 4 * c, np.full_like(r, 40)], -1).astype(np.uint8)
    return np.repeat(im[None], n, 0)


def crop_box(view, size):
    """(top, left, height, width, flipped) of the box of the ramp image that
    view shows, in pixels, from an affine fit of the view's first two
    channels over its (row, col); the fit's largest residual too."""
    i, j = np.mgrid[0:size, 0:size]
    a = np.stack([np.ones(size * size), i.ravel(), j.ravel()], 1)
    coef, res = [], 0.0
    for ch in (0, 1):
        c, *_ = np.linalg.lstsq(a, view[..., ch].ravel(), rcond=None)
        coef.append(c)
        res = max(res, np.abs(a @ c - view[..., ch].ravel()).max())
    (a0, b0, c0), (a1, b1, c1) = coef
    flipped = c1 < 0
    # In the flipped image (col' = size − 1 − col) channel 0 is 4·row + size − 1 − col'
    # and channel 1 row + 4·(size − 1 − col'); the box's corner is in its coordinates.
    step_y, step_x = b0 / 4, abs(c0)  # pixels of the image per pixel of the view
    if flipped:
        top, left = np.linalg.solve([[4, -1], [1, -4]], [a0 - (size - 1), a1 - 4 * (size - 1)])
    else:
        top, left = np.linalg.solve([[4, 1], [1, 4]], [a0, a1])
    return top, left, step_y * (size - 1), step_x * (size - 1), flipped, res


def test_crops_are_resized_boxes_of_one_flip():
    size, n, min_area = 16, 300, 0.3
    spec = spec_with(augment_pad=0, crop_min_area=min_area)
    x = ramp(n, size)
    v = model.two_views(tf.constant(x), spec, tf.constant((1, 2), tf.int64)).numpy()
    scale, offset = SCALINGS[spec["model"]["scaling"]]
    v = (v - offset) / scale  # pixel values, unrounded
    areas, ratios = [], []
    for k in range(n):
        a, b = crop_box(v[k], size), crop_box(v[n + k], size)
        assert a[5] < 1e-3 and b[5] < 1e-3, (k, a[5], b[5])  # an axis-aligned box, bilinearly resized
        assert a[4] == b[4], "image %d: the two views are flipped differently" % k
        for top, left, h, w, _, _ in (a, b):
            # crop_and_resize's box spans centre to centre: the image is size − 1 across
            assert -1e-3 < top and top + h < size - 1 + 1e-3 and -1e-3 < left and left + w < size - 1 + 1e-3
            areas.append(h * w / (size - 1) ** 2)
            if h < size - 1 - 1e-3 and w < size - 1 - 1e-3:  # not clipped
                ratios.append(w / h)
        assert not np.allclose(a[:4], b[:4]), k  # each view its own box
    areas, ratios = np.array(areas), np.array(ratios)
    assert areas.min() > min_area * model.CROP_RATIO[0] - 1e-3 and areas.max() <= 1 + 1e-3
    assert np.quantile(areas, 0.1) < min_area + 0.15 and np.quantile(areas, 0.9) > 0.8  # spread over [0.3, 1]
    assert ratios.min() > model.CROP_RATIO[0] - 1e-3 and ratios.max() < model.CROP_RATIO[1] + 1e-3
    assert (ratios < 0.85).any() and (ratios > 1.2).any()


def test_crop_keys_are_checked():
    from pyexport.spec import SpecError, validate

    with pytest.raises(SpecError, match="model.crop_min_area = 0.3 replaces the translation.*augment_pad: 0"):
        validate(spec_with(crop_min_area=0.3))
    s = spec_with(augment_pad=0, crop_min_area=0.3)
    s["loss"]["objective"] = "local_nce"
    with pytest.raises(SpecError, match="crops the views of a two-view objective.*set model.crop_min_area: 0"):
        validate(s)
    with pytest.raises(SpecError, match="model.crop_min_area = 1.5: must be in"):
        validate(spec_with(augment_pad=0, crop_min_area=1.5))
    assert validate(spec_with())["model"]["crop_min_area"] == 0.0  # left out: off

"""pyexport.spec: the part of a config that shapes the graph.

Go (package config) owns the configuration: it reads the YAML, applies overrides and
validates it, then writes the graph-shaping sections as canonical JSON, the
*spec*. The exporter builds the graph from that spec and records the SHA-256 of
its exact bytes in the manifest, so Go can tell a stale SavedModel by comparing
hashes, without either side re-serialising floats the other way.

The spec is checked again here, because the exporter can also be run by hand.
"""

import hashlib
import json

# Input scalings: uint8 pixels x become x * scale + offset inside the graph.
SCALINGS = {
    "unit_centered": (1.0 / 255.0, -0.5),  # x/255 - 0.5: the seed's CIFAR-10 script
    "symmetric": (2.0 / 255.0, -1.0),  # x/255*2 - 1: the seed's Tiny ImageNet script
}

BATCH_NORMS = (
    "keras",  # Keras's BatchNormalization, as the seed (unfused elementwise ops)
    "fused",  # the same normalisation as one FusedBatchNormV3 op (model.FusedBatchNorm)
)

PRECISIONS = (
    "float32",  # every op in float32
    "bfloat16",  # the encoder's convolution blocks in bfloat16 (Keras's mixed_bfloat16 policy);
                 # variables, optimizer state, batch-norm statistics, the code's Dense layers,
                 # heads, scores and losses in float32 (model.encoder_policy)
)

GLOBAL_PAIRINGS = (
    "seed",  # the seed's code: [z, z] against [z, shuffled z]
    "paper",  # Deep InfoMax: [C, z] against [shuffled C, z]
)

# key -> (type, check, reason shown when the check fails; a function for one
# that needs the model's registry). Keys of OPTIONAL may be absent (Go leaves
# them out at their default, so that specs written before they existed keep
# their bytes and hashes).
_FIELDS = {
    "model": {
        "image_size": (int, lambda v: v >= 8, "must be at least 8 pixels"),
        "channels": (int, lambda v: v in (1, 3), "must be 1 (grey) or 3 (RGB)"),
        "blocks": (int, lambda v: v >= 1, "must be at least 1"),
        "z_dim": (int, lambda v: v >= 1, "must be positive"),
        "scaling": (str, lambda v: v in SCALINGS, "must be one of %s" % sorted(SCALINGS)),
        "global_pairing": (str, lambda v: v in GLOBAL_PAIRINGS, "must be one of %s" % list(GLOBAL_PAIRINGS)),
        "augment": (bool, lambda v: True, ""),
        "augment_pad": (int, lambda v: v >= 0, "must be >= 0"),
        "color_jitter": (bool, lambda v: True, ""),
        "crop_min_area": (float, lambda v: 0 <= v <= 1, "must be in [0, 1] (0: no crop)"),
        "batch_norm": (str, lambda v: v in BATCH_NORMS, "must be one of %s" % list(BATCH_NORMS)),
        "precision": (str, lambda v: v in PRECISIONS, "must be one of %s" % list(PRECISIONS)),
    },
    "loss": {
        "alpha": (float, lambda v: v >= 0, "must be >= 0"),
        "beta": (float, lambda v: v >= 0, "must be >= 0"),
        "gamma": (float, lambda v: v >= 0, "must be >= 0"),
        "objective": (str, lambda v: v in objective_names(), lambda: "unknown objective: known are %s" % ", ".join(objective_names())),
        "temperature": (float, lambda v: v > 0, "must be > 0"),
        "head_dim": (int, lambda v: v >= 1, "must be at least 1"),
        "local_scales": (int, lambda v: v in (1, 2), "must be 1 (the map C) or 2 (C and the map of the block before it)"),
    },
    "optimizer": {
        "learning_rate": (float, lambda v: v > 0, "must be > 0"),
    },
}


OPTIONAL = {("model", "batch_norm"): "keras", ("model", "precision"): "float32", ("model", "crop_min_area"): 0.0,
            ("loss", "local_scales"): 1}


# The objectives a spec may name (model.OBJECTIVES builds each, in this
# order), and those of them that train on two augmented views of each image
# (their batch is [view 1; view 2]). The names live here, apart from Keras,
# so the spec's checks and config/schema.json need not load the model.
OBJECTIVE_NAMES = ("seed", "local_nce", "local_jsd", "two_view_nce")
TWO_VIEW = ("two_view_nce",)


def objective_names():
    """The objectives a spec may name."""
    return OBJECTIVE_NAMES


def two_view_names():
    """The objectives that train on two augmented views."""
    return TWO_VIEW


def schema():
    """The allowed values that Go's config validation uses, written to
    config/schema.json by `python -m pyexport.schema` (a test checks it is
    current): the lists live here and in model.OBJECTIVES only."""
    return {
        "scalings": sorted(SCALINGS),
        "global_pairings": list(GLOBAL_PAIRINGS),
        "objectives": list(objective_names()),
        "two_view_objectives": list(two_view_names()),
        "batch_norms": list(BATCH_NORMS),
        "precisions": list(PRECISIONS),
    }


class SpecError(ValueError):
    """A spec that the exporter cannot build, with the key and the reason."""


def validate(spec):
    """Check every key, type and range; return the spec. Raises SpecError."""
    known = set(_FIELDS) | {"seed"}
    for key in spec:
        if key not in known:
            raise SpecError("spec: unknown key %r (known: %s)" % (key, ", ".join(sorted(known))))
    for section, fields in _FIELDS.items():
        if section not in spec or not isinstance(spec[section], dict):
            raise SpecError("spec: missing section %r" % section)
        for key in spec[section]:
            if key not in fields:
                raise SpecError("spec: unknown key %s.%s (known: %s)" % (section, key, ", ".join(sorted(fields))))
        for key, (typ, check, reason) in fields.items():
            if key not in spec[section] and (section, key) in OPTIONAL:
                spec[section][key] = OPTIONAL[(section, key)]
            if key not in spec[section]:
                raise SpecError("spec: missing key %s.%s" % (section, key))
            value = spec[section][key]
            if typ is float and isinstance(value, int) and not isinstance(value, bool):
                value = spec[section][key] = float(value)
            if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
                raise SpecError("spec: %s.%s = %r: want a %s" % (section, key, value, typ.__name__))
            if not check(value):
                raise SpecError("spec: %s.%s = %r: %s" % (section, key, value, reason() if callable(reason) else reason))
    if not isinstance(spec.get("seed"), int):
        raise SpecError("spec: seed = %r: want an integer" % (spec.get("seed"),))
    m = spec["model"]
    if spec["loss"]["objective"] in two_view_names() and m["augment"]:
        raise SpecError("spec: model.augment = true with loss.objective %s, which augments its two views "
                        "itself (model.augment_pad, model.color_jitter): set model.augment: false" % spec["loss"]["objective"])
    if m["crop_min_area"] > 0 and spec["loss"]["objective"] not in two_view_names():
        raise SpecError("spec: model.crop_min_area = %r crops the views of a two-view objective (%s), and "
                        "loss.objective is %s: set model.crop_min_area: 0"
                        % (m["crop_min_area"], ", ".join(two_view_names()), spec["loss"]["objective"]))
    if m["crop_min_area"] > 0 and m["augment_pad"] > 0:
        raise SpecError("spec: model.crop_min_area = %r replaces the translation, and model.augment_pad is %d: "
                        "set model.augment_pad: 0 (or model.crop_min_area: 0 for the translation)"
                        % (m["crop_min_area"], m["augment_pad"]))
    if spec["loss"]["local_scales"] == 2 and spec["loss"]["objective"] not in two_view_names():
        raise SpecError("spec: loss.local_scales = 2 adds a second map to a two-view objective's contrast (%s), "
                        "and loss.objective is %s: set loss.local_scales: 1"
                        % (", ".join(two_view_names()), spec["loss"]["objective"]))
    if spec["loss"]["local_scales"] == 2 and m["blocks"] < 2:
        raise SpecError("spec: loss.local_scales = 2 needs the map of the block before the last, and model.blocks is %d: "
                        "use at least 2 blocks or loss.local_scales: 1" % m["blocks"])
    if m["image_size"] >> m["blocks"] < 1:
        raise SpecError(
            "spec: model.blocks = %d halves a %d-pixel image below 1 pixel; use fewer blocks"
            % (m["blocks"], m["image_size"])
        )
    return spec


def load(path):
    """Read a spec file; return (spec, sha256 hex of its bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SpecError("%s: not JSON: %s" % (path, e)) from e
    try:
        validate(spec)
    except SpecError as e:
        raise SpecError("%s: %s" % (path, e)) from e
    return spec, hashlib.sha256(raw).hexdigest()

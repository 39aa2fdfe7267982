"""pyexport.export: save an InfoMax module as a SavedModel with its manifest.

The manifest (manifest.json beside saved_model.pb) is what Go reads: the input
shape and scaling, every hyperparameter, each signature's tensor names, dtypes
and shapes, the TensorFlow version and the hash of the spec it came from. The
SavedModel is written into a temporary folder and renamed into place, so a
crash never leaves a half-written export where Go would load it.
"""

import os
import shutil

import keras
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from .atomic import new_folder, write_json
from .model import term_names
from .module import InfoMax
from .spec import SCALINGS

MANIFEST = "manifest.json"
FORMAT = 2
SIGNATURES = ("train_step", "train_step_with_noise", "encode", "encode_conv", "set_learning_rate")


def _signature_table(export_dir, names=SIGNATURES):
    """Signature name → inputs/outputs (key → tensor name, dtype, shape), read
    back from saved_model.pb so the manifest states what was really saved."""
    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    (meta,) = sm.meta_graphs

    def info(t):
        shape = [-1 if d.size < 0 else d.size for d in t.tensor_shape.dim]
        return {"name": t.name, "dtype": tf.dtypes.as_dtype(t.dtype).name, "shape": shape}

    table = {}
    for name in names:
        sig = meta.signature_def[name]
        table[name] = {
            "inputs": {k: info(v) for k, v in sorted(sig.inputs.items())},
            "outputs": {k: info(v) for k, v in sorted(sig.outputs.items())},
        }
    return table


def export(spec, config_hash, export_dir):
    """Build a fresh module from a validated spec and save it to export_dir."""
    return save(InfoMax(spec), config_hash, export_dir)


def save(module, config_hash, export_dir):
    """Save a module, with its current weights, to export_dir; return the manifest."""
    spec = module.spec
    with new_folder(export_dir, ".export-") as tmp:
        tf.saved_model.save(
            module,
            tmp,
            signatures={name: getattr(module, name) for name in SIGNATURES},
        )
        m = spec["model"]
        scale, offset = SCALINGS[m["scaling"]]
        manifest = {
            "format": FORMAT,
            "config_hash": config_hash,
            "spec": spec,
            "input": {
                "shape": [m["image_size"], m["image_size"], m["channels"]],
                "dtype": "uint8",
                "scaling": m["scaling"],
                "scale": scale,
                "offset": offset,
            },
            "precision": m.get("precision", "float32"),  # what the encoder's convolutions compute in
            "feature_map": list(module.map_shape),
            "feature_dim": m["z_dim"],
            "loss_terms": list(term_names(spec)),  # Go logs what is listed here
            "parameters": int(sum(v.shape.num_elements() for v in module.trainable)),
            "tags": ["serve"],
            "signatures": _signature_table(tmp),
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
        }
        _ship_probe(tmp)
        write_json(os.path.join(tmp, MANIFEST), manifest)
    return manifest


PROBE_PROGRAM = ("probe.py", "atomic.py")


def _ship_probe(export_dir):
    """Copy the probe's program (probe.py and the atomic.py it imports) into
    export_dir/probe/, so that a run folder, whose model/ is this export,
    can be evaluated without this source tree (exporter.ProbeFile)."""
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(export_dir, "probe"))
    for name in PROBE_PROGRAM:
        shutil.copyfile(os.path.join(here, name), os.path.join(export_dir, "probe", name))

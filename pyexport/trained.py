"""pyexport.trained: a run's trained encoder as an artifact other runtimes
load: a standalone SavedModel (the checkpoint's weights, a serving_default
signature from uint8 images of the run's shape to z_mean, an encode_conv
signature to the last convolutional feature map, and a manifest), or the
z_mean encoder as ONNX (tf2onnx).

    python -m pyexport.trained --model RUN/model --checkpoint RUN/checkpoints/ckpt-001874 \\
        --step 1874 --out OUT [--format savedmodel|onnx]

Go's `runner export --run-dir RUN --out OUT` resolves the checkpoint and
runs this. The encoder is rebuilt from the run's own manifest (its spec),
its variables read from the checkpoint by the names the training graph
saved them under (every one must be there, with its shape), then saved into
a temporary folder and swapped into place.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KIND = "encoder"  # manifest.json's kind: a standalone trained encoder
ONNX_FILE = "encoder.onnx"
ONNX_OPSET = 17


class TrainedError(Exception):
    """A run or checkpoint that cannot become an encoder export, and why."""


def restore_encoder(model_dir, checkpoint, float32=False):
    """The run's encoder (an InfoMax module rebuilt from model_dir's
    manifest) with the checkpoint's weights; returns (module, manifest).
    float32 builds a model trained in bfloat16 (its variables are float32
    either way) to compute in float32: ONNX Runtime has no bfloat16
    convolution on CPU."""
    import tensorflow as tf

    from .export import MANIFEST
    from .module import InfoMax

    with open(os.path.join(model_dir, MANIFEST)) as f:
        manifest = json.load(f)
    spec = manifest["spec"]
    if float32 and spec["model"].get("precision", "float32") != "float32":
        spec = dict(spec, model=dict(spec["model"], precision="float32"))
        manifest = dict(manifest, precision="float32", trained_precision=manifest.get("precision"))
    module = InfoMax(spec)
    try:
        reader = tf.train.load_checkpoint(checkpoint)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise TrainedError("checkpoint %s: %s" % (checkpoint, e)) from e
    shapes = reader.get_variable_to_shape_map()
    for v in module.encoder.variables:
        # module.weights's key, escaped as TensorFlow names checkpoint objects ("." → "..").
        key = "weights/%s/.ATTRIBUTES/VARIABLE_VALUE" % v.path.replace("/", ".").replace(".", "..")
        if key not in shapes:
            raise TrainedError("checkpoint %s has no %s: it is not a checkpoint of this run's model" % (checkpoint, key))
        if list(shapes[key]) != list(v.shape):
            raise TrainedError("checkpoint %s: %s is %s, the model's is %s" % (checkpoint, key, shapes[key], list(v.shape)))
        v.assign(reader.get_tensor(key))
    return module, manifest


def encoder_module(module):
    """The tf.Module saved: the encoder's variables and the training module's
    own two functions of uint8 images (batch norm on its moving statistics):
    serve is its encode (→ z_mean), conv its encode_conv (→ the last
    convolutional feature map, before the global max pool: the Deep InfoMax
    paper's "conv" features)."""
    import tensorflow as tf

    root = tf.Module(name="encoder")
    # As module.py: the underlying tf.Variables, so the graph-mode loader
    # (Go's C API) connects them to the function that reads them.
    root.weights = {v.path.replace("/", "."): v.value for v in module.encoder.variables}
    # The same Python functions and input signatures, traced again under root
    # (which tracks only the encoder's variables, not the training module's).
    for name, fn in (("serve", module.encode), ("conv", module.encode_conv)):
        setattr(root, name, tf.function(fn.python_function, input_signature=fn.input_signature))
    return root


def save_savedmodel(module, manifest, step, checkpoint, out):
    """Write the standalone SavedModel with its manifest into out (atomic)."""
    from .atomic import new_folder

    with new_folder(out, ".encoder-") as tmp:
        info = _savedmodel(module, manifest, step, checkpoint, tmp)
    return info


def _savedmodel(module, manifest, step, checkpoint, folder):
    import keras
    import tensorflow as tf

    from .atomic import write_json
    from .export import MANIFEST, _signature_table

    root = encoder_module(module)
    sigs = {"serving_default": root.serve, "encode": root.serve, "encode_conv": root.conv}
    tf.saved_model.save(root, folder, signatures=sigs)
    info = {
        "format": manifest["format"],
        "kind": KIND,
        "config_hash": manifest["config_hash"],
        "spec": manifest["spec"],
        "input": manifest["input"],
        "precision": manifest.get("precision", "float32"),
        **({"trained_precision": manifest["trained_precision"]} if "trained_precision" in manifest else {}),
        "feature_map": manifest["feature_map"],
        "feature_dim": manifest["feature_dim"],
        "loss_terms": [],
        "parameters": int(sum(v.shape.num_elements() for v in module.encoder.variables)),
        "step": step,
        "checkpoint": os.path.basename(checkpoint),
        "tags": ["serve"],
        "signatures": _signature_table(folder, tuple(sigs)),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
    write_json(os.path.join(folder, MANIFEST), info)
    return info


def save_onnx(module, manifest, step, checkpoint, out):
    """Write OUT/encoder.onnx (input "images" uint8 [N,H,W,C], output
    "z_mean") and OUT/manifest.json (atomic): the SavedModel above,
    converted by tf2onnx."""
    from .atomic import new_folder, write_json
    from .export import MANIFEST

    with new_folder(out, ".encoder-onnx-") as tmp:
        saved = os.path.join(tmp, "savedmodel")
        os.mkdir(saved)
        info = _savedmodel(module, manifest, step, checkpoint, saved)
        cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved, "--signature_def", "serving_default",
               "--opset", str(ONNX_OPSET), "--output", os.path.join(tmp, ONNX_FILE)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise TrainedError("tf2onnx could not convert the encoder:\n%s" % done.stderr[-4000:])
        shutil.rmtree(saved)
        info = dict(info, format_onnx={"file": ONNX_FILE, "opset": ONNX_OPSET, "input": "images", "output": "z_mean"})
        del info["signatures"], info["tags"]
        write_json(os.path.join(tmp, MANIFEST), info)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pyexport.trained", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the run's model folder (RUN/model)")
    ap.add_argument("--checkpoint", required=True, help="checkpoint prefix (RUN/checkpoints/ckpt-NNNNNN)")
    ap.add_argument("--step", type=int, required=True, help="the checkpoint's training step (recorded)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=("savedmodel", "onnx"), default="savedmodel")
    a = ap.parse_args(argv)
    try:
        module, manifest = restore_encoder(a.model, a.checkpoint, float32=a.format == "onnx")
        save = save_onnx if a.format == "onnx" else save_savedmodel
        info = save(module, manifest, a.step, a.checkpoint, a.out)
    except (OSError, TrainedError) as e:
        print("pyexport.trained: %s" % e, file=sys.stderr)
        return 2
    print("pyexport.trained: wrote %s (%s, step %d, %d parameters, %s → z_mean %d)"
          % (a.out, a.format, a.step, info["parameters"], "x".join(map(str, info["input"]["shape"])), info["feature_dim"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

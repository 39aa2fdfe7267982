"""Export the InfoMax SavedModel for a spec written by `runner export`.

    python -m pyexport --spec SPEC.json --out DIR

Go's `runner export --config configs/X.yaml` writes the spec and runs this.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pyexport", description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="spec JSON written by `runner export`")
    ap.add_argument("--out", required=True, help="SavedModel folder to (re)write")
    args = ap.parse_args(argv)

    from .spec import SpecError, load

    try:
        spec, config_hash = load(args.spec)
    except (OSError, SpecError) as e:
        print("pyexport: %s" % e, file=sys.stderr)
        return 2

    from .export import export

    manifest = export(spec, config_hash, args.out)
    print(
        "pyexport: wrote %s (%d parameters, feature map %s, TF %s, spec %s)"
        % (args.out, manifest["parameters"], "x".join(map(str, manifest["feature_map"])),
           manifest["tensorflow_version"], config_hash[:12])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""python -m pyexport.schema: writes config/schema.json, the allowed values of
the spec's keys that Go's config validation reads (embedded at build time).
Run it after adding an objective, a scaling or a pairing; a test fails until
the file is current."""

import json
import os
import sys

from .spec import schema

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "schema.json")


def render():
    return json.dumps(schema(), indent=2) + "\n"


def main():
    with open(PATH, "w") as f:
        f.write(render())
    print("pyexport.schema: wrote %s" % PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main())

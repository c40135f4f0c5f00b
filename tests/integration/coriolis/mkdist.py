# mkdist.py SRC DEST - the package metadata pip would have installed for the
# Coriolis client in SRC (its setup.cfg), as DEST/python_coriolisclient-*.dist-info:
# METADATA (the version pbr looks up) and entry_points.txt (cliff's command
# list, the "coriolis.v1" group). The client's own folder is not touched.
import configparser
import os
import sys

src, dest = sys.argv[1], sys.argv[2]
cfg = configparser.ConfigParser(interpolation=None)
if not cfg.read(os.path.join(src, "setup.cfg")):
    sys.exit("mkdist: no setup.cfg in %s" % src)
name = cfg["metadata"]["name"]
d = os.path.join(dest, "%s-0.0.0.dist-info" % name.replace("-", "_"))
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "METADATA"), "w") as f:
    f.write("Metadata-Version: 2.1\nName: %s\nVersion: 0.0.0\n" % name)
with open(os.path.join(d, "entry_points.txt"), "w") as f:
    for group, body in cfg["entry_points"].items():
        f.write("[%s]\n" % group)
        for line in body.strip().splitlines():
            if line.strip():
                f.write(line.strip() + "\n")
        f.write("\n")

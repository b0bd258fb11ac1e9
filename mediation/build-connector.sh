#!/usr/bin/env bash
# Packs mediation/mastodon-connector/ into mediation/target/mastodon-connector-<version>.zip,
# the archive MI imports as a connector (connector.xml at the root of the zip).
#
#   mediation/build-connector.sh            # version 0.1.0
#   CONNECTOR_VERSION=0.2.0 mediation/build-connector.sh
#
# Every XML and JSON file is parsed first when python3 is available: MI only reports a
# malformed template when the connector is deployed, with an error far from the cause.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/mastodon-connector"
version="${CONNECTOR_VERSION:-0.1.0}"
out_dir="$here/target"
out="$out_dir/mastodon-connector-$version.zip"

[ -f "$src/connector.xml" ] || { echo "build-connector: $src/connector.xml not found" >&2; exit 1; }

if command -v python3 >/dev/null 2>&1; then
    python3 - "$src" <<'PY'
import json, os, sys, xml.dom.minidom
root = sys.argv[1]
bad = 0
for dirpath, _, files in os.walk(root):
    for name in sorted(files):
        path = os.path.join(dirpath, name)
        try:
            if name.endswith('.xml'):
                xml.dom.minidom.parse(path)
            elif name.endswith('.json'):
                with open(path, encoding='utf-8') as f:
                    json.load(f)
        except Exception as e:  # report every broken file, not just the first
            print(f'build-connector: {os.path.relpath(path, root)}: {e}', file=sys.stderr)
            bad += 1
sys.exit(1 if bad else 0)
PY
else
    echo "build-connector: python3 not found, skipping XML/JSON checks" >&2
fi

mkdir -p "$out_dir"
rm -f "$out"

if command -v zip >/dev/null 2>&1; then
    # -X: no extra file attributes (uid/gid, timestamps beyond the standard ones).
    (cd "$src" && zip -q -r -X "$out" . -x '.*' -x '*/.*')
elif command -v python3 >/dev/null 2>&1; then
    python3 - "$src" "$out" <<'PY'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
    for dirpath, dirnames, files in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        rel = os.path.relpath(dirpath, src)
        if rel != '.':
            z.write(dirpath, rel + '/')  # explicit directory entries, as zip(1) writes them
        for name in sorted(files):
            if name.startswith('.'):
                continue
            path = os.path.join(dirpath, name)
            z.write(path, os.path.relpath(path, src))
PY
else
    echo "build-connector: neither zip nor python3 is available" >&2
    exit 1
fi

echo "$out"

#!/usr/bin/env bash
# Re-fetch the studio page's vendored browser libraries from the npm registry and rewrite their manifest.
#
#   scripts/refresh-vendor.sh                 # fetch the pinned versions into midi_rwkv/studio/static/vendor/
#   KEEP_TMP=1 scripts/refresh-vendor.sh      # keep the unpacked tarballs (the script prints where)
#
# Each entry of PACKAGES is "NAME VERSION FILE..." : the package is fetched with `npm pack NAME@VERSION`,
# the listed files (paths inside the tarball's package/ folder; LICENSE is always added) are copied to
# VENDOR/NAME/, and VENDOR/MANIFEST.json records the package, version, licence, tarball URL and integrity
# as npm reports them, and the sha256 of every copied file. tests/studio/test_vendor.py checks the result.
# Needs npm (and its node) and the npm registry; the page itself never loads anything from the network.
set -euo pipefail
cd "$(dirname "$0")/.."

VENDOR=${VENDOR:-midi_rwkv/studio/static/vendor}      # where the page serves them from (/static/vendor/)
NPM=${NPM:-npm}
KEEP_TMP=${KEEP_TMP:-0}
PACKAGES=(
    "webaudio-tinysynth 1.1.3 webaudio-tinysynth.js"    # General MIDI synth (Web Audio, no samples), Apache-2.0
)

command -v "$NPM" >/dev/null || { echo "refresh-vendor: $NPM not found (install Node.js and npm)" >&2; exit 1; }
TMP=$(mktemp -d)
if [[ "$KEEP_TMP" == 1 ]]; then echo "refresh-vendor: keeping $TMP"; else trap 'rm -rf "$TMP"' EXIT; fi

mkdir -p "$VENDOR"
entries="$TMP/entries.jsonl"
: >"$entries"
for spec in "${PACKAGES[@]}"; do
    read -r name version files <<<"$spec"
    echo "refresh-vendor: $name@$version"
    work="$TMP/$name"
    mkdir -p "$work"
    (cd "$work" && "$NPM" pack --silent "$name@$version" >/dev/null)
    tarball_file=$(ls "$work"/*.tgz)
    tar -xzf "$tarball_file" -C "$work"
    tarball_url=$("$NPM" view "$name@$version" dist.tarball)
    integrity=$("$NPM" view "$name@$version" dist.integrity)
    # the tarball we got must be the one the registry describes
    got="sha512-$(openssl dgst -sha512 -binary "$tarball_file" | base64 -w0)"
    [[ "$got" == "$integrity" ]] || { echo "refresh-vendor: $name integrity mismatch ($got)" >&2; exit 1; }
    license=$(node -e 'console.log(require(process.argv[1]).license || "")' "$work/package/package.json")
    [[ -f "$work/package/LICENSE" ]] || { echo "refresh-vendor: $name has no LICENSE file" >&2; exit 1; }

    rm -rf "${VENDOR:?}/$name"
    mkdir -p "$VENDOR/$name"
    for file in $files LICENSE; do
        cp "$work/package/$file" "$VENDOR/$name/$(basename "$file")"
        sha=$(sha256sum "$VENDOR/$name/$(basename "$file")" | cut -d' ' -f1)
        node -e 'console.log(JSON.stringify({package: process.argv[1], version: process.argv[2],
                 license: process.argv[3], tarball: process.argv[4], integrity: process.argv[5],
                 path: process.argv[6], source: process.argv[7], sha256: process.argv[8]}))' \
            "$name" "$version" "$license" "$tarball_url" "$integrity" \
            "$name/$(basename "$file")" "package/$file" "$sha" >>"$entries"
    done
done

# group the file entries by package into MANIFEST.json (stable order, two-space indent, trailing newline)
node -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse);
const packages = [];
for (const e of lines) {
  let p = packages.find(q => q.package === e.package);
  if (!p) packages.push(p = {package: e.package, version: e.version, license: e.license,
                             tarball: e.tarball, integrity: e.integrity, files: []});
  p.files.push({path: e.path, source: e.source, sha256: e.sha256});
}
const manifest = {
  about: "Third-party files vendored for the studio page; refresh with scripts/refresh-vendor.sh. Paths are relative to this folder.",
  packages,
};
fs.writeFileSync(process.argv[2], JSON.stringify(manifest, null, 2) + "\n");
' "$entries" "$VENDOR/MANIFEST.json"
echo "refresh-vendor: wrote $VENDOR/MANIFEST.json"

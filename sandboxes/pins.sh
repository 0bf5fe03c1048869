#!/usr/bin/env bash
# pins.sh: copies every pin of versions.env into the ARG defaults of the
# Dockerfiles that declare it ("ARG KEY=old" becomes "ARG KEY=new"), so a plain
# `docker build` uses the same versions as CI. `make sandbox-pins` runs it;
# `go test ./sandboxes/` fails while a default and versions.env disagree.
set -euo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
changed=0
while IFS='=' read -r key value; do
	[[ $key =~ ^[A-Z][A-Z0-9_]*$ ]] || continue
	for dockerfile in "$dir"/*/Dockerfile; do
		if grep -qE "^ARG ${key}=" "$dockerfile" && ! grep -qxF "ARG ${key}=${value}" "$dockerfile"; then
			sed -i -E "s|^ARG ${key}=.*$|ARG ${key}=${value}|" "$dockerfile"
			echo "pins.sh: ${dockerfile#"$dir"/}: ${key}=${value}"
			changed=$((changed + 1))
		fi
	done
done <"$dir/versions.env"
echo "pins.sh: $changed default(s) updated"

#!/usr/bin/env bash
# Installs the parts of the test world into ${PGRATOR_CACHE:-~/.cache/pgrator}, each pinned and cached by version.
# Idempotent: a finished part is skipped. Usage: tests/world/install.sh [part ...]   (no argument: every part)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ALL_PARTS=(tools postgres psql idp registry browser kube crds node cnpg pgroot barman gcs clients)
parts=("$@")
[ "${#parts[@]}" -eq 0 ] && parts=("${ALL_PARTS[@]}")
for part in "${parts[@]}"; do
    script="$here/parts/$part.sh"
    if [ ! -f "$script" ]; then
        echo "[world] unknown part '$part' (known: ${ALL_PARTS[*]})" >&2
        exit 2
    fi
    bash "$script"
done

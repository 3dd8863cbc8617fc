#!/usr/bin/env bash
# Installs the OS packages the test suite drives for real, only when one is missing:
#   curl         - the end-to-end download tests run the real curl binary
#   freetds-bin  - FreeTDS `tsql`, an independent TDS client checked against the dev server
#   chromium     - Debian's headless browser for the page tests (no browser download of its own)
#   libreoffice-calc-nogui - LibreOffice, a second spreadsheet application that must open every
#                  sheet of a multi-sheet export (headless conversion to CSV)
#   npm          - to fetch axe-core (below), when the machine has no npm of its own
# and, from the npm registry, a pinned axe-core in build/axe-core (not committed; npm's cache
# makes a reinstall after `make clean` quick): the accessibility checks the page tests inject
# into the page they drive (tests/e2e/axe.py). The page itself never loads it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
AXE_CORE_VERSION=4.14.1
axe_dir="$root/build/axe-core"
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v tsql >/dev/null 2>&1 || need+=(freetds-bin)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v soffice >/dev/null 2>&1 || need+=(libreoffice-calc-nogui)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        sudo=sudo
    else
        sudo=
    fi
    echo "installing OS packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A mirror hiccup on CI must not fail the run: apt retries each download a few times.
    retries=(-o Acquire::Retries=5)
    $sudo apt-get "${retries[@]}" update -qq
    $sudo apt-get "${retries[@]}" install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! grep -qs "\"version\": \"$AXE_CORE_VERSION\"" "$axe_dir/node_modules/axe-core/package.json"; then
    echo "installing axe-core $AXE_CORE_VERSION into build/axe-core"
    npm install --prefix "$axe_dir" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
        "axe-core@$AXE_CORE_VERSION" >/dev/null
fi

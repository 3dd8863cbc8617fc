#!/usr/bin/env bash
# Installs the OS packages the test suite drives for real, only when one is missing:
#   curl         - the end-to-end download tests run the real curl binary
#   freetds-bin  - FreeTDS `tsql`, an independent TDS client checked against the dev server
#   chromium     - Debian's headless browser for the page tests (no browser download of its own)
#   libreoffice-calc-nogui - LibreOffice, a second spreadsheet application that must open every
#                  sheet of a multi-sheet export (headless conversion to CSV)
set -euo pipefail
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v tsql >/dev/null 2>&1 || need+=(freetds-bin)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v soffice >/dev/null 2>&1 || need+=(libreoffice-calc-nogui)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
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

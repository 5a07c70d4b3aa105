#!/usr/bin/env bash
# Install the Debian packages Kyso's tests and demo need; does nothing when they are present.
set -euo pipefail

packages=(softhsm2 poppler-utils xmlsec1 qpdf fonts-noto-core tesseract-ocr tesseract-ocr-vie chromium
          libnss3-tools openssl)
# One probe per package: a command or file it provides.
probes=(/usr/bin/softhsm2-util /usr/bin/pdfsig /usr/bin/xmlsec1 /usr/bin/qpdf
        /usr/share/fonts/truetype/noto/NotoSerif-Regular.ttf /usr/bin/tesseract
        /usr/share/tesseract-ocr/5/tessdata/vie.traineddata /usr/bin/chromium /usr/bin/certutil
        /usr/bin/openssl)

missing=()
for i in "${!packages[@]}"; do
  [ -e "${probes[$i]}" ] || missing+=("${packages[$i]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing system packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"

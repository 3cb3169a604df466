#!/usr/bin/env bash
# The web chat's browser test (tests/webchat/test_browser.py) drives Debian's Chromium
# through Playwright; no browser is downloaded. Install Debian's package when it is
# missing (as root, where apt-get exists); without it the test fails, it is not skipped.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "chromium is missing: install Debian's 'chromium' package (the web chat browser test needs it)" >&2
exit 1

#!/usr/bin/env bash
# Browser tests drive Debian's chromium (a tool's own browser download cannot
# reach its host here). Install it when missing; if it truly cannot be had,
# say so loudly: the browser tests then skip with the same message.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium for the browser tests"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation >/dev/null
else
  echo "!!! chromium is not installed and cannot be installed here (need root + apt-get)." >&2
  echo "!!! The browser tests will be SKIPPED. Install it: apt-get install chromium" >&2
fi

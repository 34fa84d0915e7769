#!/usr/bin/env bash
# The README's pictures of report.html and compare.html, as a browser shows them: the sample
# pipeline's report (pipelines/sample.yaml) and a sweep's comparison (pipelines/sweep-sample.yaml,
# four variants), rendered by headless Chromium into docs/images/. Needs a release build and
# Chromium (apt-get install chromium). Writes under artifacts/ (git-ignored) and docs/images/.
#   scripts/screenshot_pages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium > /dev/null || { echo "screenshot_pages: needs chromium (apt-get install chromium)" >&2; exit 1; }
bin=.build/release
$bin/pipeline run pipelines/sample.yaml --force train > /dev/null   # the report as this build writes it
$bin/pipeline sweep pipelines/sweep-sample.yaml --grid preprocess.size=32,40 --grid train.dropout=0.2,0.5 --jobs 2 > /dev/null
$bin/pipeline compare pipelines/sweep-sample.yaml > /dev/null
shoot() {  # page, picture, height
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1150,"$3" \
    --screenshot="$PWD/$2" "file://$PWD/$1" > /dev/null 2>&1
  echo "screenshot_pages: $2 ($(du -k "$2" | cut -f1) KB) from $1"
}
shoot artifacts/sample/report.html docs/images/report.png 2600
shoot artifacts/sweep-sample/compare.html docs/images/compare.png 1900

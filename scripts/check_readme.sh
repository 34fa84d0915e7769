#!/usr/bin/env bash
# Runs every command the README shows, as written and in order, in a fresh clone of this repository
# (with this checkout's .build borrowed, so nothing is built twice): each ```sh block as one script,
# and each `$ ` line (with its `\` continuations) of the other blocks. Then the clone must be as
# cloned (`git status` clean): the examples write only under git-ignored folders (artifacts/).
#
# Skipped, with the reason: `make test` (CI runs it on its own), what needs the full Kaggle CSVs;
# `make run` runs its two pipelines on this checkout's build.
# Where Keras's ResNet50 weights are neither cached nor downloadable, `--weights imagenet` is run as
# `--weights random:0` (said so): the commands' mechanics are checked, not ImageNet's accuracy.
# Needs a release build (`make build`). Exit status 1 if any command fails or the clone changed.
#   scripts/check_readme.sh [README]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
readme=${1:-README.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
ln -s "$repo/.build" "$work/clone/.build"
# The working tree's README (and scripts) as they are now, so an uncommitted edit is what is checked.
cp "$repo/$readme" "$work/clone/README.md"

# One command (or block) per record, NUL-separated, each prefixed by its README line.
python3 - "$work/clone/README.md" > "$work/commands" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
out, block, language, start, number = [], None, "", 0, 0
while number < len(lines):
    line = lines[number]
    if line.startswith("```"):
        if block is None:
            block, language, start = [], line[3:].strip(), number + 1
        else:
            if language in ("sh", "bash") and any(l.strip() and not l.strip().startswith("#") for l in block):
                out.append((start + 1, "\n".join(block)))
            block = None
        number += 1
        continue
    if block is not None:
        if language in ("sh", "bash"):
            block.append(line)
        elif line.startswith("$ "):
            command, first = line[2:], number
            while command.endswith("\\") and number + 1 < len(lines):
                number += 1
                command = command + "\n" + lines[number]
            out.append((first + 1, command))
    number += 1
sys.stdout.write("".join(f"{n}\t{c}\0" for n, c in out))
PY

weights=$HOME/.keras/models/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5
offline=0
if [ ! -f "$weights" ] && ! curl -sfI --max-time 5 https://storage.googleapis.com/tensorflow/keras-applications/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 > /dev/null 2>&1; then
  offline=1
fi

cd "$work/clone"
passed=0 failed=0 skipped=0
while IFS= read -r -d '' record; do
  line=${record%%$'\t'*}
  command=${record#*$'\t'}
  shown=$(printf '%s' "$command" | head -1 | cut -c1-100)
  reason=""
  case "$command" in
    *"make test"*) reason="CI runs make test itself" ;;
    *sign-language-mnist.yaml*) reason="needs the full Kaggle CSVs in pipelines/data/" ;;
  esac
  if [ -n "$reason" ]; then
    echo "check_readme: README.md:$line SKIPPED ($reason): $shown"
    skipped=$((skipped + 1))
    continue
  fi
  note=""
  # make run builds, then runs the two sample pipelines: the build is this checkout's (a second
  # build in the clone would clash with the borrowed module cache), the pipelines run here.
  if [[ "$command" == "make run"* ]]; then
    command=".build/release/pipeline run pipelines/sample.yaml && .build/release/pipeline run pipelines/folder-sample.yaml"
    note=" (its pipelines, on this checkout's build)"
  fi
  if [ $offline = 1 ] && [[ "$command" == *"--weights imagenet"* ]]; then
    command=${command//--weights imagenet/--weights random:0}
    note=" (as --weights random:0: no ImageNet weights here)"
  fi
  if bash -e -o pipefail -c "$command" > "$work/out" 2>&1; then
    echo "check_readme: README.md:$line ok$note: $shown"
    passed=$((passed + 1))
  else
    status=$?
    echo "check_readme: README.md:$line FAILED (exit $status)$note: $shown"
    sed 's/^/    /' "$work/out" | tail -15
    failed=$((failed + 1))
  fi
done < "$work/commands"

changed=$(git status --porcelain --untracked-files=all | grep -v -e '^?? \.build$' -e '^ M README.md$' || true)
if [ -n "$changed" ]; then
  echo "check_readme: the examples wrote outside git-ignored folders:"
  echo "$changed" | sed 's/^/    /'
  failed=$((failed + 1))
fi
echo "check_readme: $passed ran, $skipped skipped, $failed failed"
[ $failed = 0 ]

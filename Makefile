# SignTransfer: `make run` runs the pipeline on the embedded sample, `make test` runs the tests.
# Both install the system packages they need first (Debian; root or sudo).
SWIFT ?= swift
CONFIG := -c release
BIN := .build/release

.PHONY: deps build run test test-kernels test-portable test-slurm test-onnx bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build $(CONFIG)

run: build
	$(BIN)/pipeline run pipelines/sample.yaml
	$(BIN)/pipeline run pipelines/folder-sample.yaml

# Release, because the numeric tests (ResNet50 parity) are 10-100x slower in a debug build.
test: deps
	$(SWIFT) test $(CONFIG) --disable-testable-imports

# The numeric tests again under OpenBLAS's Haswell, Zen (and SkylakeX) kernels and each GEMM path this
# CPU runs (built first if `make test` has not). CI runs it.
test-kernels: deps
	bash scripts/test-kernels.sh

# Without our x86 kernels: the C targets compiled for aarch64, the package built with them left out
# (.build-portable) and its numeric tests run on OpenBLAS and the portable product. CI runs it.
test-portable: deps
	bash scripts/check_portable.sh

# The Slurm executor on a one-node cluster started here (installs slurm-wlm and munge; root). CI runs it.
test-slurm: build
	bash scripts/test-slurm.sh

# The exported ONNX model against predict in ONNX Runtime (pip installs it; skipped, saying so, where it cannot). CI runs it.
test-onnx: build
	bash scripts/test-onnx.sh

bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-directory .benchmarkBaselines benchmark

clean:
	rm -rf .build .build-portable artifacts/sample

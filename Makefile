# SignTransfer: `make run` runs the pipeline on the embedded sample, `make test` runs the tests.
# Both install the system packages they need first (Debian; root or sudo).
SWIFT ?= swift
CONFIG := -c release
BIN := .build/release
SAMPLE := pipelines/data/sign-mnist-sample
OUT := artifacts/sample

.PHONY: deps build run test bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build $(CONFIG)

run: build
	@mkdir -p $(OUT)
	$(BIN)/ingest --train $(SAMPLE)/train.csv --test $(SAMPLE)/test.csv --output $(OUT)/images.sqlite
	$(BIN)/preprocess --input $(OUT)/images.sqlite --output $(OUT)/preprocessed.sqlite --size 224
	$(BIN)/extract --input $(OUT)/preprocessed.sqlite --output $(OUT)/features.sqlite --weights imagenet \
	  || { echo "make run: the ImageNet weights cannot be had here; falling back to a RANDOM backbone (random:0)" >&2; \
	       $(BIN)/extract --input $(OUT)/preprocessed.sqlite --output $(OUT)/features.sqlite --weights random:0; }
	$(BIN)/train --input $(OUT)/features.sqlite --output $(OUT)/head.sqlite
	@echo "report: $(OUT)/report.html"

# Release, because the numeric tests (ResNet50 parity) are 10-100x slower in a debug build.
test: deps
	$(SWIFT) test $(CONFIG) --disable-testable-imports

bench: deps
	cd Benchmarks && $(SWIFT) package --allow-writing-to-directory .benchmarkBaselines benchmark

clean:
	rm -rf .build artifacts/sample

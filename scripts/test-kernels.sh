#!/usr/bin/env bash
# The numeric tests again under each environment a user's machine may give (after `make test` built
# them): OpenBLAS's Haswell and Zen kernels (what it runs on AVX2 CPUs without AVX-512), SkylakeX
# where the CPU has AVX-512, and each GEMM path this CPU runs (SIGNTRANSFER_GEMM). Parity with Keras,
# batch independence, the reference convolution, the fixed-order products, the mobile backbones' kernels, shards, the head's
# reproducibility (SameSeedSameHead runs every environment itself, in make test): none may depend
# on which kernel OpenBLAS picks.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
suites="KerasParity|ColourParity|SeparableResize|BatchIndependence|ReferenceConvolution|FixedOrder|Sharding|TrainingLoop|MobileKernelChecks"
environments=("OPENBLAS_CORETYPE=Haswell" "OPENBLAS_CORETYPE=Zen" "SIGNTRANSFER_GEMM=blas OPENBLAS_CORETYPE=Haswell")
grep -qw avx512f /proc/cpuinfo && environments+=("OPENBLAS_CORETYPE=SkylakeX" "SIGNTRANSFER_GEMM=avx512")
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && environments+=("SIGNTRANSFER_GEMM=avx2 OPENBLAS_CORETYPE=Haswell")
$SWIFT build -c release --build-tests > /dev/null
failed=0
for environment in "${environments[@]}"; do
  log=$(mktemp)
  start=$(date +%s)
  if env $environment $SWIFT test -c release --skip-build --disable-testable-imports --filter "$suites" > "$log" 2>&1; then
    echo "test-kernels: $environment: $(grep -E "Test run with" "$log" | tail -1 | sed 's/^[^T]*//') ($(( $(date +%s) - start )) s)"
  else
    grep -E "✘|error" "$log" | head -20
    echo "test-kernels: $environment: FAILED"
    failed=$((failed + 1))
  fi
  rm -f "$log"
done
echo "test-kernels: $(( ${#environments[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]

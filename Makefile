# secgroupd-bench: see README.md, section "Benchmark". Needs root (network namespaces).
# BENCH_ARGS passes options through, e.g. `make bench BENCH_ARGS="--permissions 1000,10000"`.

CARGO ?= cargo
OUT ?= bench-results
BENCH_ARGS ?=

.PHONY: bench bench-quick

# The full run (several minutes): tables of 1,000 to 100,000 permissions.
bench:
	$(CARGO) build --release --bins
	target/release/secgroupd-bench --out $(OUT) $(BENCH_ARGS)

# The smoke test CI runs: every part, tiny sizes, exits non-zero if anything failed.
bench-quick:
	$(CARGO) build --release --bins
	target/release/secgroupd-bench --quick --out $(OUT)/quick $(BENCH_ARGS)

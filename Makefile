# The two commands of the README, and the setup they share.
.PHONY: setup drills test bench

setup:
	@scripts/setup.sh

drills: setup
	.venv/bin/pytest -m drill

test: setup
	.venv/bin/pytest

bench: setup
	.venv/bin/python bench/chain_bench.py
	.venv/bin/python bench/proxy_bench.py

# The two commands of the README, the setup they share, and the longer runs.
.PHONY: setup drills test drills-anvil sensitivity bench

setup:
	@scripts/setup.sh

# The drills on the embedded chain (pyevm), against the reference agent.
drills: setup
	.venv/bin/pytest -m drill

# The whole test suite: the harness's own tests, chain parity on both backends, the drills on pyevm,
# and the sensitivity of the drills (every defect variant of the reference agent caught).
test: setup
	.venv/bin/pytest

# The drills on anvil.
drills-anvil: setup
	.venv/bin/pytest -m drill --chain anvil

# Every defect variant of the reference agent against the drills aimed at it; prints the table.
sensitivity: setup
	.venv/bin/pytest -m sensitivity -s

bench: setup
	.venv/bin/python bench/chain_bench.py
	.venv/bin/python bench/proxy_bench.py

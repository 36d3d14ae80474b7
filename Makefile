# The two commands of the README, the setup they share, and the longer runs.
.PHONY: setup drills test drills-anvil drills-docker image sensitivity bench bench-parallel explore

setup:
	@scripts/setup.sh

# The drills on the embedded chain (pyevm), against the reference agent.
drills: setup
	.venv/bin/pytest -m drill

# The whole test suite: the harness's own tests, chain parity on both backends, the drills on pyevm,
# the sensitivity of the drills (every defect variant of the reference agent caught) and the Docker
# runtime (tests/runtime/test_docker_runtime.py: needs dockerd, see scripts/dockerd.sh).
test: setup
	.venv/bin/pytest

# The drills on anvil.
drills-anvil: setup
	.venv/bin/pytest -m drill --chain anvil

# The reference agent as a Docker image, built from this machine's files (no registry): needs dockerd.
image: setup
	.venv/bin/drill image reference

# The drills against the reference agent's image, under the Docker runtime.
drills-docker: image
	.venv/bin/pytest -m drill --agent-image agent-drills/reference-agent:$$(.venv/bin/python -c 'import harness; print(harness.__version__)')

# Every defect variant of the reference agent against the drills aimed at it; prints the table.
sensitivity: setup
	.venv/bin/pytest -m sensitivity -s

# The schedule search with the explore profile: 30 minutes on each chain against the reference agent
# (docs/schedules.md). EXPLORE_BUDGET=10m shortens it.
EXPLORE_BUDGET ?= 30m
explore: setup
	.venv/bin/drill explore --budget $(EXPLORE_BUDGET) --chain pyevm
	.venv/bin/drill explore --budget $(EXPLORE_BUDGET) --chain anvil

bench: setup
	.venv/bin/python bench/chain_bench.py
	.venv/bin/python bench/proxy_bench.py

# The catalogue serial and with -n 3, side by side on both chains (about 10 minutes); the README's figures.
bench-parallel: setup
	.venv/bin/python bench/parallel_bench.py

# The sample game day against the reference agent, unattended (about 3 minutes; docs/gameday.md).
.PHONY: gameday
gameday: setup
	.venv/bin/drill gameday gamedays/sample.toml --yes

# kdzoo: `make demo` runs the main job, `make test` the whole suite, `make test-fast` the suite without its slow runs
# and kill-and-resume drills (the edit loop). Each installs what it needs first
# (core, every in-repo plugin, the documented example plugin, test, tracker, completion and tune extras) into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KDZOO := $(VENV)/bin/kdzoo
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.kdzoo-installed
DEMO_OUT ?= runs/demo
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install demo test test-fast clean
.PHONY: test-cluster

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) docs/example-plugin/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test,trackers,completion,tune]" $(foreach p,$(PLUGINS),-e $(p)) -e docs/example-plugin
	touch $(STAMP)

install: $(STAMP)

# The main job: a test_resnet teacher (trained once, cached) distilled into LeNet-5 on the bundled
# MNIST subset with 100 labels per class; labels-only `ce` against Hinton KD, 3 seeds, same budget.
demo: $(STAMP)
	$(KDZOO) distill --teacher test_resnet --student lenet5 --strategy ce --data mnist5k --labels-per-class 100 \
		--epochs 15 --seeds 0,1,2 --threads 1 --out $(DEMO_OUT) --name ce-$$(date +%Y%m%d-%H%M%S) --no-progress
	$(KDZOO) distill --teacher test_resnet --student lenet5 --strategy kd --data mnist5k --labels-per-class 100 \
		--epochs 15 --seeds 0,1,2 --threads 1 --out $(DEMO_OUT) --name kd-$$(date +%Y%m%d-%H%M%S) --no-progress
	$(KDZOO) compare $$(ls -d $(DEMO_OUT)/kd-* | tail -1) $$(ls -d $(DEMO_OUT)/ce-* | tail -1)

# The numeric golden tests run a second time on PyTorch's generic CPU kernels, so a comparison that
# holds only on this CPU's vector kernels fails here, not on a user's other machine.
test: $(STAMP)
	KDZOO_STRICT_PLUGINS=1 $(PY) -m pytest
	ATEN_CPU_CAPABILITY=default KDZOO_STRICT_PLUGINS=1 $(PY) -m pytest tests/test_losses.py -k golden

# The edit loop: the suite without its slow end-to-end runs and kill-and-resume drills (`make test`
# still runs everything before a merge).
test-fast: $(STAMP)
	KDZOO_STRICT_PLUGINS=1 $(PY) -m pytest -m "not slow and not drill and not cluster"

clean:
	rm -rf $(VENV) runs

# the cluster tests: a real single-node Slurm and a two-node Ray on this machine (see .ci/cluster)
test-cluster: $(STAMP)
	.ci/cluster

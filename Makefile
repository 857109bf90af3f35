# cartcast: every target is listed by `make help`.
# Targets that rewrite files (fmt) are separate from those that only check (check).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt functions/requirements.txt | cksum | cut -d' ' -f1)
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cksum < requirements-checkov.txt | cut -d' ' -f1)
TFVARS ?= terraform/terraform.tfvars
# Terraform stops on a -var-file that does not exist: with only TF_VAR_<name> set
# there is none, so the flag is passed only when the file is there.
TFVARS_FLAG = $(if $(wildcard $(TFVARS)),-var-file=$(abspath $(TFVARS)))
# axe-core for the console's browser test, from npm (tests/browser/package-lock.json).
AXE := tests/browser/node_modules/axe-core/axe.min.js

.DEFAULT_GOAL := help
.PHONY: help install chromium demo serve test bench faults migrate db-url db-stop check fmt clean deploy

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

install: $(STAMP) $(CHECKOV_STAMP) $(AXE) ## Create .venv (and .venv-checkov) with the pinned dependencies, and axe-core for the browser tests

# Only `make test` needs checkov's virtualenv and axe-core (npm); every other
# target needs .venv alone, so the demo runs without npm or a second install.

# Its output goes to stderr: targets such as db-url print a value that the README
# captures with $(make -s db-url), and the first run installs before printing it.
# set -e: a failed step (old Python, pip offline) stops here, leaving no stamp.
$(STAMP): requirements-dev.txt functions/requirements.txt
	@set -e; start=$$(date +%s); \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "cartcast needs Python 3.11+")'; \
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV) >&2; \
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt >&2; \
	rm -f $(VENV)/.installed-*; touch $@; \
	echo "install: done in $$(( $$(date +%s) - start )) s" >&2

# checkov gets its own virtualenv: its hcl2 module is not python-hcl2's.
$(CHECKOV_STAMP): requirements-checkov.txt
	@[ -x $(CHECKOV_VENV)/bin/python ] || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-*; touch $@

# npm ci installs exactly the lock file's axe-core; it runs no install script.
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "install: npm is needed for axe-core (apt-get install npm)"; exit 1; }
	@npm ci --prefix tests/browser --ignore-scripts --no-audit --no-fund --silent
	@touch $@

chromium: ## Install Debian's chromium and strace for the HTML report test (as root; CI does)
	@{ command -v chromium && command -v strace; } >/dev/null 2>&1 || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium strace >/dev/null; }
	@echo "chromium: $$(chromium --version 2>/dev/null); $$(strace -V | head -n 1)"

demo: $(STAMP) ## Run the whole loop on the demo catalog in a simulated week (LIVE=1: real X, capped)
	@$(PY) -m infra.demo $(if $(LIVE),--live)

serve: $(STAMP) ## Run the demo week, then keep it up with the web console on 127.0.0.1 until Ctrl-C
	@$(PY) -m infra.demo --serve

test: install ## Run the test suite against a real PostgreSQL
	@$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP) ## Measure sentiment and triage accuracy, cold starts and memory, the Gemini SDK's own share of a cold start, a cold claimed tick's connections, caption quota use, publishing 1,000 posts, storing 50,000 mentions and the KPI rollup of 1,000,000 snapshots
	@start=$$(date +%s); \
	$(PY) -m bench.sentiment_eval && \
	$(PY) -m bench.triage_eval && \
	$(PY) -m bench.triage_eval --labels bench/labels/reporting_0060.json && \
	$(PY) -m bench.functions && \
	$(PY) -m bench.gemini_floor --json var/bench/gemini_floor.json && \
	$(PY) -m bench.cold_claim --json var/bench/cold_claim.json && \
	$(PY) -m bench.rollup --json var/bench/rollup.json; \
	status=$$?; \
	echo "bench: done in $$(( $$(date +%s) - start )) s, load average $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	exit $$status

faults: $(STAMP) ## Inject faults and count what was lost or doubled: killed publishers, a cut database, X's and Gemini's failures, a fuzzed API (SEED=n repeats a run)
	@$(PY) -m bench.faults $(if $(SEED),--seed $(SEED))

migrate: $(STAMP) ## Apply sql/ to DATABASE_URL, or to the embedded server
	@$(PY) -m infra.pg migrate

db-url: $(STAMP) ## Start the embedded PostgreSQL if needed and print its URL
	@$(PY) -m infra.pg url

db-stop: $(STAMP) ## Stop the embedded PostgreSQL
	@$(PY) -m infra.pg stop

check: $(STAMP) ## Lint and check formatting without changing files
	@$(VENV)/bin/ruff check functions infra tests bench
	@$(VENV)/bin/ruff format --check functions infra tests bench

fmt: $(STAMP) ## Format and autofix the code
	@$(VENV)/bin/ruff format functions infra tests bench
	@$(VENV)/bin/ruff check --fix functions infra tests bench

# The guard names every required variable that TFVARS and TF_VAR_* leave unset,
# before Terraform starts. The functions' source is staged with its python311
# bytecode in terraform/.build/functions, which Terraform zips (decision 0028).
# Then the migrations job is brought up to date and run,
# so the schema is ahead of the code that needs it, and the whole plan is shown
# and applied once you answer yes (Terraform asks before the first apply too).
deploy: $(STAMP) ## Deploy terraform/ to Google Cloud: guard, migrations job, plan, apply (TFVARS=file)
	@$(PY) -m infra.deploy_guard --var-file $(TFVARS)
	@mkdir -p terraform/.build
	@$(PY) -m infra.function_source
	terraform -chdir=terraform init -input=false
	terraform -chdir=terraform apply $(TFVARS_FLAG) \
		-target=google_cloud_run_v2_job.migrate
	@job=$$(terraform -chdir=terraform output -raw migrations_job) && \
		gcloud run jobs execute "$${job##*/}" --project "$$(echo $$job | cut -d/ -f2)" \
		--region "$$(echo $$job | cut -d/ -f4)" --wait
	terraform -chdir=terraform plan -input=false $(TFVARS_FLAG) \
		-out=.build/deploy.tfplan
	@printf "Apply this plan? Only 'yes' goes on: " && read -r answer && [ "$$answer" = yes ]
	terraform -chdir=terraform apply -input=false .build/deploy.tfplan

clean: ## Remove the virtualenv, the embedded database and demo output
	-@[ -x $(PY) ] && $(PY) -m infra.pg stop
	rm -rf $(VENV) $(CHECKOV_VENV) var terraform/.build

"""terraform/ checked offline against the code it deploys.

The google provider is not on these machines, so `terraform init` and `validate`
cannot run here. What can, does: `terraform fmt`, `terraform test` on the
variables alone (a module without providers), python-hcl2 reading every file so
that the tests can hold the Terraform to the code (entry points, topics, the
settings each function reads, the Scheduler jobs) and to the argument names
its providers document, checkov from its own virtualenv with no network, and
the guard of `make deploy`.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cartcast import events, settings
from cartcast.errors import ConfigurationError
from infra import deploy_guard

REPO = Path(__file__).resolve().parents[1]
TERRAFORM = REPO / "terraform"
MAIN = REPO / "functions" / "main.py"
PACKAGE = REPO / "functions" / "cartcast"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Settings that only the local stand-ins use; the cloud sets none of them.
LOCAL_ONLY = {
    "DATABASE_URL": "the cloud connects with CLOUD_SQL_INSTANCE",
    "CARTCAST_CLOCK": "refused in the cloud (settings._check_consistency)",
    "CARTCAST_PUBSUB_PUSH": "the local push wiring; the cloud publishes to Pub/Sub",
    "X_API_BASE_URL": "points tweepy at the X sandbox",
    "GEMINI_BASE_URL": "points google-genai at the Gemini stand-in",
    "CARTCAST_SCHEDULER_ENDPOINT": "points the pause at the Scheduler stand-in",
    "CARTCAST_TOKEN_KEY_FILE": "refused in the cloud; the key is a Secret Manager one",
    "CARTCAST_SECRET_MANAGER_ENDPOINT": "points the key's client at a test's stub",
}
# What the cloud requires of every function, whatever its code reads
# (settings._check_consistency with CARTCAST_ENV=cloud).
CLOUD_VALUES = {"CARTCAST_ENV": "cloud", "CARTCAST_PUBSUB": "google"}
CLOUD_REQUIRED = {"GOOGLE_CLOUD_PROJECT"}
# Settings fields the runtime and settings modules touch for every field; the
# fields a function reads are found in the modules its entry point reaches.
SHARED_MODULES = {"settings", "runtime"}


def tool_or_skip(path: str | Path | None, what: str) -> str:
    """Return the tool's path; skip without it, but fail under CI."""
    if path is not None and Path(path).exists():
        return str(path)
    message = f"{what} is not installed"
    if IN_CI:
        pytest.fail(f"{message}, and CI must run this check")
    pytest.skip(message)


def offline_env() -> dict[str, str]:
    """The environment for Terraform and checkov: no version checks, no uploads."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("GOOGLE_", "CLOUDSDK_", "TF_VAR_", "BC_API_KEY", "PRISMA_")
        )
    }
    env.update(
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        BC_SKIP_MAPPING="TRUE",
        CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",
    )
    return env


def isolated(command: list[str]) -> list[str]:
    """Run a command in a network namespace with loopback only, when one can be made.

    CI runs the whole suite in such a namespace already; elsewhere `unshare -n`
    needs root, `unshare -rn` user namespaces.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return command
    for flags in (["-n"], ["-rn"]):
        probe = subprocess.run(
            [unshare, *flags, "true"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return [unshare, *flags, "--", *command]
    return command


# ---------------------------------------------------------------------------
# Reading terraform/ and the code


@dataclasses.dataclass
class Tree:
    resources: dict[tuple[str, str], dict[str, Any]]
    data: dict[tuple[str, str], dict[str, Any]]
    variables: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    locals: dict[str, Any]

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        return self.resources[(kind, name)]


@functools.cache
def terraform_tree() -> Tree:
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True
    )
    tree = Tree({}, {}, {}, {}, {})
    for path in sorted(TERRAFORM.glob("*.tf")):
        parsed = hcl2.loads(path.read_text(), serialization_options=options)
        for block in parsed.get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    tree.resources[(kind, name)] = body
        for block in parsed.get("data", []):
            for kind, named in block.items():
                for name, body in named.items():
                    tree.data[(kind, name)] = body
        for block in parsed.get("variable", []):
            tree.variables.update(block)
        for block in parsed.get("output", []):
            tree.outputs.update(block)
        for block in parsed.get("locals", []):
            tree.locals.update(block)
    return tree


def literal(value: Any) -> Any:
    """A quoted string as python-hcl2 leaves it inside lists: '"x"' -> 'x'."""
    if isinstance(value, str) and len(value) > 1 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def entry_points() -> dict[str, str]:
    """Map each function of functions/main.py to its trigger: http or cloud_event."""
    tree = ast.parse(MAIN.read_text())
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Attribute) and decorator.attr in (
                "http",
                "cloud_event",
            ):
                found[node.name] = decorator.attr
    return found


def settings_env_names() -> dict[str, list[str]]:
    """Map each Settings field to the environment variables settings.load reads
    for it, from the source of load()."""
    tree = ast.parse((PACKAGE / "settings.py").read_text())
    load = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "load"
    )
    assigned: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for node in ast.walk(load):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            assigned[node.targets[0].id] = env_constants(node.value)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Settings":
            for keyword in node.keywords:
                value = keyword.value
                found = env_constants(value)
                if isinstance(value, ast.Name):
                    found = assigned.get(value.id, [])
                names[keyword.arg] = found[:1]
    # The price table is read in a loop, one variable per call class.
    names["x_prices_usd"] = [
        f"CARTCAST_X_PRICE_{price_class.upper()}_USD"
        for price_class in settings.X_PRICES_USD
    ]
    return names


def env_constants(node: ast.AST) -> list[str]:
    return [
        constant.value
        for constant in ast.walk(node)
        if isinstance(constant, ast.Constant)
        and isinstance(constant.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9_]+", constant.value)
    ]


def cartcast_imports(tree: ast.AST) -> set[str]:
    """Name the cartcast modules a piece of code imports, at any depth."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "cartcast":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("cartcast."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("cartcast."):
                    found.add(alias.name.split(".")[1])
    return {name for name in found if (PACKAGE / f"{name}.py").exists()}


# Entry points that run one function of a module they import, traced from that
# function instead of through the whole module. generate_caption imports the api
# module for its caption handler alone: the module's other routes (the console,
# the X OAuth flow, the operator's pause) never run in that function, and taking
# the whole module would hand it their secrets and settings.
ENTRY_DELEGATES = {"generate_caption": ("api", "handle_caption_request")}


def code_reached(function: str) -> list[ast.AST]:
    """The code the entry point can run: every cartcast module it can import
    (main.py's own imports, those of the helpers it calls, and theirs in turn),
    less the settings and runtime modules; for a delegating entry point
    (ENTRY_DELEGATES), its module is followed call by call instead."""
    tree = ast.parse(MAIN.read_text())
    defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    module_level = ast.Module(
        body=[node for node in tree.body if not isinstance(node, ast.FunctionDef)],
        type_ignores=[],
    )
    called, pending = set(), [function]
    while pending:
        name = pending.pop()
        if name in called:
            continue
        called.add(name)
        pending += [
            node.id
            for node in ast.walk(defs[name])
            if isinstance(node, ast.Name) and node.id in defs
        ]
    modules = cartcast_imports(module_level)
    for name in called:
        modules |= cartcast_imports(defs[name])
    traced: list[ast.AST] = []
    if function in ENTRY_DELEGATES:
        module, start = ENTRY_DELEGATES[function]
        assert module in modules, f"{function} no longer imports {module}"
        modules.discard(module)
        traced = calls_reached(module, start)
    pending = list(modules)
    while pending:
        module = pending.pop()
        for imported in cartcast_imports(parsed_module(module)) - modules:
            modules.add(imported)
            pending.append(imported)
    whole = [parsed_module(module) for module in sorted(modules - SHARED_MODULES)]
    return whole + traced


@functools.cache
def parsed_module(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text())


def calls_reached(module: str, start: str) -> list[ast.AST]:
    """Follow calls from one function of a cartcast module: the functions and
    classes it names in its own module, `other.name` of a cartcast module it
    imported and names imported from one, and so on; with the top-level
    statements (constants, imports) of every module the calls pass through.

    Calls on objects (runtime.gemini(), a returned client's methods) are not
    followed: Runtime's members are read through runtime_accessors, and the
    modules behind them (db, x, gemini, ...) are imported by main.py's runtime.
    """
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    reached: dict[tuple[str, str], ast.AST] = {}
    touched: set[str] = set()
    pending = [(module, start)]
    while pending:
        where, name = pending.pop()
        tree = parsed_module(where)
        defs = {node.name: node for node in tree.body if isinstance(node, kinds)}
        touched.add(where)
        if (where, name) in reached or name not in defs:
            continue
        node = reached[(where, name)] = defs[name]
        bound = imported_names(tree) | imported_names(node)
        for used in ast.walk(node):
            if isinstance(used, ast.Name) and used.id in defs:
                pending.append((where, used.id))
            elif isinstance(used, ast.Name) and used.id in bound:
                pending.append(bound[used.id])
            elif (
                isinstance(used, ast.Attribute)
                and isinstance(used.value, ast.Name)
                and bound.get(used.value.id, ("", ""))[1] == ""
                and used.value.id in bound
            ):
                pending.append((bound[used.value.id][0], used.attr))
        touched |= {target for target, _ in bound.values()}
    statements = [
        ast.Module(
            body=[
                node for node in parsed_module(name).body if not isinstance(node, kinds)
            ],
            type_ignores=[],
        )
        for name in sorted(touched - SHARED_MODULES)
    ]
    return statements + list(reached.values())


def imported_names(tree: ast.AST) -> dict[str, tuple[str, str]]:
    """Map each name a piece of code binds by importing from cartcast to
    (module, name): ("posts", "") for a module, ("db", "Transaction") for a name."""
    bound = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        for alias in node.names:
            local = alias.asname or alias.name
            if node.module == "cartcast" and (PACKAGE / f"{alias.name}.py").exists():
                bound[local] = (alias.name, "")
            elif node.module.startswith("cartcast."):
                bound[local] = (node.module.split(".")[1], alias.name)
    return bound


def runtime_accessors(fields: set[str]) -> dict[str, set[str]]:
    """Map each member of runtime.Runtime to the settings fields it reads,
    through the members it uses in turn (gemini_classifier uses gemini)."""
    tree = ast.parse((PACKAGE / "runtime.py").read_text())
    runtime_class = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "Runtime"
    )
    members = {
        node.name: node
        for node in runtime_class.body
        if isinstance(node, ast.FunctionDef)
    }
    direct = {
        name: {a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute)}
        for name, node in members.items()
    }
    reads = {}
    for name in members:
        seen, pending, found = set(), [name], set()
        while pending:
            member = pending.pop()
            if member in seen:
                continue
            seen.add(member)
            found |= direct[member] & fields
            pending += [m for m in direct[member] if m in members]
        reads[name] = found
    return reads


@functools.cache
def fields_read_by(function: str) -> frozenset[str]:
    """The Settings fields the entry point's code reads."""
    fields = {field.name for field in dataclasses.fields(settings.Settings)}
    accessors = runtime_accessors(fields)
    read = set(accessors["__init__"])
    for source in code_reached(function):
        attributes = {a.attr for a in ast.walk(source) if isinstance(a, ast.Attribute)}
        read |= attributes & fields
        for member, member_reads in accessors.items():
            if member in attributes:
                read |= member_reads
    return frozenset(read)


def env_read_by(function: str) -> set[str]:
    names = settings_env_names()
    return {env for field in fields_read_by(function) for env in names[field]}


def env_without_default() -> set[str]:
    """The variables whose Settings field has no default (None)."""
    names = settings_env_names()
    return {
        env
        for field in dataclasses.fields(settings.Settings)
        if field.default is None
        for env in names[field.name]
    }


def wired_env(function: str) -> set[str]:
    """The variables Terraform sets on one function: the common set, its own
    database user, its own wiring and its secrets."""
    tree = terraform_tree()
    function_resource = tree.resource("google_cloudfunctions2_function", "function")
    service = function_resource["service_config"][0]
    expression = service["environment_variables"]
    assert "local.common_env" in expression
    assert "local.function_env[each.key]" in expression
    assert "DB_USER = google_sql_user.function[each.key].name" in expression
    wired = set(tree.locals["common_env"]) | {"DB_USER"}
    wired |= set(tree.locals["function_env"][function])
    wired |= {literal(env) for env in tree.locals["function_secrets"][function]}
    return wired


def secret_env(function: str) -> set[str]:
    return {
        literal(env) for env in terraform_tree().locals["function_secrets"][function]
    }


# ---------------------------------------------------------------------------
# Formatting, and the variables' validation blocks


def test_terraform_files_are_formatted() -> None:
    terraform = tool_or_skip(shutil.which("terraform"), "terraform")

    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "terraform", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=offline_env(),
        check=False,
    )

    assert result.returncode == 0, f"run terraform fmt -recursive:\n{result.stdout}"


def test_variable_validations_refuse_bad_values(tmp_path: Path) -> None:
    # variables.tf alone is a module without providers: `terraform init` needs no
    # registry, and each run of the test file plans with one bad value.
    terraform = tool_or_skip(shutil.which("terraform"), "terraform")
    shutil.copy(TERRAFORM / "variables.tf", tmp_path / "variables.tf")
    (tmp_path / "tests").mkdir()
    shutil.copy(
        REPO / "tests" / "terraform" / "variables.tftest.hcl",
        tmp_path / "tests" / "variables.tftest.hcl",
    )

    outcomes = []
    for command in (["init", "-input=false", "-backend=false"], ["test"]):
        outcomes.append(
            subprocess.run(
                isolated([terraform, f"-chdir={tmp_path}", *command, "-no-color"]),
                capture_output=True,
                text=True,
                env=offline_env(),
                check=False,
            )
        )

    for result in outcomes:
        assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Success! (\d+) passed, 0 failed", outcomes[1].stdout)


def test_the_region_says_it_must_be_one_cloud_scheduler_runs_in() -> None:
    # One region for the functions, Cloud SQL and the Scheduler jobs; Scheduler
    # is offered in a subset of regions, so the choice is Scheduler's to narrow.
    description = terraform_tree().variables["region"]["description"]

    assert "https://cloud.google.com/scheduler/docs/locations" in description


def test_every_variable_is_typed_and_described_and_every_output_described() -> None:
    tree = terraform_tree()

    untyped = [name for name, body in tree.variables.items() if "type" not in body]
    undescribed = [
        name
        for name, body in {**tree.variables, **tree.outputs}.items()
        if not str(body.get("description", "")).strip()
    ]

    assert untyped == []
    assert undescribed == []


def test_enums_regions_schedules_and_time_zones_have_validations() -> None:
    tree = terraform_tree()
    validated = {name for name, body in tree.variables.items() if "validation" in body}

    assert {
        "project_id",
        "region",
        "time_zone",
        "schedules",
        "log_level",
        "database_version",
        "database_availability",
        "functions",
        "settings",
    } <= validated


def test_the_cron_step_check_names_the_schedules_its_condition_refuses() -> None:
    # Terraform cannot share one expression between a validation's condition and
    # its message (a local read there is a cycle), so the step rule is written in
    # both; the two must stay alike, or the message names the wrong schedules.
    blocks = (TERRAFORM / "variables.tf").read_text().split("  validation {")
    [steps] = [block for block in blocks if "A cron step" in block]

    condition, message = re.findall(r"if anytrue\(\[.*?\n      \]\)", steps, re.DOTALL)

    assert "regexall" in condition
    assert condition == message


# ---------------------------------------------------------------------------
# Argument names against the providers' documentation
#
# `terraform validate` would catch a misspelt argument (`timezone` for `time_zone`)
# but needs the providers, which these machines do not have. The names each
# provider documents for the types terraform/ uses are kept in
# tests/terraform/provider_arguments.json (README, "What is checked offline"):
# every attribute and block name in terraform/ must be one of them, or one of
# Terraform's meta-arguments. Names only; types and values are not checked.

PROVIDER_ARGUMENTS = REPO / "tests" / "terraform" / "provider_arguments.json"
META_ARGUMENTS = {
    "resource": {"count", "for_each", "depends_on", "provider", "lifecycle"},
    "data": {"count", "for_each", "depends_on", "provider", "lifecycle"},
}
LIFECYCLE_ARGUMENTS = {
    "create_before_destroy",
    "prevent_destroy",
    "ignore_changes",
    "replace_triggered_by",
    "precondition",
    "postcondition",
}
DYNAMIC_ARGUMENTS = {"for_each", "iterator", "labels", "content"}
IS_BLOCK = "__is_block__"


@functools.cache
def provider_arguments() -> dict[str, dict[str, Any]]:
    """The documented names, keyed "resource" and "data", then by type."""
    documented = json.loads(PROVIDER_ARGUMENTS.read_text())
    return {"resource": documented["resources"], "data": documented["data_sources"]}


def parse_blocks(text: str) -> dict[str, Any]:
    """Parse HCL marking blocks, so `labels = {...}` is not taken for a block."""
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(
        with_comments=False, explicit_blocks=True, strip_string_quotes=True
    )
    return hcl2.loads(text, serialization_options=options)


def configured_types(parsed: dict[str, Any]) -> list[tuple[str, str, str, dict]]:
    """(resource or data, type, name, body) of every block in one parsed file."""
    found = []
    for kind in ("resource", "data"):
        for block in parsed.get(kind, []):
            for type_name, named in block.items():
                found.extend(
                    (kind, type_name, name, body) for name, body in named.items()
                )
    return found


def where_documented(kind: str, type_name: str) -> str:
    """The provider page that documents a type, for the message asking to add it."""
    provider, _, rest = type_name.partition("_")
    if provider in ("time", "archive"):
        folder = "resources" if kind == "resource" else "data-sources"
        return f"hashicorp/terraform-provider-{provider} docs/{folder}/{rest}.md"
    page = re.sub(r"_iam_(member|binding|policy)$", "_iam", rest)
    folder = "r" if kind == "resource" else "d"
    return (
        f"hashicorp/terraform-provider-{provider} website/docs/{folder}/{page}"
        ".html.markdown (some pages keep the google_ prefix)"
    )


def undocumented_names(
    body: dict[str, Any], documented: dict[str, Any], kind: str
) -> list[str]:
    """Every name in a resource or data block that its documentation lacks."""
    meta = META_ARGUMENTS[kind]
    found = []
    for key, value in body.items():
        if key == "lifecycle" and key in meta:
            for lifecycle in value:
                found += [
                    f"lifecycle.{name}"
                    for name in lifecycle
                    if name not in LIFECYCLE_ARGUMENTS | {IS_BLOCK}
                ]
        elif key not in meta:
            found += _names_outside(
                {key: value}, documented["arguments"], documented["blocks"], ""
            )
    return found


def _names_outside(
    body: dict[str, Any], allowed: list[str], blocks: dict[str, list[str]], path: str
) -> list[str]:
    found = []
    for key, value in body.items():
        if key == IS_BLOCK:
            continue
        if key == "dynamic":
            found += _dynamic_names_outside(value, allowed, blocks, path)
            continue
        where = f"{path}.{key}" if path else key
        if key not in allowed:
            found.append(where)
        elif isinstance(value, list) and all(
            isinstance(item, dict) and item.get(IS_BLOCK) for item in value
        ):
            if where not in blocks:
                found.append(f"{where} (a block whose names the file does not list)")
                continue
            for nested in value:
                found += _names_outside(nested, blocks[where], blocks, where)
    return found


def _dynamic_names_outside(
    dynamics: list[dict[str, Any]],
    allowed: list[str],
    blocks: dict[str, list[str]],
    path: str,
) -> list[str]:
    # dynamic "name" { for_each = ..., content { ... } } generates `name` blocks:
    # the label must be a documented block and the content must hold its names.
    found = []
    for dynamic in dynamics:
        for label, generator in dynamic.items():
            where = f"{path}.{label}" if path else label
            found += [
                f"dynamic {where}: {name}"
                for name in generator
                if name not in DYNAMIC_ARGUMENTS | {IS_BLOCK}
            ]
            content = {label: generator.get("content", [])}
            found += _names_outside(content, allowed, blocks, path)
    return found


def name_problems(parsed_files: dict[str, dict[str, Any]]) -> list[str]:
    """Undocumented types and names across parsed files, one line each."""
    problems = []
    for file_name, parsed in parsed_files.items():
        for kind, type_name, name, body in configured_types(parsed):
            documented = provider_arguments()[kind].get(type_name)
            if documented is None:
                problems.append(
                    f"{file_name}: {kind} type {type_name} is not in "
                    f"{PROVIDER_ARGUMENTS.relative_to(REPO)}; add its argument and "
                    f"block names from {where_documented(kind, type_name)}"
                )
                continue
            problems += [
                f"{file_name}: {kind} {type_name}.{name}: {undocumented} is not an "
                f"argument the provider documents ({documented['source']})"
                for undocumented in undocumented_names(body, documented, kind)
            ]
    return problems


@functools.cache
def terraform_files_parsed() -> dict[str, dict[str, Any]]:
    return {
        path.name: parse_blocks(path.read_text())
        for path in sorted(TERRAFORM.glob("*.tf"))
    }


def test_every_argument_and_block_name_is_one_its_provider_documents() -> None:
    problems = name_problems(terraform_files_parsed())

    assert not problems, "\n".join(problems)


def test_a_misspelt_argument_or_block_or_an_unknown_type_is_caught() -> None:
    # The two typos of the issue, a misspelt block inside a nested block, a
    # dynamic block under a wrong name, and a type the file does not hold.
    scheduler = (TERRAFORM / "scheduler.tf").read_text()
    pubsub = (TERRAFORM / "pubsub.tf").read_text()
    functions = (TERRAFORM / "functions.tf").read_text()
    typos = {
        "scheduler.tf": scheduler.replace("time_zone   =", "timezone ="),
        "pubsub.tf": pubsub.replace(
            "ack_deadline_seconds       = min(", "ack_deadline = min("
        ).replace("retry_policy {", "retry_polcy {"),
        "functions.tf": functions.replace(
            'dynamic "secret_environment_variables"', 'dynamic "secret_env_variables"'
        ).replace("storage_source {", "storage_sources {"),
        "extra.tf": 'resource "google_compute_network" "vpc" {\n  name = "x"\n}\n',
    }

    problems = name_problems({name: parse_blocks(text) for name, text in typos.items()})

    expected = [
        "scheduler.tf: resource google_cloud_scheduler_job.tick: timezone ",
        "pubsub.tf: resource google_pubsub_subscription.push: ack_deadline ",
        "pubsub.tf: resource google_pubsub_subscription.push: retry_polcy ",
        "functions.tf: resource google_cloudfunctions2_function.function: "
        "build_config.source.storage_sources ",
        "functions.tf: resource google_cloudfunctions2_function.function: "
        "service_config.secret_env_variables ",
        "extra.tf: resource type google_compute_network is not in",
    ]
    missed = [
        start
        for start in expected
        if not any(line.startswith(start) for line in problems)
    ]
    assert missed == [], "\n".join(problems)
    assert len(problems) == len(expected), "\n".join(problems)
    assert "website/docs/r/compute_network.html.markdown" in problems[-1]


def test_the_documented_names_say_where_they_were_read_and_are_all_used() -> None:
    used = {
        (kind, type_name)
        for parsed in terraform_files_parsed().values()
        for kind, type_name, _, _ in configured_types(parsed)
    }
    listed = {
        (kind, type_name)
        for kind, types in provider_arguments().items()
        for type_name in types
    }

    unsourced = [
        type_name
        for types in provider_arguments().values()
        for type_name, entry in types.items()
        if not entry["source"].startswith("hashicorp/terraform-provider-")
        or not entry["arguments"]
    ]
    assert unsourced == []
    assert listed - used == set(), "types terraform/ no longer uses: remove them"


def test_the_readme_counts_the_types_whose_names_are_checked() -> None:
    listed = sum(len(types) for types in provider_arguments().values())
    readme = (REPO / "README.md").read_text()

    said = re.search(
        r"for each of the (\d+) resource and data\s+source\s+types", readme
    )

    assert said, "README no longer says how many types the names are checked for"
    assert int(said.group(1)) == listed


# ---------------------------------------------------------------------------
# The functions against functions/main.py


def test_every_entry_point_has_a_function_resource() -> None:
    tree = terraform_tree()
    function = tree.resource("google_cloudfunctions2_function", "function")

    assert set(tree.locals["functions"]) == set(entry_points())
    assert function["for_each"] == "${local.functions}"
    assert function["build_config"][0]["entry_point"] == "${each.key}"
    assert function["build_config"][0]["runtime"] == "python311"
    sizes = tree.variables["functions"]["default"]
    assert set(sizes) == set(entry_points())


def test_the_api_outlasts_a_big_brands_export() -> None:
    # GET /v1/brand/export streams for as long as the brand is big: the bench's
    # brand of 400,000 snapshots took 67 s on a loaded machine (README), and a
    # request past the timeout is cut, leaving an archive without its manifest.
    sizes = terraform_tree().variables["functions"]["default"]

    assert sizes["api"]["timeout_s"] >= 900


def test_functions_are_built_from_one_archive_named_by_its_content() -> None:
    tree = terraform_tree()
    source = tree.resource("google_cloudfunctions2_function", "function")[
        "build_config"
    ][0]["source"][0]["storage_source"][0]
    archive = tree.resource("google_storage_bucket_object", "functions")

    assert source["object"] == "${google_storage_bucket_object.functions.name}"
    assert "${data.archive_file.functions.output_sha256}" in archive["name"]
    # The archive is of the staged tree, bytecode included (decision 0028), and
    # its plan stops unless the staged sources are functions/'s.
    functions = tree.data[("archive_file", "functions")]
    assert functions["source_dir"] == "${local.functions_staged}"
    assert tree.locals["functions_staged"].endswith("/.build/functions")
    assert tree.locals["functions_source"].endswith("/../functions")
    assert "excludes" not in functions
    condition = functions["lifecycle"][0]["precondition"][0]["condition"]
    assert "local.functions_source_digest" in condition
    assert ".sources.sha256" in condition


def test_builds_push_to_a_repository_of_our_own_that_alone_the_build_may_write() -> (
    None
):
    # IAM conditions on resource.name work only for the services Google lists
    # (cloud.google.com/iam/docs/conditions-resource-attributes), and Artifact
    # Registry is not among them: a project-wide writer conditioned on the
    # gcf-artifacts name would match nothing, and no build could push. The
    # repository is ours instead, and the grant is on it.
    tree = terraform_tree()
    build = tree.resource("google_cloudfunctions2_function", "function")[
        "build_config"
    ][0]
    repository = tree.resource("google_artifact_registry_repository", "functions")
    writer = tree.resource(
        "google_artifact_registry_repository_iam_member", "build_pushes_images"
    )

    # projects/{project}/locations/{location}/repositories/{repository}, as the
    # Cloud Functions API takes it, is the resource's id.
    assert build["docker_repository"] == (
        "${google_artifact_registry_repository.functions.id}"
    )
    assert repository["format"] == "DOCKER"
    assert repository["location"] == "${var.region}"
    assert (writer["role"], writer["member"]) == (
        "roles/artifactregistry.writer",
        "${google_service_account.build.member}",
    )
    assert (
        writer["repository"] == "${google_artifact_registry_repository.functions.name}"
    )
    assert (
        writer["location"]
        == "${google_artifact_registry_repository.functions.location}"
    )
    project_wide = [
        name
        for (kind, name), body in tree.resources.items()
        if kind == "google_project_iam_member"
        and str(body.get("role", "")).startswith("roles/artifactregistry.")
    ]
    assert project_wide == []


def test_http_functions_are_clients_and_event_functions_are_not() -> None:
    tree = terraform_tree()

    clients = {
        name
        for name, attributes in tree.locals["functions"].items()
        if attributes["clients"] is True
    }

    assert clients == {
        name for name, trigger in entry_points().items() if trigger == "http"
    }


def test_each_function_and_push_identity_has_its_own_service_account() -> None:
    tree = terraform_tree()
    function = tree.resource("google_cloudfunctions2_function", "function")
    shorts = [attributes["short"] for attributes in tree.locals["functions"].values()]

    assert (
        function["service_config"][0]["service_account_email"]
        == "${google_service_account.function[each.key].email}"
    )
    assert len(set(shorts)) == len(shorts)
    # name_prefix is at most 12 characters; "-push-" and the longest short name
    # must keep a service account ID within 30.
    assert max(len(short) for short in shorts) + 12 + len("-push-") <= 30


# ---------------------------------------------------------------------------
# Settings: every variable a function's code reads is set on it


def test_settings_names_are_derived_from_settings_py() -> None:
    names = settings_env_names()

    # Every field is read from at least one variable, and the table is complete.
    assert all(names[field.name] for field in dataclasses.fields(settings.Settings))
    assert "CARTCAST_ENV" in names["environment"]
    assert "CARTCAST_X_PRICE_POST_WITH_URL_USD" in names["x_prices_usd"]


def test_every_setting_without_default_that_a_function_reads_is_set_on_it() -> None:
    missing = {}
    for function in entry_points():
        needed = (env_read_by(function) & env_without_default()) - set(LOCAL_ONLY)
        needed |= set(CLOUD_VALUES) | CLOUD_REQUIRED
        unset = needed - wired_env(function)
        if unset:
            missing[function] = sorted(unset)

    assert missing == {}


def test_the_cloud_values_are_set_on_every_function() -> None:
    common = terraform_tree().locals["common_env"]

    for name, value in CLOUD_VALUES.items():
        assert common[name] == value
    assert common["GOOGLE_CLOUD_PROJECT"] == "${var.project_id}"
    assert common["CLOUD_SQL_INSTANCE"] == (
        "${google_sql_database_instance.main.connection_name}"
    )


def test_no_function_gets_a_setting_its_code_does_not_read() -> None:
    extra = {}
    for function in entry_points():
        read = env_read_by(function) | set(CLOUD_VALUES) | CLOUD_REQUIRED
        # DB_NAME and DB_IAM_AUTH are read through the database connection.
        unread = wired_env(function) - read - {"DB_NAME", "DB_IAM_AUTH", "LOG_LEVEL"}
        if unread:
            extra[function] = sorted(unread)

    assert extra == {}


def test_secrets_reach_only_the_functions_whose_code_reads_them() -> None:
    tree = terraform_tree()

    for function in entry_points():
        secrets = secret_env(function)
        read = env_read_by(function)
        assert secrets <= read, function
        assert secrets <= set(tree.locals["secrets"])
        # A secret the code reads is never in plain environment variables.
        assert not secrets & set(tree.locals["function_env"][function])


def test_the_token_key_reaches_only_the_functions_whose_code_opens_tokens() -> None:
    holders = {literal(name) for name in terraform_tree().locals["x_token_functions"]}

    readers = {
        f for f in entry_points() if "CARTCAST_TOKEN_KEY_SECRET" in env_read_by(f)
    }

    assert holders == readers


def test_the_caption_function_is_traced_from_its_handler_alone() -> None:
    # generate_caption loads the api module, but runs its caption handler only:
    # the console's secret, the X app's client and the Scheduler jobs stay out.
    read = env_read_by("generate_caption")

    assert {"CARTCAST_OPERATOR_KEY", "GEMINI_API_KEY"} <= read
    assert {"CARTCAST_NEAR_DUPLICATE_THRESHOLD", "DB_USER"} <= read
    assert not read & {
        "CARTCAST_CONSOLE_SECRET",
        "CARTCAST_X_CLIENT_ID",
        "CARTCAST_X_CLIENT_SECRET",
        "CARTCAST_TOKEN_KEY_SECRET",
        "CARTCAST_SCHEDULER_JOB",
    }
    # The api function, which routes everything, still reads them all.
    assert "CARTCAST_CONSOLE_SECRET" in env_read_by("api")
    assert "CARTCAST_X_CLIENT_SECRET" in env_read_by("api")


def test_local_only_settings_are_never_set_in_the_cloud() -> None:
    refused = variable_validation_text("settings")

    for function in entry_points():
        assert not wired_env(function) & set(LOCAL_ONLY)
    for name in LOCAL_ONLY:
        assert f'"{name}"' in refused or name in refused, name


def test_tuning_settings_refuse_what_terraform_wires_and_the_secrets() -> None:
    refused = variable_validation_text("settings")
    tree = terraform_tree()
    wired = set(tree.locals["common_env"]) | {"DB_USER"} | set(tree.locals["secrets"])
    for env in tree.locals["function_env"].values():
        wired |= set(env)

    assert [name for name in sorted(wired) if name not in refused] == []


def variable_validation_text(name: str) -> str:
    validations = terraform_tree().variables[name]["validation"]
    return json.dumps(validations)


# ---------------------------------------------------------------------------
# Topics, subscriptions and Scheduler jobs


def published_topic_settings() -> set[str]:
    """The settings fields that name a topic the code publishes to:
    `publisher.publish(runtime.settings.<field>, ...)` anywhere in the package."""
    found = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "publish"
                and node.args
                and isinstance(node.args[0], ast.Attribute)
            ):
                found.add(node.args[0].attr)
    return found


def test_every_topic_the_code_publishes_to_exists() -> None:
    tree = terraform_tree()
    names = settings_env_names()
    topic_fields = published_topic_settings()

    assert topic_fields == {"mentions_topic"}
    for field in topic_fields:
        env = names[field][0]
        publishers = [f for f in entry_points() if field in fields_read_by(f)]
        for function in publishers:
            wired = tree.locals["function_env"][function][env]
            match = re.fullmatch(
                r"\$\{google_pubsub_topic\.topic\[\"(\w+)\"\]\.name\}", wired
            )
            assert match, (function, env, wired)
            topic_key = match.group(1)
            assert topic_key in tree.locals["topics"]
            # The default prefix gives the topic the name the code defaults to.
            default_name = tree.locals["topics"][topic_key].replace(
                "${var.name_prefix}", tree.variables["name_prefix"]["default"]
            )
            field_default = next(
                f.default
                for f in dataclasses.fields(settings.Settings)
                if f.name == field
            )
            assert default_name == field_default


def test_only_poll_mentions_may_publish_mentions() -> None:
    tree = terraform_tree()
    grant = tree.resource("google_pubsub_topic_iam_member", "poll_publishes_mentions")
    publishers = [f for f in entry_points() if "mentions_topic" in fields_read_by(f)]

    assert publishers == ["poll_mentions"]
    assert grant["topic"] == '${google_pubsub_topic.topic["mentions"].id}'
    assert grant["member"] == (
        '${google_service_account.function["poll_mentions"].member}'
    )


def test_every_scheduler_job_targets_an_existing_topic_a_function_receives() -> None:
    tree = terraform_tree()
    job = tree.resource("google_cloud_scheduler_job", "tick")
    subscriptions = tree.locals["subscriptions"]

    assert job["for_each"] == "${local.scheduler_jobs}"
    target = job["pubsub_target"][0]
    assert target["topic_name"] == "${google_pubsub_topic.topic[each.value.topic].id}"
    for name, scheduled in tree.locals["scheduler_jobs"].items():
        assert scheduled["topic"] in tree.locals["topics"], name
        receivers = [
            s["function"]
            for s in subscriptions.values()
            if s["topic"] == scheduled["topic"]
        ]
        assert len(receivers) == 1, name
        assert entry_points()[receivers[0]] == "cloud_event"


def test_scheduler_jobs_match_what_the_local_stand_ins_send() -> None:
    from infra import local_cloud

    tree = terraform_tree()
    jobs = tree.locals["scheduler_jobs"]
    topics = {
        key: name.replace("${var.name_prefix}", "cartcast")
        for key, name in tree.locals["topics"].items()
    }
    receiver = {
        s["topic"]: s["function"] for s in tree.locals["subscriptions"].values()
    }

    # Ticks go to topic cartcast-<function>; the sweep's to its own, with its payload.
    for key, job in jobs.items():
        if key == "sweep":
            assert topics[job["topic"]] == local_cloud.SWEEP_TOPIC
            assert job["payload"] == local_cloud.SWEEP_PAYLOAD
        else:
            assert topics[job["topic"]] == f"cartcast-{receiver[job['topic']]}"
    assert topics["mentions"] == local_cloud.MENTIONS_TOPIC
    # Every scheduled function has a job, and the publish function two.
    scheduled = sorted(receiver[job["topic"]] for job in jobs.values())
    assert scheduled == sorted(
        [
            "publish_due_posts",
            "publish_due_posts",
            "poll_mentions",
            "rollup_kpis",
            "drain_caption_jobs",
        ]
    )


def test_the_pause_names_the_publish_and_sweep_jobs() -> None:
    env = terraform_tree().locals["function_env"]["api"]

    assert env["CARTCAST_SCHEDULER_JOB"] == (
        '${google_cloud_scheduler_job.tick["publish"].id}'
    )
    assert env["CARTCAST_SWEEP_SCHEDULER_JOB"] == (
        '${google_cloud_scheduler_job.tick["sweep"].id}'
    )


def test_the_mention_poll_lease_is_poll_mentions_own_timeout() -> None:
    # A poll holds its brand for the lease so that no overlapping run reads it;
    # a timeout raised past a retyped lease would let two runs read and pay.
    env = terraform_tree().locals["function_env"]["poll_mentions"]

    assert env["CARTCAST_MENTION_POLL_LEASE_S"] == (
        '${tostring(var.functions["poll_mentions"].timeout_s)}'
    )


@pytest.mark.parametrize("function", ["poll_mentions", "rollup_kpis"])
def test_the_tick_claims_read_each_claiming_function_s_own_timeout(
    function: str,
) -> None:
    # A claim whose run holds its lock is taken over only past this: retyped, a
    # timeout raised past it would let a retry run beside a live run.
    env = terraform_tree().locals["function_env"][function]

    assert env["CARTCAST_FUNCTION_TIMEOUT_S"] == (
        f'${{tostring(var.functions["{function}"].timeout_s)}}'
    )


@pytest.mark.parametrize(
    "function", ["publish_due_posts", "poll_mentions", "score_sentiment"]
)
def test_the_webhook_budget_is_a_quarter_of_each_delivering_function_s_timeout(
    function: str,
) -> None:
    # A run starts webhook POSTs for the budget and may end one webhook timeout
    # past it; a timeout lowered below a retyped budget would cut runs mid-POST.
    env = terraform_tree().locals["function_env"][function]

    assert env["CARTCAST_WEBHOOK_BUDGET_S"] == (
        f'${{tostring(floor(var.functions["{function}"].timeout_s / 4))}}'
    )


def test_the_caption_drain_budget_leaves_two_gemini_calls_inside_the_timeout() -> None:
    # A chunk started at the budget's end lasts at most two Gemini calls and a
    # pause (caption_drain.py); retyped, a timeout lowered below the budget would
    # cut a chunk mid-write. The defaults give the budget settings.py has.
    env = terraform_tree().locals["function_env"]["drain_caption_jobs"]
    timeout_s = terraform_tree().variables["functions"]["default"][
        "drain_caption_jobs"
    ]["timeout_s"]
    defaults = settings.Settings(database_url="unused")

    assert env["CARTCAST_CAPTION_DRAIN_BUDGET_S"] == (
        '${tostring(var.functions["drain_caption_jobs"].timeout_s'
        " - 2 * local.gemini_timeout_s - local.caption_chunk_margin_s)}"
    )
    assert terraform_tree().locals["gemini_timeout_s"] == (
        '${try(tonumber(var.settings["GEMINI_TIMEOUT_S"]), '
        f"{defaults.gemini_timeout_s:g})}}"
    )
    margin_s = terraform_tree().locals["caption_chunk_margin_s"]
    assert timeout_s - 2 * defaults.gemini_timeout_s - margin_s == (
        defaults.caption_drain_budget_s
    )


def test_every_event_function_receives_through_a_cartcast_push_subscription() -> None:
    tree = terraform_tree()
    subscribed = {s["function"] for s in tree.locals["subscriptions"].values()}

    events_only = {
        name for name, trigger in entry_points().items() if trigger == "cloud_event"
    }
    assert subscribed == events_only
    # No Eventarc trigger: its subscription could not carry a dead-letter topic.
    function = tree.resource("google_cloudfunctions2_function", "function")
    assert "event_trigger" not in function


def test_push_subscriptions_have_oidc_retry_policy_and_dead_letter_topic() -> None:
    tree = terraform_tree()
    push = tree.resource("google_pubsub_subscription", "push")

    assert push["for_each"] == "${local.subscriptions}"
    oidc = push["push_config"][0]["oidc_token"][0]
    assert oidc["service_account_email"] == (
        "${google_service_account.push[each.value.function].email}"
    )
    assert "service_config[0].uri" in oidc["audience"]
    assert push["retry_policy"][0]["minimum_backoff"]
    assert push["retry_policy"][0]["maximum_backoff"]
    dead_letter = push["dead_letter_policy"][0]
    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert dead_letter["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    # A dead letter is kept: the dead-letter topic has a subscription.
    kept = tree.resource("google_pubsub_subscription", "dead_letter")
    assert kept["topic"] == "${google_pubsub_topic.dead_letter.id}"


def test_dead_lettering_has_the_pubsub_service_agents_rights() -> None:
    tree = terraform_tree()
    agent = "${local.pubsub_service_agent}"
    publisher = tree.resource(
        "google_pubsub_topic_iam_member", "pubsub_agent_dead_letter_publisher"
    )
    subscriber = tree.resource(
        "google_pubsub_subscription_iam_member", "pubsub_agent_dead_letter_subscriber"
    )

    assert (
        "gcp-sa-pubsub.iam.gserviceaccount.com" in tree.locals["pubsub_service_agent"]
    )
    assert (publisher["role"], publisher["member"]) == ("roles/pubsub.publisher", agent)
    assert publisher["topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert (subscriber["role"], subscriber["member"]) == (
        "roles/pubsub.subscriber",
        agent,
    )
    assert subscriber["for_each"] == "${local.subscriptions}"
    assert subscriber["subscription"] == (
        "${google_pubsub_subscription.push[each.key].id}"
    )


# Google's service agents are created as their service is enabled and used, not
# at once: "If a service agent hasn't been created yet, then you can't grant roles
# to the service agent" (cloud.google.com/iam/docs/create-service-agents). On a new
# project, a grant to Pub/Sub's agent right after the API is enabled may find no
# such account; google_project_service_identity asks for it first.
SERVICE_AGENT_DOMAINS = re.compile(
    r"@(gcp-sa-[a-z-]+\.iam\.gserviceaccount\.com|serverless-robot-prod\."
    r"iam\.gserviceaccount\.com|cloudbuild\.gserviceaccount\.com|gcf-admin-robot\."
    r"iam\.gserviceaccount\.com)"
)


def test_grants_to_the_pubsub_agent_wait_for_it_to_exist() -> None:
    tree = terraform_tree()
    identity = tree.resource("google_project_service_identity", "pubsub")
    to_agent = [
        (kind, name)
        for (kind, name), body in tree.resources.items()
        if body.get("member") == "${local.pubsub_service_agent}"
    ]

    assert identity["provider"] == "google-beta"
    assert identity["service"] == "pubsub.googleapis.com"
    assert identity["project"] == "${var.project_id}"
    assert identity["depends_on"] == ["${google_project_service.api}"]
    assert len(to_agent) == 3
    for kind, name in to_agent:
        assert "${google_project_service_identity.pubsub}" in tree.resource(
            kind, name
        ).get("depends_on", []), name


def test_no_other_service_agent_is_granted_a_role() -> None:
    # Only Pub/Sub's agent is named; another (Cloud Build's, Cloud Run's) would
    # need its own google_project_service_identity first.
    tree = terraform_tree()
    named = {
        value
        for value in [*tree.locals.values(), *tree.resources.values()]
        for value in [json.dumps(value)]
        if SERVICE_AGENT_DOMAINS.search(value)
    }

    assert [SERVICE_AGENT_DOMAINS.search(v).group(1) for v in named] == [
        "gcp-sa-pubsub.iam.gserviceaccount.com"
    ]


def test_the_beta_provider_is_pinned_like_the_google_provider() -> None:
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(with_comments=False, strip_string_quotes=True)
    versions = hcl2.loads(
        (TERRAFORM / "versions.tf").read_text(), serialization_options=options
    )
    required = versions["terraform"][0]["required_providers"][0]
    providers = {
        name.strip('"'): body
        for block in versions["provider"]
        for name, body in block.items()
    }

    assert required["google-beta"]["source"] == "hashicorp/google-beta"
    assert required["google-beta"]["version"] == required["google"]["version"]
    for key in ("project", "region", "default_labels"):
        assert providers["google-beta"][key] == providers["google"][key], key


def test_tick_messages_carry_a_body() -> None:
    # functions-framework recognises a push as a Pub/Sub message only with data.
    tree = terraform_tree()
    target = tree.resource("google_cloud_scheduler_job", "tick")["pubsub_target"][0]

    assert target["data"] == "${base64encode(jsonencode(each.value.payload))}"
    assert all(job["payload"] for job in tree.locals["scheduler_jobs"].values())


def test_a_push_to_the_function_url_arrives_as_the_event_the_code_decodes(
    tmp_path: Path,
) -> None:
    # What a cartcast push subscription posts (Pub/Sub's push body, to the URL plus
    # the topic's path) must reach a cloud_event function as the CloudEvent that
    # events.decode reads, as an Eventarc trigger's would.
    from functions_framework import create_app

    source = tmp_path / "receiver.py"
    source.write_text(
        "import functions_framework\n"
        "received = []\n\n\n"
        "@functions_framework.cloud_event\n"
        "def receive(cloud_event):\n"
        "    received.append(cloud_event)\n"
    )
    push = terraform_tree().resource("google_pubsub_subscription", "push")
    endpoint = push["push_config"][0]["push_endpoint"]
    path = endpoint.split("}", 1)[1]
    path = path.replace("${var.project_id}", "shop-project").replace(
        "${local.topics[each.value.topic]}", "cartcast-mentions"
    )
    ids = ["0b5f5e1c-2f6a-4d43-9a37-1c1f0e6f2a10"]
    body = {
        "message": {
            "data": base64.b64encode(
                json.dumps({"mention_ids": ids}).encode()
            ).decode(),
            "messageId": "1234567890",
            "publishTime": "2026-03-02T08:00:00.123Z",
            "attributes": {},
        },
        "subscription": "projects/shop-project/subscriptions/cartcast-mentions-push",
    }
    app = create_app("receive", str(source), "cloudevent")

    response = app.test_client().post(path, json=body)

    assert response.status_code == 200
    event = _received_event(source)
    message = events.decode(event)
    assert message.event_id == "1234567890"
    assert message.payload == {"mention_ids": ids}
    assert event["source"].endswith("/projects/shop-project/topics/cartcast-mentions")


def _received_event(source: Path) -> Any:
    for module in sys.modules.values():
        if getattr(module, "__file__", None) == str(source):
            return module.received[-1]
    raise AssertionError("the function received nothing")


# ---------------------------------------------------------------------------
# Ingress and invokers


def test_event_functions_take_internal_traffic_from_their_push_identity_only() -> None:
    tree = terraform_tree()
    function = tree.resource("google_cloudfunctions2_function", "function")
    invoker = tree.resource("google_cloud_run_v2_service_iam_member", "push_invoker")

    assert function["service_config"][0]["ingress_settings"] == (
        '${each.value.clients ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"}'
    )
    assert invoker["for_each"] == "${local.event_functions}"
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "${google_service_account.push[each.key].member}"


def test_no_public_invoker_but_on_api_and_generate_caption() -> None:
    tree = terraform_tree()
    public = [
        key
        for key, body in tree.resources.items()
        if body.get("member") in ("allUsers", "allAuthenticatedUsers")
        or "allUsers" in json.dumps(body.get("members", []))
    ]

    assert public == [("google_cloud_run_v2_service_iam_member", "clients_invoke")]
    clients = tree.resource("google_cloud_run_v2_service_iam_member", "clients_invoke")
    assert "if f.clients" in clients["for_each"]


def test_every_role_granted_is_explained_by_a_comment() -> None:
    # Read the raw text: each resource granting a role has a comment just above.
    text = "\n".join(path.read_text() for path in sorted(TERRAFORM.glob("*.tf")))
    blocks = re.finditer(r'((?:^#.*\n)*)resource "(\w+_iam_\w+)" "(\w+)"', text, re.M)

    unexplained = [
        f"{kind}.{name}"
        for comment, kind, name in (m.groups() for m in blocks)
        if not comment.strip()
    ]

    assert unexplained == []


def test_publish_alerts_match_the_log_lines_the_code_writes() -> None:
    tree = terraform_tree()
    runs = tree.resource("google_logging_metric", "publish_runs")["filter"]
    missed = tree.resource("google_logging_metric", "missed_posts")["filter"]
    sweeping_source = (PACKAGE / "sweeping.py").read_text()
    alert_field = re.search(r'alert="(\w+)"', sweeping_source)

    # main._done logs f"{function} done"; the sweep's outcome carries "missed".
    assert 'f"{function} done"' in MAIN.read_text()
    assert 'jsonPayload.message=\\"publish_due_posts done\\"' in json.dumps(runs)
    assert '"missed": len(missed)' in sweeping_source
    assert "NOT jsonPayload.missed:*" in runs
    assert alert_field and f'jsonPayload.alert=\\"{alert_field.group(1)}\\"' in (
        json.dumps(missed)
    )


def test_the_log_level_keeps_the_line_the_publish_alert_counts() -> None:
    # The silence alert counts main._done's "publish_due_posts done" lines; with
    # LOG_LEVEL above their level none is written, and the alert would fire
    # 15 minutes after every deploy and never clear.
    done = next(
        node
        for node in ast.walk(ast.parse(MAIN.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "_done"
    )
    methods = {
        node.func.attr
        for node in ast.walk(done)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    done_level = logging.getLevelName(
        ({"debug", "info", "warning", "error"} & methods).pop().upper()
    )
    condition = terraform_tree().variables["log_level"]["validation"][0]["condition"]
    accepted = re.findall(r'"([A-Z]+)"', condition)

    assert "var.log_level" in condition and accepted
    assert "INFO" in accepted
    assert all(logging.getLevelName(level) <= done_level for level in accepted)


# ---------------------------------------------------------------------------
# The database and the migrations job


def test_migrations_job_runs_cartcast_migrate_as_its_own_account() -> None:
    tree = terraform_tree()
    job = tree.resource("google_cloud_run_v2_job", "migrate")
    task = job["template"][0]["template"][0]
    script = tree.locals["migrate_script"]
    env = {item["name"]: item["value"] for item in task["containers"][0]["env"]}

    assert task["service_account"] == "${google_service_account.migrate.email}"
    assert "python -m cartcast.migrate --sql-dir" in script
    assert "${google_storage_bucket_object.functions.name}" in script
    assert "${google_storage_bucket_object.sql.name}" in script
    assert env["DB_USER"] == "${google_sql_user.migrate.name}"
    assert env["CARTCAST_ENV"] == "cloud"
    assert not set(env) & set(LOCAL_ONLY)


def test_the_migrations_job_is_given_the_migrate_settings_of_var_settings() -> None:
    """CARTCAST_MIGRATE_LOCK_* tune the migrations job alone (README,
    decision 0108); var.settings, where every tuning setting goes, must reach
    the job with them, or a deployment could not set them at all."""
    tree = terraform_tree()
    task = tree.resource("google_cloud_run_v2_job", "migrate")["template"][0]
    container = task["template"][0]["containers"][0]
    fields = {field.name for field in dataclasses.fields(settings.Settings)}
    migrate_fields = sorted(name for name in fields if name.startswith("migrate_"))

    [given] = [block["env"] for block in container.get("dynamic", []) if "env" in block]
    chosen = tree.locals[given["for_each"].removeprefix("${local.").rstrip("}")]

    assert migrate_fields == ["migrate_lock_attempts", "migrate_lock_timeout_s"]
    assert given["content"] == [{"name": "${env.key}", "value": "${env.value}"}]
    assert "in var.settings" in chosen
    assert 'startswith(key, "CARTCAST_MIGRATE_")' in chosen


def test_the_longest_lock_waits_the_settings_allow_fit_the_migrations_job() -> None:
    """A blocked file waits, then pauses as long, at every try (decision 0108):
    the most the settings allow must end before Cloud Run ends the job, or the
    run is killed mid-wait instead of stopping with the file named."""
    task = terraform_tree().resource("google_cloud_run_v2_job", "migrate")["template"][
        0
    ]
    job_timeout_s = int(task["template"][0]["timeout"].removesuffix("s"))
    longest_s = (
        2 * settings.MIGRATE_LOCK_TIMEOUT_MAX_S * settings.MIGRATE_LOCK_ATTEMPTS_MAX
    )

    assert longest_s < job_timeout_s


def test_the_migrations_jobs_source_volume_needs_no_preview_launch_stage() -> None:
    # Cloud Storage volumes on jobs once needed launch_stage = "BETA" and the beta
    # provider (GoogleCloudPlatform/magic-modules#9746, 2024). The 6.x google
    # provider has `gcs` as a GA field, and an unset launch_stage means GA; a
    # preview stage would opt the job into preview features for nothing.
    job = terraform_tree().resource("google_cloud_run_v2_job", "migrate")
    task = job["template"][0]["template"][0]
    documented = provider_arguments()["resource"]["google_cloud_run_v2_job"]

    assert job.get("launch_stage", "GA") == "GA"
    assert "provider" not in job
    assert task["volumes"][0]["gcs"][0]["read_only"] is True
    assert task["execution_environment"] == "EXECUTION_ENVIRONMENT_GEN2"
    assert "gcs" in documented["blocks"]["template.template.volumes"]


def test_database_users_authenticate_with_iam_and_have_no_password() -> None:
    tree = terraform_tree()
    users = [
        body for (kind, _), body in tree.resources.items() if kind == "google_sql_user"
    ]
    instance = tree.resource("google_sql_database_instance", "main")["settings"][0]
    flags = {flag["name"]: flag["value"] for flag in instance["database_flags"]}

    assert users and all(u["type"] == "CLOUD_IAM_SERVICE_ACCOUNT" for u in users)
    assert not any("password" in u for u in users)
    assert flags["cloudsql.iam_authentication"] == "on"
    assert tree.locals["common_env"]["DB_IAM_AUTH"] == "true"


def test_cloud_sql_keeps_backups_and_point_in_time_recovery() -> None:
    tree = terraform_tree()
    instance = tree.resource("google_sql_database_instance", "main")
    backup = instance["settings"][0]["backup_configuration"][0]

    assert backup["enabled"] is True
    assert backup["point_in_time_recovery_enabled"] is True
    assert instance["deletion_protection"] == "${var.deletion_protection}"
    assert tree.variables["deletion_protection"]["default"] is True


# ---------------------------------------------------------------------------
# checkov, secrets, and the deploy guard


def test_checkov_finds_nothing_and_every_skip_gives_its_reason() -> None:
    checkov = tool_or_skip(CHECKOV, "checkov (make install builds .venv-checkov)")

    result = subprocess.run(
        isolated(
            [
                checkov,
                "--directory",
                str(TERRAFORM),
                "--framework",
                "terraform",
                "secrets",
                "--skip-download",
                "--output",
                "json",
            ]
        ),
        capture_output=True,
        text=True,
        env=offline_env(),
        cwd=REPO,
        check=False,
    )

    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        (check["check_id"], check["resource"])
        for report in reports
        for check in report["results"].get("failed_checks", [])
    ]
    assert failed == []
    assert result.returncode == 0, result.stderr[-2000:]
    assert sum(report["summary"]["passed"] for report in reports) > 50
    skips = re.findall(
        r"#checkov:skip=(\S+?):(.*)$",
        "\n".join(p.read_text() for p in TERRAFORM.glob("*.tf")),
        re.M,
    )
    assert skips and all(len(reason.strip()) > 20 for _, reason in skips)
    # Offline: checkov says nothing of reaching a platform or a registry.
    assert not re.search(r"(?i)connection|max retries|resolve", result.stderr)


# Shapes of real credentials: a Google API key, a private key, an X bearer token,
# a password or key assigned a literal value.
SECRET_SHAPES = [
    re.compile(r"AIza[0-9A-Za-z_-]{30,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AAAAAAAAAAAAAAAAAAAAA[0-9A-Za-z%]{20,}"),
    re.compile(r"(?i)\b(password|secret_data|api_key|token)\s*=\s*\"[^\"$]{6,}\""),
]


def test_no_secret_value_in_terraform_files_or_examples() -> None:
    files = [*TERRAFORM.glob("*.tf"), *TERRAFORM.glob("*.tfvars*")]
    files += [*(REPO / "tests" / "terraform").glob("*.hcl")]
    tree = terraform_tree()

    found = [
        (path.name, shape.pattern)
        for path in files
        for shape in SECRET_SHAPES
        if shape.search(path.read_text())
    ]

    assert found == []
    # Terraform creates secrets empty; a version would put the value in the state.
    assert not [kind for kind, _ in tree.resources if "secret_version" in kind]


def test_variables_that_could_hold_a_secret_are_sensitive_and_outputs_hold_none() -> (
    None
):
    tree = terraform_tree()
    secretive = re.compile(r"(?i)(key|secret|token|password|credential)")

    # Names that say "secret" but hold none: which version of each secret to read.
    not_secrets = {"secret_versions"}

    unmarked = [
        name
        for name, body in tree.variables.items()
        if secretive.search(name)
        and name not in not_secrets
        and body.get("sensitive") is not True
    ]
    leaking = [
        name
        for name, body in tree.outputs.items()
        if re.search(r"secret_data|\.payload|GEMINI_API_KEY =", json.dumps(body))
    ]

    assert unmarked == []
    assert leaking == []


def test_deploy_guard_names_every_unset_variable_before_terraform_runs(
    tmp_path: Path,
) -> None:
    # A terraform and a gcloud on PATH that record being called: the guard must
    # stop make before either runs.
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("terraform", "gcloud"):
        fake = bin_dir / tool
        fake.write_text(f'#!/bin/sh\necho {tool} "$@" >> {calls}\nexit 1\n')
        fake.chmod(0o755)
    var_file = tmp_path / "deploy.tfvars"
    var_file.write_text('region = "europe-west1"\n')
    env = {key: value for key, value in offline_env().items() if key != "MAKEFLAGS"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"

    result = subprocess.run(
        ["make", "--no-print-directory", "deploy", f"TFVARS={var_file}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )

    assert result.returncode != 0
    assert "project_id" in result.stderr and "alert_emails" in result.stderr
    assert "region" not in result.stderr.split("set ", 1)[1].split(" first")[0]
    assert not calls.exists(), calls.read_text()


def test_deploy_guard_takes_environment_variables_and_prints_no_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_looking = "value-that-must-not-be-printed"
    environ = {"TF_VAR_project_id": secret_looking, "TF_VAR_region": "europe-west1"}

    missing = deploy_guard.missing_variables(None, environ)
    code = deploy_guard.main([], environ)

    assert missing == ["alert_emails"]
    assert code == 2
    captured = capsys.readouterr()
    assert "alert_emails" in captured.err
    assert secret_looking not in captured.err + captured.out


def test_the_example_var_file_sets_every_required_variable() -> None:
    example = TERRAFORM / "terraform.tfvars.example"

    assert deploy_guard.missing_variables(example, {}) == []


# ---------------------------------------------------------------------------
# sql/024: what the functions' database users may do


APP_ROLE = "cartcast_app"
FUNCTION_USER = "cartcast_fn_terraform_test"


def test_function_users_read_and_write_data_but_cannot_change_the_schema(
    database_url: str,
) -> None:
    # As in the cloud after the bootstrap: cartcast_app exists, a function's user
    # is a member, and the migrations' owner (here the test's superuser) applies
    # sql/024. The roles are the server's, so the test removes them after.
    import pg8000.native

    from cartcast import db

    options = db.parse_database_url(database_url)
    admin = pg8000.native.Connection(**options)
    migration = next((REPO / "sql").glob("024_*.sql")).read_text()
    tables = [
        row[0]
        for row in admin.run(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    ]
    try:
        admin.run(f"CREATE ROLE {APP_ROLE} NOLOGIN")
        admin.run(f"CREATE ROLE {FUNCTION_USER} NOLOGIN IN ROLE {APP_ROLE}")
        admin.run(migration)
        admin.run("CREATE TABLE terraform_test_later (id bigint PRIMARY KEY)")

        privileges = admin.run(
            "SELECT t, has_table_privilege(:user, t, 'SELECT, INSERT, UPDATE, DELETE')"
            " FROM unnest(CAST(:tables AS text[])) AS t",
            user=FUNCTION_USER,
            tables=[*tables, "terraform_test_later"],
        )
        admin.run(f"SET ROLE {FUNCTION_USER}")
        with pytest.raises(pg8000.native.DatabaseError) as refused:
            admin.run("CREATE TABLE terraform_test_refused (id bigint)")
        admin.run("RESET ROLE")
        owners = admin.run(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
    finally:
        admin.run("RESET ROLE")
        admin.run("DROP TABLE IF EXISTS terraform_test_later")
        for role in (FUNCTION_USER, APP_ROLE):
            exists = admin.run("SELECT 1 FROM pg_roles WHERE rolname = :r", r=role)
            if exists:
                admin.run(f"DROP OWNED BY {role}")
                admin.run(f"DROP ROLE {role}")
        admin.close()

    assert tables and all(allowed for _, allowed in privileges), privileges
    assert refused.value.args[0]["C"] == "42501"  # insufficient_privilege
    assert [owner for (owner,) in owners] == [options["user"]]


# ---------------------------------------------------------------------------
# Least privilege: every grant, held to an allow-list

PROJECT = "${var.project_id}"
SQL_INSTANCE_ONLY = (
    "resource.name == 'projects/${var.project_id}/instances/"
    "${google_sql_database_instance.main.name}' && "
    "resource.service == 'sqladmin.googleapis.com'"
)
STAGED_SOURCE_ONLY = (
    "resource.name == 'projects/_/buckets/${local.staged_source_bucket}' || "
    "resource.name.startsWith('projects/_/buckets/${local.staged_source_bucket}/')"
)
FUNCTION_SERVICE = (
    "${google_cloudfunctions2_function.function[each.key].service_config[0].service}"
)
BUILD = "${google_service_account.build.member}"
MIGRATE = "${google_service_account.migrate.member}"
EACH_FUNCTION = "${google_service_account.function[each.key].member}"
PUBSUB_AGENT = "${local.pubsub_service_agent}"
# (resource, name): (what it is granted on, role, member, for_each, condition).
# A grant added, widened or moved fails here until this list says so, in review.
ALLOWED_GRANTS: dict[tuple[str, str], tuple[Any, ...]] = {
    # Builds push the functions' images to their own repository, and only there.
    ("google_artifact_registry_repository_iam_member", "build_pushes_images"): (
        {
            "project": PROJECT,
            "repository": "${google_artifact_registry_repository.functions.name}",
        },
        "roles/artifactregistry.writer",
        BUILD,
        None,
        None,
    ),
    ("google_cloud_run_v2_service_iam_member", "clients_invoke"): (
        {"project": PROJECT, "name": FUNCTION_SERVICE},
        "roles/run.invoker",
        "allUsers",
        "${{for name, f in local.functions : name => f if f.clients}}",
        None,
    ),
    ("google_cloud_run_v2_service_iam_member", "push_invoker"): (
        {"project": PROJECT, "name": FUNCTION_SERVICE},
        "roles/run.invoker",
        "${google_service_account.push[each.key].member}",
        "${local.event_functions}",
        None,
    ),
    ("google_project_iam_member", "api_pauses_publishing"): (
        {"project": PROJECT},
        "${google_project_iam_custom_role.publish_pause.id}",
        '${google_service_account.function["api"].member}',
        None,
        None,
    ),
    ("google_project_iam_member", "build_reads_staged_source"): (
        {"project": PROJECT},
        "roles/storage.objectViewer",
        BUILD,
        None,
        STAGED_SOURCE_ONLY,
    ),
    ("google_project_iam_member", "build_writes_logs"): (
        {"project": PROJECT},
        "roles/logging.logWriter",
        BUILD,
        None,
        None,
    ),
    ("google_project_iam_member", "function_sql_client"): (
        {"project": PROJECT},
        "roles/cloudsql.client",
        EACH_FUNCTION,
        "${local.functions}",
        SQL_INSTANCE_ONLY,
    ),
    ("google_project_iam_member", "function_sql_instance_user"): (
        {"project": PROJECT},
        "roles/cloudsql.instanceUser",
        EACH_FUNCTION,
        "${local.functions}",
        SQL_INSTANCE_ONLY,
    ),
    ("google_project_iam_member", "migrate_sql_client"): (
        {"project": PROJECT},
        "roles/cloudsql.client",
        MIGRATE,
        None,
        SQL_INSTANCE_ONLY,
    ),
    ("google_project_iam_member", "migrate_sql_instance_user"): (
        {"project": PROJECT},
        "roles/cloudsql.instanceUser",
        MIGRATE,
        None,
        SQL_INSTANCE_ONLY,
    ),
    # The console's status page peeks at the dead letters (decision 0038).
    ("google_pubsub_subscription_iam_member", "api_reads_dead_letters"): (
        {"subscription": "${google_pubsub_subscription.dead_letter.id}"},
        "roles/pubsub.subscriber",
        '${google_service_account.function["api"].member}',
        None,
        None,
    ),
    ("google_pubsub_subscription_iam_member", "pubsub_agent_dead_letter_subscriber"): (
        {"subscription": "${google_pubsub_subscription.push[each.key].id}"},
        "roles/pubsub.subscriber",
        PUBSUB_AGENT,
        "${local.subscriptions}",
        None,
    ),
    ("google_pubsub_topic_iam_member", "poll_publishes_mentions"): (
        {"topic": '${google_pubsub_topic.topic["mentions"].id}'},
        "roles/pubsub.publisher",
        '${google_service_account.function["poll_mentions"].member}',
        None,
        None,
    ),
    ("google_pubsub_topic_iam_member", "pubsub_agent_dead_letter_publisher"): (
        {"topic": "${google_pubsub_topic.dead_letter.id}"},
        "roles/pubsub.publisher",
        PUBSUB_AGENT,
        None,
        None,
    ),
    ("google_secret_manager_secret_iam_member", "function"): (
        {"secret_id": "${google_secret_manager_secret.secret[each.value.env].id}"},
        "roles/secretmanager.secretAccessor",
        "${google_service_account.function[each.value.function].member}",
        "${merge([for name, envs in local.granted_secrets : {for env in envs : "
        '"${name}/${env}" => {function = name, env = env}}] ...)}',
        None,
    ),
    # The token key, read by the functions that open brands' X tokens (0030).
    ("google_secret_manager_secret_iam_member", "token_key"): (
        {"secret_id": "${google_secret_manager_secret.token_key.id}"},
        "roles/secretmanager.secretAccessor",
        "${google_service_account.function[each.value].member}",
        "${toset(local.x_token_functions)}",
        None,
    ),
    ("google_service_account_iam_member", "pubsub_agent_token_creator"): (
        {"service_account_id": "${google_service_account.push[each.key].name}"},
        "roles/iam.serviceAccountTokenCreator",
        PUBSUB_AGENT,
        "${local.event_functions}",
        None,
    ),
    ("google_storage_bucket_iam_member", "build_reads_source"): (
        {"bucket": "${google_storage_bucket.source.name}"},
        "roles/storage.objectViewer",
        BUILD,
        None,
        None,
    ),
    ("google_storage_bucket_iam_member", "migrate_reads_source"): (
        {"bucket": "${google_storage_bucket.source.name}"},
        "roles/storage.objectViewer",
        MIGRATE,
        None,
        None,
    ),
}
ALLOWED_CUSTOM_ROLES = {
    "publish_pause": [
        "cloudscheduler.jobs.pause",
        "cloudscheduler.jobs.enable",
    ]
}
GRANT_TARGETS = (
    "project",
    "repository",
    "bucket",
    "topic",
    "subscription",
    "secret_id",
    "service_account_id",
    "name",
    "location",
)


def _resolved_condition(tree: Tree, body: dict[str, Any]) -> str | None:
    """The condition's expression, through a `local.X.expression` indirection."""
    if "condition" not in body:
        return None
    expression = body["condition"][0]["expression"]
    indirect = re.fullmatch(r"\$\{local\.(\w+)\.expression\}", expression)
    if indirect:
        return tree.locals[indirect.group(1)]["expression"]
    return expression


def test_every_grant_is_on_the_allow_list_and_no_wider() -> None:
    tree = terraform_tree()
    granted = {}
    for (kind, name), body in tree.resources.items():
        if re.search(r"_iam_(member|binding|policy|audit_config)$", kind):
            target = {
                key: body[key]
                for key in GRANT_TARGETS
                if key in body and key != "location"
            }
            granted[(kind, name)] = (
                target,
                body.get("role"),
                body.get("member", body.get("members")),
                body.get("for_each"),
                _resolved_condition(tree, body),
            )

    assert set(granted) == set(ALLOWED_GRANTS)
    for key, allowed in ALLOWED_GRANTS.items():
        assert granted[key] == allowed, key
    # The identities the allow-list names by reference are the ones it means.
    assert tree.locals["pubsub_service_agent"] == (
        "serviceAccount:service-${data.google_project.this.number}"
        "@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    assert tree.locals["staged_source_bucket"] == (
        "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
    )


# The permission each Cloud Scheduler method needs, from its REST reference page
# (cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs/<verb>,
# "Authorization requires the following IAM permission"): resume is jobs.enable.
SCHEDULER_METHOD_PERMISSIONS = {
    "get_job": "cloudscheduler.jobs.get",
    "pause_job": "cloudscheduler.jobs.pause",
    "resume_job": "cloudscheduler.jobs.enable",
}


def scheduler_methods_called() -> set[str]:
    """The Scheduler client methods publish_schedule.py calls: `_call(client,
    settings, "<method>", ...)` or `client.<method>(...)`."""
    tree = ast.parse((PACKAGE / "publish_schedule.py").read_text())
    called = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if getattr(node.func, "id", None) == "_call" and len(node.args) > 2:
            method = node.args[2]
            assert isinstance(method, ast.Constant), ast.unparse(node)
            called.add(method.value)
        elif (
            isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "client"
        ):
            called.add(node.func.attr)
    return called


def test_the_pause_role_holds_exactly_what_the_pause_calls_need() -> None:
    called = scheduler_methods_called()
    role = terraform_tree().resource("google_project_iam_custom_role", "publish_pause")

    unknown = called - set(SCHEDULER_METHOD_PERMISSIONS)
    assert unknown == set(), "add their permissions to SCHEDULER_METHOD_PERMISSIONS"
    needed = {SCHEDULER_METHOD_PERMISSIONS[method] for method in called}
    assert set(role["permissions"]) == needed


def test_custom_roles_hold_only_their_listed_permissions() -> None:
    tree = terraform_tree()
    roles = {
        name: body["permissions"]
        for (kind, name), body in tree.resources.items()
        if kind.endswith("_iam_custom_role")
    }

    assert roles == ALLOWED_CUSTOM_ROLES


def test_a_setting_held_against_the_gemini_key_reaches_only_its_holders() -> None:
    # var.settings goes to every function; settings.load refuses
    # CARTCAST_SENTIMENT_ENGINE=gemini without GEMINI_API_KEY, so that setting must
    # skip the functions that hold no key, or they would not start.
    tree = terraform_tree()
    held_back = {literal(name) for name in tree.locals["needs_gemini_key"]}
    function_resource = tree.resource("google_cloudfunctions2_function", "function")
    expression = function_resource["service_config"][0]["environment_variables"]
    assert "local.function_settings[each.key]" in expression
    assert "var.settings" not in expression
    assert "local.needs_gemini_key" in tree.locals["function_settings"]
    assert '"GEMINI_API_KEY"' in tree.locals["function_settings"]
    cloud = {
        "CARTCAST_ENV": "cloud",
        "CARTCAST_PUBSUB": "google",
        "GOOGLE_CLOUD_PROJECT": "cartcast-prod-1",
        "CLOUD_SQL_INSTANCE": "cartcast-prod-1:europe-west1:cartcast-db",
        "DB_USER": "cartcast-fn@cartcast-prod-1.iam",
    }
    tuning = {"CARTCAST_SENTIMENT_ENGINE": "gemini"}
    with pytest.raises(ConfigurationError, match="needs GEMINI_API_KEY"):
        settings.load(cloud | tuning)
    assert set(tuning) <= held_back

    for function in entry_points():
        holds_key = "GEMINI_API_KEY" in secret_env(function)
        # 32 characters or more: CARTCAST_CONSOLE_SECRET refuses a shorter one.
        placeholder = "not-a-real-value-but-long-enough-to-load"
        env = cloud | {secret: placeholder for secret in secret_env(function)}
        env |= {
            name: value
            for name, value in tuning.items()
            if name not in held_back or holds_key
        }
        settings.load(env)  # starts
    # And the variable refuses the setting where no function holds the key.
    refused = variable_validation_text("settings")
    assert "CARTCAST_SENTIMENT_ENGINE" in refused and "var.gemini_enabled" in refused


def granted_secrets_for(tmp_path: Path, **variables: str) -> dict[str, list[str]]:
    """Evaluate main.tf's granted_secrets with `terraform console` for these
    variables (HCL literals), in a module of that local and its inputs alone."""
    terraform = tool_or_skip(shutil.which("terraform"), "terraform")
    text = (TERRAFORM / "main.tf").read_text()
    wanted = [
        re.search(rf"^  {name} = \{{\n.*?^  \}}\n", text, re.M | re.S)
        for name in ("function_secrets", "granted_secrets")
    ]
    assert all(wanted), "main.tf lost function_secrets or granted_secrets"
    module = tmp_path / "secrets"
    module.mkdir(exist_ok=True)
    declared = "".join(f'variable "{name}" {{}}\n' for name in variables)
    blocks = "".join(match.group(0) for match in wanted if match)
    (module / "main.tf").write_text(f"{declared}locals {{\n{blocks}}}\n")
    arguments = [f"-var={name}={value}" for name, value in variables.items()]

    console = subprocess.run(
        isolated([terraform, f"-chdir={module}", "console", *arguments]),
        input="jsonencode(local.granted_secrets)\n",
        capture_output=True,
        text=True,
        env=offline_env(),
        check=False,
    )

    assert console.returncode == 0, console.stderr
    return json.loads(json.loads(console.stdout))


def test_the_x_client_secret_is_mounted_only_with_an_x_app(tmp_path: Path) -> None:
    # Cloud Run refuses a revision whose secret has no version: a deployment
    # without an X app (x_client_id empty) adds no X client secret, so no function
    # may name it, or none would deploy.
    confidential = {"x_client_confidential": "true", "gemini_enabled": "true"}
    without_x = granted_secrets_for(tmp_path, x_client_id="", **confidential)
    with_x = granted_secrets_for(tmp_path, x_client_id="abc", **confidential)
    neither = granted_secrets_for(
        tmp_path, x_client_id="", x_client_confidential="true", gemini_enabled="false"
    )

    secret = "CARTCAST_X_CLIENT_SECRET"
    assert [f for f, envs in without_x.items() if secret in envs] == []
    assert {f for f, envs in with_x.items() if secret in envs} == {
        f for f in entry_points() if secret in secret_env(f)
    }
    assert "GEMINI_API_KEY" in without_x["score_sentiment"]
    assert all(
        "GEMINI_API_KEY" not in envs and secret not in envs for envs in neither.values()
    )


def test_a_public_x_client_is_given_no_client_secret(tmp_path: Path) -> None:
    # An X app of a public type (Native App, Single page App) has no client secret:
    # x_oauth sends its id alone when CARTCAST_X_CLIENT_SECRET is unset. Its
    # secret is left without a version (README step 2), and Cloud Run refuses a
    # revision naming it, so x_client_confidential = false must mount it nowhere
    # while the client id still reaches the functions that call X.
    public = granted_secrets_for(
        tmp_path,
        x_client_id="abc",
        x_client_confidential="false",
        gemini_enabled="true",
    )
    secret = "CARTCAST_X_CLIENT_SECRET"

    assert [f for f, envs in public.items() if secret in envs] == []
    assert "GEMINI_API_KEY" in public["poll_mentions"]
    variable = terraform_tree().variables["x_client_confidential"]
    assert variable["type"] == "bool" and variable["default"] is True
    for function in ("api", "publish_due_posts", "poll_mentions", "rollup_kpis"):
        assert "CARTCAST_X_CLIENT_ID" in wired_env(function)


def test_the_database_tier_decides_the_edition() -> None:
    sql = terraform_tree().resource("google_sql_database_instance", "main")
    assert sql["settings"][0]["edition"] == "${local.database_edition}"
    edition = terraform_tree().locals["database_edition"]
    assert 'startswith(var.database_tier, "db-perf-optimized-")' in edition
    assert '"ENTERPRISE_PLUS"' in edition and ': "ENTERPRISE"' in edition


MIGRATE_USER = "cartcast_migrate_terraform_test"


def bootstrap_statements(migrate_user: str, function_users: list[str]) -> list[str]:
    """The SQL of `terraform output database_bootstrap_sql`, for these users."""
    text = (TERRAFORM / "outputs.tf").read_text()
    block = text[text.index('output "database_bootstrap_sql"') :]
    statements = []
    for line in block.splitlines():
        quoted = re.fullmatch(r'\s*(?:\[for user in [^:]+: )?"(.*)",?\]?,?', line)
        if not quoted:
            continue
        statement = quoted.group(1).replace('\\"', '"')
        if "${user.name}" in statement:
            statements += [statement.replace("${user.name}", u) for u in function_users]
        else:
            statements.append(
                statement.replace("${google_sql_user.migrate.name}", migrate_user)
            )
    return statements


def test_the_bootstrap_can_run_twice_and_the_migrations_user_then_grants(
    database_url: str,
) -> None:
    # As in the cloud: the bootstrap as an administrator, then the migrations user,
    # which owns every table, applies 026. All in one transaction rolled back, so
    # the server's roles and the test database's owners are left as they were.
    import pg8000.native

    from cartcast import db

    statements = bootstrap_statements(MIGRATE_USER, [FUNCTION_USER])
    assert [s.split()[0] for s in statements] == [
        "DO",
        "DO",
        "GRANT",
        "GRANT",
        "GRANT",
    ]
    admin = pg8000.native.Connection(**db.parse_database_url(database_url))
    migration = next((REPO / "sql").glob("026_*.sql")).read_text()
    owned = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}
    try:
        admin.run("BEGIN")
        for role in (MIGRATE_USER, FUNCTION_USER):
            admin.run(f"CREATE ROLE {role} NOLOGIN")
        for _ in range(2):  # a second run changes nothing and raises nothing
            for statement in statements:
                admin.run(statement)
        relations = admin.run(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "AND c.relkind IN ('r', 'p', 'v', 'm')"
        )
        for name, kind in relations:
            admin.run(f'ALTER {owned[kind]} "{name}" OWNER TO {MIGRATE_USER}')
        admin.run(f"SET ROLE {MIGRATE_USER}")
        admin.run("CREATE TABLE terraform_test_bootstrap (id bigint PRIMARY KEY)")
        admin.run(migration)
        admin.run("CREATE TABLE terraform_test_after (id bigserial PRIMARY KEY)")
        admin.run("RESET ROLE")
        allowed = admin.run(
            "SELECT t, has_table_privilege(:user, t, 'SELECT, INSERT, UPDATE, DELETE')"
            " FROM unnest(CAST(:tables AS text[])) AS t",
            user=FUNCTION_USER,
            tables=[name for name, _ in relations]
            + ["terraform_test_bootstrap", "terraform_test_after"],
        )
    finally:
        admin.run("ROLLBACK")
        admin.close()

    assert len(allowed) > 2 and all(ok for _, ok in allowed), allowed


def test_migrations_stop_on_cloud_sql_when_the_bootstrap_was_skipped(
    database_url: str,
) -> None:
    # Locally (no Cloud SQL setting, no cartcast_app) 026 changes nothing; with
    # Cloud SQL's setting present it refuses to let the functions start blind.
    import pg8000.native

    from cartcast import db

    admin = pg8000.native.Connection(**db.parse_database_url(database_url))
    migration = next((REPO / "sql").glob("026_*.sql")).read_text()
    try:
        if admin.run("SELECT 1 FROM pg_roles WHERE rolname = :r", r=APP_ROLE):
            pytest.skip(f"another run holds the server-wide role {APP_ROLE}")
        admin.run(migration)  # the local case
        admin.run("BEGIN")
        admin.run("SET LOCAL cloudsql.iam_authentication = 'on'")
        with pytest.raises(pg8000.native.DatabaseError) as refused:
            admin.run(migration)
        admin.run("ROLLBACK")
    finally:
        admin.close()

    assert "cartcast_app does not exist" in refused.value.args[0]["M"]
    assert "database_bootstrap_sql" in refused.value.args[0]["H"]


def test_the_bootstrap_creates_the_pgaudit_extension_the_flags_turn_on() -> None:
    # Cloud SQL audits only once the extension exists, and Terraform cannot create
    # it (https://cloud.google.com/sql/docs/postgres/pg-audit): the flags alone
    # audit nothing, so the bootstrap, run as postgres, creates it.
    instance = terraform_tree().resource("google_sql_database_instance", "main")
    flags = {
        flag["name"]: flag["value"]
        for flag in instance["settings"][0]["database_flags"]
    }
    statements = bootstrap_statements(MIGRATE_USER, [FUNCTION_USER])

    assert flags["cloudsql.enable_pgaudit"] == "on"
    assert any("CREATE EXTENSION IF NOT EXISTS pgaudit" in s for s in statements)


def test_the_first_deploy_creates_what_the_bootstrap_names() -> None:
    # README step 1 applies with -target; `terraform output database_bootstrap_sql`
    # is empty unless the users it names were among what that apply created.
    readme = (REPO / "README.md").read_text()
    first = readme[readme.index("### First deploy") :]
    step_one = first[: first.index("2. ")]
    targets = set(re.findall(r"-target=([\w.]+)", step_one))
    output = terraform_tree().outputs["database_bootstrap_sql"]["value"]
    named = set(re.findall(r"(google_\w+\.\w+)", output))

    assert named == {"google_sql_user.migrate", "google_sql_user.function"}
    assert named <= targets
    assert "google_secret_manager_secret.secret" in targets


def test_the_prerequisites_name_the_role_that_may_create_custom_roles() -> None:
    # google_project_iam_custom_role calls projects.roles.create, which needs
    # iam.roles.create: in Role Administrator, not in Project IAM Admin.
    readme = (REPO / "README.md").read_text()
    prerequisites = readme[readme.index("### Prerequisites") :]
    prerequisites = prerequisites[: prerequisites.index("\n### ")]
    custom_roles = [
        name
        for kind, name in terraform_tree().resources
        if kind == "google_project_iam_custom_role"
    ]

    assert custom_roles
    assert "roles/iam.roleAdmin" in prerequisites


def test_the_readme_names_every_setting_terraform_wires_and_where() -> None:
    # The deploy section's "Settings." paragraph is what an operator reads to know
    # which settings the `settings` map may not carry, and which function gets each.
    readme = (REPO / "README.md").read_text()
    paragraph = readme[readme.index("**Settings.** Terraform") :]
    paragraph = paragraph[: paragraph.index("\n\n")]
    tree = terraform_tree()
    wired = set(tree.locals["common_env"]) | {"DB_USER"}
    for env in tree.locals["function_env"].values():
        wired |= set(env)

    assert sorted(name for name in wired if f"`{name}" not in paragraph) == []
    for function, env in tree.locals["function_env"].items():
        if env:
            assert f"`{function}`" in paragraph, function


def test_a_release_that_adds_a_function_says_to_run_the_bootstrap_again() -> None:
    # Only database_bootstrap_sql makes a function's database user a member of
    # cartcast_app: a function added later is denied every table until it runs.
    readme = (REPO / "README.md").read_text()
    later = readme[readme.index("### Every later deploy") :]
    later = later[: later.index("\n### ")]
    output = terraform_tree().outputs["database_bootstrap_sql"]["value"]

    assert "GRANT cartcast_app TO" in output
    assert "database_bootstrap_sql" in later
    assert "-target=google_sql_user.function" in later


def test_a_release_that_mounts_a_new_secret_says_to_add_its_version_first() -> None:
    # Terraform creates a secret empty and, in the same apply, a function revision
    # naming it, which Cloud Run refuses while the secret has no version. The same
    # holds when a variable gives functions a secret they did not have.
    readme = (REPO / "README.md").read_text()
    later = readme[readme.index("### Every later deploy") :]
    later = later[: later.index("\n### ")]
    paragraph = later[later.index("A release that adds a secret") :]
    targeted = "-target=google_secret_manager_secret.secret"

    assert targeted in paragraph
    assert "gcloud secrets versions add" in paragraph
    assert paragraph.index(targeted) < paragraph.index("gcloud secrets versions add")
    assert paragraph.index("gcloud secrets versions add") < paragraph.rindex(
        "make deploy"
    )
    for variable in ("gemini_enabled", "x_client_id", "x_client_confidential"):
        assert variable in paragraph


def test_the_first_deploys_targeted_apply_stages_the_source_it_archives() -> None:
    # Step 1 targets the migrations job, whose script names the functions' archive:
    # Terraform reads data.archive_file.functions for it, and its precondition
    # stops the plan unless the source was staged first (as `make deploy` does).
    readme = (REPO / "README.md").read_text()
    first = readme[readme.index("### First deploy") :]
    step_one = first[: first.index("2. ")]
    tree = terraform_tree()
    archive = tree.data[("archive_file", "functions")]
    staging = "python -m infra.function_source"

    assert "-target=google_cloud_run_v2_job.migrate" in step_one
    assert "google_storage_bucket_object.functions" in tree.locals["migrate_script"]
    assert staging in archive["lifecycle"][0]["precondition"][0]["error_message"]
    assert staging in step_one
    assert step_one.index(staging) < step_one.index("apply")


def test_the_publish_alert_waits_for_its_metrics_and_follows_the_service() -> None:
    tree = terraform_tree()
    policy = tree.resource("google_monitoring_alert_policy", "publish_not_running")
    sleep = tree.resource("time_sleep", "log_metrics_propagate")
    absent = policy["conditions"][0]["condition_absent"][0]["aggregations"][0]

    assert policy["depends_on"] == ["${time_sleep.log_metrics_propagate}"]
    assert set(sleep["triggers"].values()) == {
        "${google_logging_metric.publish_runs.id}",
        "${google_logging_metric.missed_posts.id}",
    }
    # Summed over revisions: a deploy ends one revision's series, not the service's.
    assert absent["cross_series_reducer"] == "REDUCE_SUM"
    assert absent["group_by_fields"] == ["resource.labels.service_name"]
    versions = (TERRAFORM / "versions.tf").read_text()
    assert re.search(r'time = \{\s*source\s*= "hashicorp/time"', versions)


def test_deploy_guard_counts_the_var_files_terraform_loads_by_itself(
    tmp_path: Path,
) -> None:
    (tmp_path / "terraform.tfvars").write_text('project_id = "cartcast-prod-1"\n')
    (tmp_path / "alerts.auto.tfvars").write_text('alert_emails = ["a@example.com"]\n')
    (tmp_path / "region.auto.tfvars.json").write_text('{"region": "europe-west1"}')

    everything = deploy_guard.missing_variables(None, {}, terraform_dir=tmp_path)
    (tmp_path / "alerts.auto.tfvars").unlink()
    without_alerts = deploy_guard.missing_variables(None, {}, terraform_dir=tmp_path)

    assert everything == []
    assert without_alerts == ["alert_emails"]


def test_make_deploy_runs_the_migrations_then_applies_only_after_yes(
    tmp_path: Path,
) -> None:
    # The README's step 4 walked with a terraform and a gcloud that record their
    # calls: the migrations job named by Terraform's output runs, in its project
    # and region, before the plan; the plan is applied only after "yes".
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    job = "projects/cartcast-prod-1/locations/europe-west10/jobs/cartcast-migrate"
    (bin_dir / "terraform").write_text(
        "#!/bin/sh\n"
        f'echo terraform "$@" >> {calls}\n'
        f'case "$*" in *"output -raw migrations_job"*) printf %s {job} ;; esac\n'
    )
    (bin_dir / "gcloud").write_text(f'#!/bin/sh\necho gcloud "$@" >> {calls}\n')
    for fake in bin_dir.iterdir():
        fake.chmod(0o755)
    var_file = tmp_path / "deploy.tfvars"
    var_file.write_text(
        'project_id = "cartcast-prod-1"\nregion = "europe-west10"\n'
        'alert_emails = ["oncall@example.com"]\n'
    )
    env = {key: value for key, value in offline_env().items() if key != "MAKEFLAGS"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"

    def deploy(answer: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        calls.unlink(missing_ok=True)
        result = subprocess.run(
            ["make", "--no-print-directory", "deploy", f"TFVARS={var_file}"],
            cwd=REPO,
            env=env,
            input=answer + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        return result, calls.read_text().splitlines()

    accepted, walked = deploy("yes")
    refused, stopped = deploy("no")

    assert accepted.returncode == 0, accepted.stderr
    steps = [" ".join(call.split()[:3]) for call in walked]
    assert steps == [
        "terraform -chdir=terraform init",
        "terraform -chdir=terraform apply",
        "terraform -chdir=terraform output",
        "gcloud run jobs",
        "terraform -chdir=terraform plan",
        "terraform -chdir=terraform apply",
    ]
    assert walked[1].endswith("-target=google_cloud_run_v2_job.migrate")
    assert walked[3] == (
        "gcloud run jobs execute cartcast-migrate --project cartcast-prod-1 "
        "--region europe-west10 --wait"
    )
    assert walked[5].endswith(".build/deploy.tfplan")
    # Before Terraform, the source it zips was staged with its bytecode.
    staged = TERRAFORM / ".build" / "functions"
    assert (staged / "__pycache__" / "main.cpython-311.pyc").is_file()
    assert "function source:" in accepted.stdout
    assert refused.returncode != 0
    assert stopped == walked[:5]


# --- The staged function source (infra.function_source, decision 0028) ---------


def staged_modules(tree: Path) -> set[str]:
    return {
        path.relative_to(tree).as_posix()
        for path in tree.rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_the_staged_source_ships_unchecked_hash_bytecode_for_python311(
    tmp_path: Path,
) -> None:
    from infra import function_source

    staged = tmp_path / "functions"
    digest = function_source.stage_for_deploy(
        REPO / "functions", staged, cache_tag="cpython-311"
    )

    assert staged_modules(staged) == staged_modules(REPO / "functions")
    assert (staged / "requirements.txt").read_text() == (
        REPO / "functions" / "requirements.txt"
    ).read_text()
    for module in staged_modules(staged):
        source = staged / module
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"
        # PEP 552: the flags word after the magic; 0b01 is hash-based, unchecked.
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc} has flags {flags:#b}"
    assert not list(staged.rglob("*.cpython-3[!1]*.pyc"))
    written = function_source.digest_file(staged).read_text().strip()
    assert written == digest == function_source.sources_digest(REPO / "functions")


def test_python_imports_the_shipped_bytecode_without_reading_the_source(
    tmp_path: Path,
) -> None:
    # Unchecked-hash bytecode is used as it is: a source changed after staging is
    # not even read. That is why the tree is staged afresh on every deploy, and
    # why Terraform checks the sources' digest.
    from infra import function_source

    staged = function_source.stage(REPO / "functions", tmp_path / "functions")
    (staged / "cartcast" / "__init__.py").write_text("raise ImportError('source')\n")

    imported = subprocess.run(
        [sys.executable, "-c", "import cartcast.settings"],
        env={**os.environ, "PYTHONPATH": str(staged), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert imported.returncode == 0, imported.stderr


def test_staging_for_deploy_refuses_a_python_that_is_not_the_runtimes(
    tmp_path: Path,
) -> None:
    from infra import function_source

    with pytest.raises(function_source.SourceError, match="cpython-312.*3.11"):
        function_source.stage_for_deploy(
            REPO / "functions", tmp_path / "functions", cache_tag="cpython-312"
        )

    assert not (tmp_path / "functions").exists()


def test_terraform_computes_the_same_sources_digest_as_the_staging(
    tmp_path: Path,
) -> None:
    # functions.tf refuses to plan when the staged tree's digest differs from the
    # one it computes over functions/; here its own expression is evaluated by
    # `terraform console` over a copy, beside infra.function_source's.
    from infra import function_source

    terraform = tool_or_skip(shutil.which("terraform"), "terraform")
    text = (TERRAFORM / "functions.tf").read_text()
    block = re.search(r"^locals \{\n  functions_source .*?^\}\n", text, re.M | re.S)
    assert block is not None, "functions.tf lost its functions_source locals"
    (tmp_path / "terraform").mkdir()
    (tmp_path / "terraform" / "source.tf").write_text(block.group(0))
    copy = function_source.stage(
        REPO / "functions", tmp_path / "functions", compiled=False
    )
    (copy / "cartcast" / "__pycache__").mkdir(exist_ok=True)
    (copy / "cartcast" / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"x")

    console = subprocess.run(
        isolated([terraform, f"-chdir={tmp_path / 'terraform'}", "console"]),
        input="local.functions_source_digest\n",
        capture_output=True,
        text=True,
        env=offline_env(),
        check=False,
    )

    assert console.returncode == 0, console.stderr
    assert console.stdout.strip().strip('"') == function_source.sources_digest(copy)


def test_staging_writes_the_same_bytecode_from_any_checkout(tmp_path: Path) -> None:
    # The archive is named by its content: bytecode that recorded the checkout's
    # path, or a random hash seed's set order, would be a new archive and seven
    # rebuilds on every deploy of unchanged code.
    from infra import function_source

    def bytecode(dest: Path) -> dict[str, bytes]:
        staged = function_source.stage(REPO / "functions", dest)
        return {
            path.relative_to(staged).as_posix(): path.read_bytes()
            for path in staged.rglob("*.pyc")
        }

    first = bytecode(tmp_path / "one" / "functions")
    second = bytecode(tmp_path / "elsewhere" / "deeper" / "functions")

    assert first and first == second


def test_the_readme_names_the_secrets_and_the_instance_by_their_name_prefix() -> None:
    # name_prefix renames them; a README command with the default name baked in
    # would add a secret version to, or restore, the wrong deployment's resource.
    tree = terraform_tree()
    names = [
        *tree.locals["secrets"].values(),
        tree.resource("google_secret_manager_secret", "token_key")["secret_id"],
        tree.resource("google_sql_database_instance", "main")["name"],
    ]
    suffixes = [name.removeprefix("${var.name_prefix}-") for name in names]
    default = tree.variables["name_prefix"]["default"]
    readme = (REPO / "README.md").read_text()

    fixed = [
        f"{default}-{suffix}"
        for suffix in suffixes
        if re.search(rf"(?<![\w$<>-]){default}-{suffix}\b", readme)
    ]
    assert all(name.startswith("${var.name_prefix}-") for name in names)
    assert fixed == []
    assert all(
        f"$prefix-{suffix}" in readme or f"<name_prefix>-{suffix}" in readme
        for suffix in suffixes
    )
    assert "terraform -chdir=terraform output secrets" in readme

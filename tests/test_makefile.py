"""The Makefile's targets ask for only what they run.

Each test copies the Makefile and the files its stamps are computed from into a
temporary tree, marks the .venv as installed, and reads `make -n`'s plan: nothing
is installed and nothing is run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAMPED = [
    "Makefile",
    "requirements-dev.txt",
    "requirements-checkov.txt",
    "functions/requirements.txt",
    "tests/browser/package.json",
    "tests/browser/package-lock.json",
]


def installed_venv_tree(tmp_path: Path) -> Path:
    """A tree whose .venv is up to date, without checkov's venv or axe-core."""
    for name in STAMPED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    stamp = subprocess.run(
        "cat requirements-dev.txt functions/requirements.txt | cksum",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / f".installed-{stamp}").touch()
    return tmp_path


def planned_commands(tree: Path, target: str) -> str:
    plan = subprocess.run(
        ["make", "-n", target], cwd=tree, capture_output=True, text=True, check=True
    )
    return plan.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["demo", "serve", "migrate", "db-url", "check"])
def test_running_the_product_needs_neither_npm_nor_checkov(tmp_path, target) -> None:
    tree = installed_venv_tree(tmp_path)

    plan = planned_commands(tree, target)

    assert "npm" not in plan
    assert "checkov" not in plan
    assert ".venv/bin/python -m pip" not in plan


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_test_suite_still_installs_what_only_tests_need(tmp_path) -> None:
    tree = installed_venv_tree(tmp_path)

    plan = planned_commands(tree, "test")

    assert "npm ci --prefix tests/browser" in plan
    assert ".venv-checkov/bin/python -m pip install" in plan


def uninstalled_tree(tmp_path: Path, *, url: str, pip_fails: bool = False) -> Path:
    """A tree whose .venv python answers `-m infra.pg url` with url.

    Its `-m pip install` installs nothing, and fails when pip_fails. No install
    stamp is written, so make runs the install recipe first, as it does in a
    fresh clone or after a requirements file changed.
    """
    for name in STAMPED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/bin/sh\n"
        f'[ "$*" = "-m infra.pg url" ] && echo "{url}"\n'
        f'[ "$1 $2" = "-m pip" ] && exit {1 if pip_fails else 0}\n'
        "exit 0\n"
    )
    python.chmod(0o755)
    return tmp_path


def installed_stamps(tree: Path) -> list[Path]:
    return list((tree / ".venv").glob(".installed-*"))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_db_url_prints_only_the_url_even_when_it_installs_first(tmp_path) -> None:
    # The README captures this target's output: DATABASE_URL=$(make -s db-url).
    url = "postgresql://postgres@127.0.0.1:5432/cartcast"
    uninstalled_tree(tmp_path, url=url)

    printed = subprocess.run(
        ["make", "-s", "db-url"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )

    assert printed.stdout == url + "\n"
    assert "install: done" in printed.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_failed_install_stops_the_target_and_is_tried_again(tmp_path) -> None:
    tree = uninstalled_tree(tmp_path, url="unused", pip_fails=True)

    run = subprocess.run(
        ["make", "-s", "db-url"], cwd=tree, capture_output=True, text=True
    )

    assert run.returncode != 0
    assert "install: done" not in run.stderr
    assert installed_stamps(tree) == []


def terraform_calls(plan: str) -> list[str]:
    return [line for line in plan.splitlines() if line.startswith("terraform ")]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_deploy_with_only_tf_var_settings_passes_terraform_no_var_file(
    tmp_path,
) -> None:
    # Terraform stops on a -var-file that does not exist, so someone who sets
    # every variable as TF_VAR_<name> must not be handed the default path.
    tree = installed_venv_tree(tmp_path)

    plan = subprocess.run(
        ["make", "-n", "deploy", "TFVARS=terraform/absent.tfvars"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    calls = terraform_calls(plan)
    assert [call.split()[1] for call in calls] == ["-chdir=terraform"] * len(calls)
    assert len(calls) >= 4
    assert not [call for call in calls if "-var-file" in call]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_deploy_with_a_var_file_passes_it_to_every_plan_and_apply(tmp_path) -> None:
    tree = installed_venv_tree(tmp_path)
    var_file = tree / "terraform" / "prod.tfvars"
    var_file.parent.mkdir()
    var_file.write_text('project_id = "cartcast-prod-1"\n')

    plan = subprocess.run(
        ["make", "-n", "deploy", "TFVARS=terraform/prod.tfvars"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    given = [call for call in terraform_calls(plan) if "-var-file" in call]
    assert [call.split()[2:3] for call in given] == [["apply"], ["plan"]]
    assert all(f"-var-file={var_file}" in call for call in given)

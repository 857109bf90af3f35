"""Refuse to deploy before every required Terraform variable has a value.

`make deploy` runs this first: it reads terraform/variables.tf, finds the variables
without a default, and looks for each where Terraform would: the var file, the
files Terraform loads by itself (terraform.tfvars, *.auto.tfvars, and their .json
forms) and TF_VAR_<name>. When
some are missing it names them all and exits 2, before Terraform starts, so a
first deploy fails in a second instead of after `init` and a provider download.
It prints variable names only, never a value.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIABLES = REPO / "terraform" / "variables.tf"


def required_variables(variables_tf: Path) -> list[str]:
    """Name the variables that have no default, in file order."""
    import hcl2

    parsed = hcl2.loads(variables_tf.read_text(), serialization_options=_options())
    names = []
    for block in parsed.get("variable", []):
        for name, body in block.items():
            if "default" not in body:
                names.append(name.strip('"'))
    return names


def auto_var_files(terraform_dir: Path) -> list[Path]:
    """The var files Terraform loads without being told, in its order."""
    names = ["terraform.tfvars", "terraform.tfvars.json"]
    found = [terraform_dir / name for name in names]
    found += sorted(terraform_dir.glob("*.auto.tfvars"))
    found += sorted(terraform_dir.glob("*.auto.tfvars.json"))
    return [path for path in found if path.is_file()]


def _names_in(var_file: Path) -> set[str]:
    import hcl2

    if var_file.name.endswith(".json"):
        return set(json.loads(var_file.read_text()))
    parsed = hcl2.loads(var_file.read_text(), serialization_options=_options())
    return {name.strip('"') for name in parsed}


def given_variables(
    var_file: Path | None,
    environ: Mapping[str, str],
    terraform_dir: Path | None = None,
) -> set[str]:
    """Name the variables the var files or the environment set."""
    given = set()
    files = [] if terraform_dir is None else auto_var_files(terraform_dir)
    if var_file is not None and var_file.is_file():
        files.append(var_file)
    for path in files:
        given |= _names_in(path)
    given.update(
        name.removeprefix("TF_VAR_")
        for name, value in environ.items()
        if name.startswith("TF_VAR_") and value.strip()
    )
    return given


def missing_variables(
    var_file: Path | None,
    environ: Mapping[str, str],
    variables_tf: Path = VARIABLES,
    terraform_dir: Path | None = None,
) -> list[str]:
    given = given_variables(var_file, environ, terraform_dir)
    return [name for name in required_variables(variables_tf) if name not in given]


def _options():
    from hcl2 import SerializationOptions

    return SerializationOptions(with_comments=False, strip_string_quotes=True)


def main(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-file", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.var_file is not None and not args.var_file.is_file():
        # make passes Terraform no -var-file then; TF_VAR_<name> must do.
        print(
            f"deploy: no var file at {args.var_file}; using TF_VAR_<name> and "
            "terraform/*.auto.tfvars",
            file=sys.stderr,
        )
    missing = missing_variables(
        args.var_file,
        os.environ if environ is None else environ,
        terraform_dir=VARIABLES.parent,
    )
    if missing:
        where = f"{args.var_file} or " if args.var_file is not None else ""
        print(
            f"deploy: set {', '.join(missing)} first ({where}TF_VAR_<name>; "
            "see terraform/terraform.tfvars.example)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

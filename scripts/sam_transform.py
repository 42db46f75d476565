"""Write the CloudFormation template that SAM's transform makes of ``template.yaml``.

``sam validate --lint`` and ``cfn-lint template.yaml`` miss circular
dependencies that only the transformed template shows (the rotation schedule,
the refresh function and the token secret are the classic case), so
``scripts/check-template.sh`` lints this output too. Runs offline, in the tool
venv that holds ``aws-sam-translator``::

    python scripts/sam_transform.py template.yaml transformed.json
    python scripts/sam_transform.py --inject-rotation-cycle template.yaml cyclic.json

``--inject-rotation-cycle`` names the token secret after its rotation function,
the dependency loop the check has to catch; the script uses it to prove that
the cycle check can fail.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

# Local CodeUri paths are what `sam build`/`sam package` replace; the
# translator accepts only S3 locations, and their value does not matter here.
_PLACEHOLDER_CODE = "s3://artifacts/function.zip"


class _NoManagedPolicies:
    """Managed-policy loader for the translator; the template names none."""

    def load(self) -> dict[str, str]:
        return {}


def transform(template: dict[str, Any]) -> dict[str, Any]:
    """Apply the SAM transform offline.

    Parameters
    ----------
    template
        The parsed SAM template; changed in place (CodeUri placeholders).

    Returns
    -------
    dict
        The CloudFormation template that ``sam deploy`` would create.
    """
    # Imported by name: the translator lives in the tool venv only, not in the
    # project venv that type-checks this file.
    translator = importlib.import_module("samtranslator.translator.transform")
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = _PLACEHOLDER_CODE
    result: dict[str, Any] = translator.transform(template, {}, _NoManagedPolicies())
    return result


def inject_rotation_cycle(template: dict[str, Any]) -> None:
    """Make every rotated secret depend on its rotation function (a cycle)."""
    resources = template["Resources"]
    schedules = [
        resource["Properties"]
        for resource in resources.values()
        if resource.get("Type") == "AWS::SecretsManager::RotationSchedule"
    ]
    if not schedules:
        raise SystemExit("no AWS::SecretsManager::RotationSchedule to build a cycle from")
    for schedule in schedules:
        secret = schedule["SecretId"]["Ref"]
        function = schedule["RotationLambdaARN"]["Fn::GetAtt"][0]
        resources[secret]["Properties"]["Name"] = {"Fn::Sub": f"token-${{{function}}}"}


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--inject-rotation-cycle", action="store_true")
    args = parser.parse_args()
    yaml_helper = importlib.import_module("samtranslator.yaml_helper")
    template: dict[str, Any] = yaml_helper.yaml_parse(args.template.read_text())
    if args.inject_rotation_cycle:
        inject_rotation_cycle(template)
    args.output.write_text(json.dumps(transform(template), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

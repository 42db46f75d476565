"""Check what ``sam build`` made of each function, and smoke-test it as Lambda would load it.

Used by ``scripts/check-template.sh``; standard library only, so the smoke
child runs in a bare ``python3.13 -I -S`` with nothing but the artifact on
``sys.path``::

    python scripts/check_artifacts.py inspect TRANSFORMED.json BUILD_DIR --arch aarch64
    python scripts/check_artifacts.py smoke TRANSFORMED.json BUILD_DIR --python python3.13

``inspect`` asserts that each artifact holds its handler package, ``shared/``
and wheels for the Lambda architecture, and none of the repository's other
top-level folders (tests, the other functions, venvs, tools). ``smoke`` imports
each handler in a fresh interpreter with the environment the template sets
(placeholders for resource names, AWS pointed at a closed local port) and
invokes it with a harmless event whose outcome is known.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# ELF e_machine values (offset 18) of the two Lambda architectures.
ELF_MACHINES = {"aarch64": 183, "x86_64": 62}
# Errors that mean "the code is broken", not "the input was refused".
PROGRAMMING_ERRORS = frozenset(
    {
        "AttributeError",
        "ImportError",
        "KeyError",
        "ModuleNotFoundError",
        "NameError",
        "SyntaxError",
        "TypeError",
        "UnboundLocalError",
        "ZoneInfoNotFoundError",
    }
)
# A closed port: an AWS call that should not happen fails at once, offline.
CLOSED_ENDPOINT = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Function:
    """One Lambda function of the transformed template."""

    logical_id: str
    handler: str
    runtime: str
    environment: dict[str, str]

    @property
    def package(self) -> str:
        """The top-level package of the handler (``ingest`` for ``ingest.app.handler``)."""
        return self.handler.split(".")[0]

    @property
    def bytecode_tag(self) -> str:
        """The bytecode file tag of the runtime (``cpython-313`` for ``python3.13``)."""
        return "cpython-" + self.runtime.removeprefix("python").replace(".", "")

    @property
    def module(self) -> str:
        """The handler's module (``ingest.app``)."""
        return self.handler.rsplit(".", 1)[0]


def load_functions(transformed: Path) -> list[Function]:
    """Read the functions, handlers and environments from a transformed template."""
    template = json.loads(transformed.read_text())
    parameters = template.get("Parameters", {})
    functions = []
    for logical_id, resource in sorted(template["Resources"].items()):
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        properties = resource["Properties"]
        variables = properties.get("Environment", {}).get("Variables", {})
        environment = {
            name: _placeholder(name, value, parameters) for name, value in variables.items()
        }
        functions.append(
            Function(logical_id, properties["Handler"], properties["Runtime"], environment)
        )
    if not functions:
        raise SystemExit(f"{transformed}: no AWS::Lambda::Function")
    return functions


def _placeholder(name: str, value: Any, parameters: dict[str, Any]) -> str:
    """A stand-in for a template value: literals as is, parameters at their default."""
    if isinstance(value, str | int | float):
        return str(value)
    reference = value.get("Ref") if isinstance(value, dict) else None
    if reference in parameters and "Default" in parameters[reference]:
        return str(parameters[reference]["Default"])
    return f"smoke-{name.lower().replace('_', '-')}"


# ---------------------------------------------------------------- inspect


def inspect(functions: list[Function], build_dir: Path, arch: str) -> list[str]:
    """Return every problem found in the built artifacts (empty = all good)."""
    repo_entries = {entry.name for entry in REPO.iterdir()}
    problems = []
    for function in functions:
        artifact = build_dir / function.logical_id
        if not artifact.is_dir():
            problems.append(f"{function.logical_id}: no artifact at {artifact}")
            continue
        expected = {function.package, "shared"}
        module_file = artifact / (function.module.replace(".", "/") + ".py")
        if not module_file.is_file():
            problems.append(f"{function.logical_id}: handler module {module_file} missing")
        if not (artifact / "shared" / "__init__.py").is_file():
            problems.append(f"{function.logical_id}: shared/ missing")
        foreign = sorted(
            entry.name
            for entry in artifact.iterdir()
            if entry.name in repo_entries and entry.name not in expected
        )
        if foreign:
            problems.append(f"{function.logical_id}: holds repository folders {foreign}")
        stray = [
            path.relative_to(artifact)
            for package in sorted(expected)
            for path in (artifact / package).rglob("*")
            if _is_stray(path, function.bytecode_tag)
        ]
        if stray:
            problems.append(f"{function.logical_id}: stray build files {stray[:3]}")
        bytecode = any(
            (artifact / function.package).glob(f"__pycache__/*.{function.bytecode_tag}.pyc")
        )
        libraries = list(_shared_libraries(artifact))
        foreign_arch = [
            library.relative_to(artifact)
            for library in libraries
            if _elf_machine(library) != ELF_MACHINES[arch]
        ]
        problems.extend(f"{function.logical_id}: {path} is not {arch}" for path in foreign_arch)
        size, files = _footprint(artifact)
        print(
            f"  {function.logical_id}: {size / 1e6:.1f} MB unzipped, {files} files, "
            f"{len(libraries) - len(foreign_arch)}/{len(libraries)} native libraries {arch}, "
            f"{function.bytecode_tag} bytecode: {'yes' if bytecode else 'no'}"
        )
    return problems


def _is_stray(path: Path, bytecode_tag: str) -> bool:
    """A build input or the build machine's bytecode, which has no place on Lambda."""
    if path.suffix == ".pyc":
        return f".{bytecode_tag}." not in path.name
    return path.name in {"requirements.txt", ".pytest_cache"}


def _shared_libraries(artifact: Path) -> Iterator[Path]:
    for path in artifact.rglob("*"):
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name):
            yield path


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        return -1
    return int.from_bytes(header[18:20], "little")


def _footprint(artifact: Path) -> tuple[int, int]:
    files = [path for path in artifact.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), len(files)


# ------------------------------------------------------------------ smoke

# A harmless event per handler package and what must come of it.
SMOKE_EVENTS: dict[str, dict[str, Any]] = {
    "serve": {
        "version": "2.0",
        "routeKey": "ANY /g/{event_id}",
        "rawPath": "/g/not-an-event",
        "rawQueryString": "",
        "headers": {"host": "smoke.invalid"},
        "pathParameters": {"event_id": "not-an-event"},
        "requestContext": {
            "http": {"method": "GET", "path": "/g/not-an-event", "sourceIp": "127.0.0.1"},
            "requestId": "smoke",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    },
    # since after until: refused before any call.
    "ingest": {"backfill": {"since": "2026-05-01", "until": "2026-01-01"}},
    # Not a Secrets Manager rotation event at all.
    "refresh": {"hello": "world"},
}
# A clear error names what was wrong with the event.
SMOKE_ERROR_WORDS = {
    "ingest": ("since", "until", "backfill"),
    "refresh": ("Step", "SecretId", "ClientRequestToken", "rotation"),
}


def smoke(functions: list[Function], build_dir: Path, python: str) -> list[str]:
    """Import and invoke every built function in an isolated interpreter."""
    problems = []
    for function in functions:
        artifact = (build_dir / function.logical_id).resolve()
        with tempfile.TemporaryDirectory() as scratch:
            outcome_file = Path(scratch) / "outcome.json"
            env = {
                "PATH": "/usr/bin:/bin",
                "HOME": scratch,
                "LANG": "C.UTF-8",
                "TZ": "UTC",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "smoke",
                "AWS_SECRET_ACCESS_KEY": "smoke",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ENDPOINT_URL": CLOSED_ENDPOINT,
                "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
                "LAMBDA_TASK_ROOT": str(artifact),
                **function.environment,
            }
            command = [
                python,
                "-I",
                "-S",
                str(Path(__file__).resolve()),
                "child",
                str(artifact),
                function.handler,
                str(outcome_file),
            ]
            run = subprocess.run(  # noqa: S603 - fixed interpreter and arguments
                command, env=env, capture_output=True, text=True, timeout=120, check=False
            )
            if not outcome_file.exists():
                tail = (run.stderr or run.stdout)[-2000:]
                problems.append(
                    f"{function.logical_id}: smoke child died ({run.returncode}):\n{tail}"
                )
                continue
            outcome = json.loads(outcome_file.read_text())
        verdict = _judge(function.package, outcome)
        print(f"  {function.logical_id}: {outcome['summary']} -> {verdict or 'OK'}", flush=True)
        if verdict:
            problems.append(f"{function.logical_id}: {verdict}")
    return problems


def _judge(package: str, outcome: dict[str, Any]) -> str:
    """Return what is wrong with one smoke outcome ('' = as expected)."""
    if outcome["stage"] == "import":
        return f"import failed: {outcome['error_type']}: {outcome['error']}"
    if outcome.get("unresolved"):
        return (
            f"the code imports {outcome['unresolved']}, which the artifact lacks "
            f"(add them to {package}/requirements.txt)"
        )
    if package == "serve":
        response = outcome.get("result")
        if not isinstance(response, dict) or response.get("statusCode") != 400:
            return f"expected a 400 response for a bad event id, got {outcome['summary']}"
        if "Traceback" in str(response.get("body", "")):
            return "the 400 response carries a stack trace"
        return ""
    if package in {"ingest", "refresh"}:
        if outcome["stage"] != "raised":
            return f"expected a clear error for a bad event, got {outcome['summary']}"
        if outcome["error_type"] in PROGRAMMING_ERRORS:
            return f"crashed instead of refusing the event: {outcome['summary']}"
        if outcome["error_module"].split(".")[0] in {"botocore", "boto3", "urllib3"}:
            return f"called AWS before validating the event: {outcome['summary']}"
        keywords = SMOKE_ERROR_WORDS[package]
        if not any(word.lower() in outcome["error"].lower() for word in keywords):
            return (
                f"the error does not name the bad input ({'/'.join(keywords)}): {outcome['error']}"
            )
        return ""
    return "" if outcome["stage"] in {"returned", "raised"} else outcome["summary"]


def child(artifact: str, handler: str, outcome_file: str) -> None:
    """Run inside the isolated interpreter: import and invoke one handler."""
    import importlib
    import zoneinfo

    # Only the artifact and the standard library, as on Lambda (-I -S already
    # dropped site-packages and the script's folder). The time zone database
    # may be missing from Lambda's base image: only the artifact may supply it.
    sys.path.insert(0, artifact)
    zoneinfo.reset_tzpath(to=())
    module_name, _, attribute = handler.rpartition(".")
    outcome: dict[str, Any]
    try:
        entry = getattr(importlib.import_module(module_name), attribute)
    except BaseException as exc:
        outcome = _failure("import", exc)
    else:
        event = SMOKE_EVENTS.get(module_name.split(".")[0], {})
        try:
            result = entry(event, _SmokeContext(os.environ["AWS_LAMBDA_FUNCTION_NAME"]))
        except Exception as exc:
            outcome = _failure("raised", exc)
        else:
            status = result.get("statusCode") if isinstance(result, dict) else None
            summary = f"returned status {status}" if status else f"returned {str(result)[:200]}"
            outcome = {"stage": "returned", "result": result, "summary": summary}
    outside = [
        name
        for name, module in sys.modules.items()
        # This script is __main__ (multiprocessing aliases it as __mp_main__).
        if module is not sys.modules["__main__"] and _loaded_outside(module, artifact)
    ]
    if outside:
        outcome = {
            "stage": "import",
            "error_type": "LeakedImport",
            "error": f"modules loaded from outside the artifact: {outside[:5]}",
            "summary": "leaked import",
        }
    outcome["unresolved"] = _unresolved_imports(Path(artifact), module_name)
    Path(outcome_file).write_text(json.dumps(outcome, default=str))


def _unresolved_imports(artifact: Path, module_name: str) -> list[str]:
    """Third-party modules the handler's code may import that the artifact lacks.

    Follows the handler's imports through the project's own modules (those
    whose files are in the artifact's handler package and ``shared/``), lazy
    imports inside functions included, since an import that runs only on
    some request fails only then. ``TYPE_CHECKING`` imports are skipped.
    """
    import importlib.util

    own = {module_name.split(".")[0], "shared"}
    seen: set[str] = set()
    queue = [module_name]
    third_party: set[str] = set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        source = _module_file(artifact, name)
        if source is None:
            continue
        package = name if source.name == "__init__.py" else name.rpartition(".")[0]
        for imported in _imports(ast.parse(source.read_text()), package):
            top = imported.split(".")[0]
            if top in own:
                queue.append(imported)
            elif top != "__future__" and top not in sys.stdlib_module_names:
                third_party.add(top)
    return sorted(name for name in third_party if importlib.util.find_spec(name) is None)


def _module_file(artifact: Path, name: str) -> Path | None:
    base = artifact.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.Module, package: str) -> Iterator[str]:
    """Every module an ``import`` statement names, outside ``if TYPE_CHECKING:``."""
    skipped = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for child in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            yield base
            # `from shared import tokens` imports the module shared.tokens.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _failure(stage: str, exc: BaseException) -> dict[str, Any]:
    kind = type(exc)
    return {
        "stage": stage,
        "error_type": kind.__name__,
        "error_module": kind.__module__,
        "error": str(exc),
        "summary": f"{stage} {kind.__module__}.{kind.__name__}: {str(exc)[:300]}",
    }


def _loaded_outside(module: Any, artifact: str) -> bool:
    origin = getattr(module, "__file__", None)
    if not origin or origin.startswith(artifact):
        return False
    stdlib = os.path.dirname(os.__file__)
    return not origin.startswith(stdlib) or "site-packages" in origin


class _SmokeContext:
    """The attributes of a Lambda context that handlers and Powertools read."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.memory_limit_in_mb = 128
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "smoke"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def main() -> None:
    """Command line entry point."""
    if len(sys.argv) == 5 and sys.argv[1] == "child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["inspect", "smoke"])
    parser.add_argument("transformed", type=Path)
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--arch", choices=sorted(ELF_MACHINES), default="aarch64")
    parser.add_argument("--python", default="python3.13")
    args = parser.parse_args()
    functions = load_functions(args.transformed)
    if args.command == "inspect":
        problems = inspect(functions, args.build_dir, args.arch)
    else:
        problems = smoke(functions, args.build_dir, args.python)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

"""Generates the Python code of the contracts in protos/ into gen/ (messages, stubs, .pyi).

`python -m services.protogen gen` rewrites gen/; `python -m services.protogen check` exits 1
when gen/ differs from what the protos produce now. The test suite runs the check.
"""

import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GEN_ROOT = ROOT / "gen"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc  # dev-only dependency: imported here, not at module load

    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package_dir in {p.parent for p in out_dir.rglob("*_pb2.py")}:
        while package_dir != out_dir:
            (package_dir / "__init__.py").touch()
            package_dir = package_dir.parent


def generated_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def stale_files() -> list[str]:
    """Files of gen/ that differ from a fresh generation (missing, extra or changed)."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = generated_files(Path(tmp))
        committed = generated_files(GEN_ROOT)
        names = set(fresh) | set(committed)
        return sorted(
            n for n in names
            if n not in fresh or n not in committed or not filecmp.cmp(fresh[n], committed[n], shallow=False)
        )


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "gen"
    if command == "gen":
        generate(GEN_ROOT)
        return 0
    if command == "check":
        stale = stale_files()
        for name in stale:
            print(f"stale: gen/{name}")
        return 1 if stale else 0
    print("usage: python -m services.protogen [gen|check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

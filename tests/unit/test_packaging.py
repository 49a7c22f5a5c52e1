"""What ships: the image's recipe, the pinned versions, and the files the wheel must carry.

No Docker engine runs the tests, so the Dockerfile is checked for the properties the README
promises (GSD_HOST/GSD_PORT honoured, a store volume, dependencies before source, pinned versions).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from destination.mapping.spec import mappings_dir

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=;!~]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_image_listens_where_gsd_host_and_gsd_port_say() -> None:
    cmd = DOCKERFILE.split("\nCMD ", 1)[1]
    assert "--port" not in cmd and "--host" not in cmd  # serve reads GSD_HOST / GSD_PORT
    assert "GSD_HOST=0.0.0.0" in DOCKERFILE and "GSD_PORT=8080" in DOCKERFILE
    assert "os.environ.get('GSD_PORT'" in DOCKERFILE  # the health check follows the port


def test_the_image_keeps_its_store_in_a_volume_owned_by_its_user() -> None:
    assert "VOLUME /var/lib/gsd" in DOCKERFILE
    assert "GSD_STORE_URL=sqlite:////var/lib/gsd/" in DOCKERFILE
    assert re.search(r"useradd .*--uid 10001 .*--home-dir /var/lib/gsd", DOCKERFILE)
    assert "USER 10001" in DOCKERFILE


def test_the_volume_gets_no_skeleton_dotfiles() -> None:
    useradd = re.search(r"useradd [^\n]*", DOCKERFILE)
    assert useradd is not None
    assert "--no-create-home" in useradd[0] and "--create-home" not in useradd[0].replace(
        "--no-create-home", ""
    )
    assert "install -d -o gsd -g gsd -m 0750 /var/lib/gsd" in DOCKERFILE  # created empty, owned by gsd


def test_a_pip_index_and_a_proxys_ca_bundle_can_be_given_at_build_time() -> None:
    first_pip = DOCKERFILE.index("pip install")
    assert DOCKERFILE.index("ARG PIP_INDEX_URL=") < first_pip  # pip reads it from the environment
    assert DOCKERFILE.index('ARG CA_BUNDLE=""') < DOCKERFILE.index("update-ca-certificates") < first_pip
    assert "pip config --global set global.cert /etc/ssl/certs/ca-certificates.crt" in DOCKERFILE


def test_every_run_instruction_is_valid_shell() -> None:
    instructions = re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    runs = [line.removeprefix("RUN ") for line in instructions if line.startswith("RUN ")]
    assert len(runs) == 3
    for command in runs:
        checked = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
        assert checked.returncode == 0, (command, checked.stderr)


def test_dependencies_are_installed_pinned_before_the_source_is_copied() -> None:
    deps = DOCKERFILE.index("pip install -c constraints.txt -r requirements.txt")
    assert (
        DOCKERFILE.index("COPY pyproject.toml constraints.txt") < deps < DOCKERFILE.index("COPY destination")
    )
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "data"} <= set(ignored)


def test_constraints_pin_every_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = {
        _name(line): line.split("==", 1)[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    assert [r for r in wanted if _name(r) not in pinned] == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_wheel_carries_templates_queries_and_mappings(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "destination/templates/status.html",
        "destination/templates/docs.html",
        "destination/delivery/queries.sql",
        "destination/delivery/sqlite_migrations.sql",
        "destination/delivery/postgres.sql",
        "destination/delivery/postgres_migrations.sql",
        "destination/_mappings/person.yaml",
        "destination/_mappings/company.yaml",
    ):
        assert needed in names
    # In a checkout, the package finds the same mapping files beside it.
    assert mappings_dir().joinpath("person.yaml").is_file()

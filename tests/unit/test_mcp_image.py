"""`build-image --with`: only plain package requirements reach pip inside the build."""

from __future__ import annotations

import pytest

from runtime.sandbox.image import ImageBuildError
from runtime.sandbox.mcp_image import check_requirements


def test_plain_requirements_pass() -> None:
    packages = ["mcp-server-time", "mcp-server-git==2025.1.1", "pkg[extra]>=1.0"]
    assert check_requirements(packages) == packages


@pytest.mark.parametrize(
    "package",
    [
        "--index-url=http://evil",
        "./local/dir",
        "https://x.example/p.whl",
        "git+https://x",
        "a b",
        "",
    ],
)
def test_paths_urls_and_options_are_refused(package: str) -> None:
    with pytest.raises(ImageBuildError, match="not a package requirement"):
        check_requirements([package])


def test_nothing_to_install_is_refused() -> None:
    with pytest.raises(ImageBuildError, match="at least one package"):
        check_requirements([])

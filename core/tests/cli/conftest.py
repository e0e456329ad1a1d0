"""Running the ``scibind`` command line in-process, the way the console script does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from scibind.cli.main import main
from scibind.plugins import reset_plugins


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Result]]:
    """``cli("plugins", "--json") -> Result(code, stdout, stderr)`` through :func:`scibind.cli.main.main`."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(list(args))
        out = capsys.readouterr()
        code = info.value.code
        return Result(code if isinstance(code, int) else 1, out.out, out.err)

    reset_plugins()
    yield run
    reset_plugins()

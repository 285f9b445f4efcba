"""A real IPython shell for tests whose ``run_cell`` raises (after jupysql's TestingShell).

IPython prints errors raised in a cell and carries on; a test wants them
raised, so that ``pytest.raises(UsageError)`` works and a failing cell fails
the test. ``magic(...)`` and ``cell(...)`` run ``%batch`` lines and
``%%batch`` cells through the shell, exactly as a notebook would.
"""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from traitlets.config import Config


class TestingShell(InteractiveShell):
    """An InteractiveShell whose ``run_cell`` re-raises the cell's error."""

    __test__ = False  # not a pytest test class

    def run_cell(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        result = super().run_cell(*args, **kwargs)
        result.raise_error()
        return result

    @classmethod
    def make(cls) -> TestingShell:
        """The process-wide instance (InteractiveShell is a singleton), history off."""
        if cls.initialized():
            shell: TestingShell = cls.instance()
            return shell
        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "nocolor"
        config.InteractiveShell.autoindent = False
        return cls.instance(config=config)

    def reset_namespace(self) -> None:
        """Forget the user's variables (cheaper than ``reset()``, which runs gc.collect)."""
        hidden = self.user_ns_hidden
        for name in [k for k in self.user_ns if k not in hidden]:
            del self.user_ns[name]


def magic_instance(shell: InteractiveShell) -> Any:
    """The BatchMagic registered in ``shell``."""
    return shell.magics_manager.registry["BatchMagic"]

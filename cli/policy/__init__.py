"""``mcpctl policy``: the security team's offline loop over the policy files.

``lint`` checks the files, ``test`` runs decision tables against them (``--coverage``:
which lines the cases exercise), ``explain`` shows which line decides a request and why,
``who-can`` lists every subject allowed a request, ``diff`` the decisions two policy
directories disagree on, ``fmt`` normalises the files. None of them needs mcpd.

Every command takes ``-o json`` (schema version 1, in the README's security-team section);
``test`` also ``-o junit``, ``lint`` also ``-o sarif`` and ``-o github``. Each command is
a module that registers itself on :data:`app`.
"""

import cli.policy.diff_cmd
import cli.policy.explain_cmd
import cli.policy.fmt_cmd
import cli.policy.lint_cmd
import cli.policy.test_cmd
import cli.policy.whocan_cmd  # noqa: F401 - each module registers its command
from cli.policy.common import app

__all__ = ["app"]

"""``mcpctl policy lint``: check the model and the policy files before they load.

:func:`lint` reads every ``*.csv`` file of a policy directory line by line and returns
one :class:`LintIssue` per finding, each pointing at ``path:line`` (or at a file):

errors - the engine would refuse the line, or it cannot mean what it says
    ``unknown-rule-type``, ``wrong-arity``, ``bad-character``, ``empty-value``,
    ``bad-effect``, ``bad-subject``, ``bad-group`` (a ``g`` parent that is not a group),
    ``bad-role-definition`` (a ``g2`` right side that is not ``role:X`` or ``action:X``),
    ``unknown-role``, ``unknown-operation``, ``bad-act``, ``operation-scope`` (an
    operation bound on one kind or object), ``unknown-kind``, ``bad-project``,
    ``bad-name``, ``cycle``, ``too-deep`` (a ``g``/``g2`` chain Casbin does not follow
    to its end), ``bad-model``, ``unreadable``, ``bad-policy-dir``
warnings - the line loads but is probably a mistake
    ``verb-binding`` (a ``p`` line on a bare verb), ``unknown-member`` (a ``g2`` member
    that is no known verb, role or operation), ``duplicate``, ``shadowed`` (an allow
    made redundant by a wider allow of the same subject), ``overridden`` (an allow that
    a deny of the same subject cancels entirely), ``model-differs``

"Same subject" means the same subject string: lines of a group and of its members are
not compared.

The package, by what each check needs to see: :mod:`~authz.lint.issues` (the finding),
:mod:`~authz.lint.model` (the model file), :mod:`~authz.lint.lines` (each line by itself:
does it parse, does what it names exist), :mod:`~authz.lint.overlap` (lines of one subject
against each other), :mod:`~authz.lint.graph` (the ``g`` and ``g2`` graphs as wholes) and
:mod:`~authz.lint.run` (:func:`lint`, all of them in order).
"""

from authz.lint.graph import MAX_HIERARCHY_LEVEL
from authz.lint.issues import LintIssue, Severity, format_issue
from authz.lint.run import lint

__all__ = ["MAX_HIERARCHY_LEVEL", "LintIssue", "Severity", "format_issue", "lint"]
